"""Run a reward over items: the single failure path shared by workers and in-process use."""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from reward_service.errors import InvalidItem
from reward_service.rewards import get_reward
from reward_service.types import ItemStatus, RewardItem, ScoredItem

log = logging.getLogger(__name__)


def score_items(reward: str, options: Any, items: Sequence[RewardItem]) -> list[ScoredItem]:
    """Score every item; one failing item becomes a failed result, never an exception.

    `options` is the reward's parsed options dataclass.
    """
    spec = get_reward(reward)
    results = []
    for item in items:
        try:
            result = spec.score(item, options)
            if not math.isfinite(result.reward):
                raise ValueError(f"reward function returned a non-finite reward {result.reward}")
        except InvalidItem as exc:
            results.append(ScoredItem.failed(item.id, ItemStatus.INVALID, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a reward bug must fail one item, not the batch
            log.warning("reward raised", extra={"reward": reward, "item_id": item.id, "error": repr(exc)})
            results.append(ScoredItem.failed(item.id, ItemStatus.ERROR, f"{type(exc).__name__}: {exc}"))
            continue
        status = ItemStatus.OK if result.error is None else ItemStatus.ERROR
        results.append(
            ScoredItem(
                item.id, float(result.reward), dict(result.components), status, result.error or "", detail=result.detail
            )
        )
    return results
