"""Run a reward over items: the single failure path shared by workers and in-process scoring."""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Sequence

from reward_contract.types import ItemStatus, RewardItem, ScoredItem
from reward_service.rewards.base import (InvalidItem, RequestExpired, RewardSpec, TimeLimitExceeded, WorkLimits,
                                         scoring_for)

log = logging.getLogger(__name__)


def score_items(spec: RewardSpec, options: Any, items: Sequence[RewardItem], deadline: float = math.inf,
                cancelled: Callable[[], bool] = lambda: False) -> list[ScoredItem]:
    """Score every item; one failing item becomes a failed result, never an exception.

    `options` is the reward's options dataclass. Items not started before `deadline` (a
    time.time() instant) or after the request was withdrawn come back `timeout` unscored.
    """
    with scoring_for(WorkLimits(deadline, cancelled)):
        return [_score_one(spec, options, item, deadline, cancelled) for item in items]


def _score_one(spec, options, item, deadline, cancelled) -> ScoredItem:
    if time.time() > deadline:
        return ScoredItem.failed(item.id, ItemStatus.TIMEOUT, "the request's deadline passed before scoring")
    if cancelled():
        return ScoredItem.failed(item.id, ItemStatus.TIMEOUT, "the request was withdrawn before scoring")
    try:
        result = spec.score(item, options)
        if not math.isfinite(result.reward):
            raise ValueError(f"reward function returned a non-finite reward {result.reward}")
    except InvalidItem as exc:
        return ScoredItem.failed(item.id, ItemStatus.INVALID, str(exc))
    except TimeLimitExceeded as exc:
        return ScoredItem.failed(item.id, ItemStatus.TIME_LIMIT, str(exc), exc.components)
    except RequestExpired as exc:
        return ScoredItem.failed(item.id, ItemStatus.TIMEOUT, str(exc))
    except Exception as exc:  # noqa: BLE001 - a reward bug must fail one item, not the batch
        log.warning("reward raised", extra={"reward": spec.name, "item_id": item.id, "error": repr(exc)})
        return ScoredItem.failed(item.id, ItemStatus.ERROR, f"{type(exc).__name__}: {exc}")
    return ScoredItem(item.id, float(result.reward), dict(result.components), ItemStatus.OK, detail=result.detail)
