"""A request resolved once. The fronts turn what they received into a `ResolvedRequest`
(reward spec, typed options, validated items, deadline); the cache, the backends and the
workers all receive that object, and workers get it once, serialised with their chunk."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from reward_contract.errors import InvalidArgument, RequestTooLarge
from reward_contract.types import RewardItem
from reward_service.rewards import get_reward
from reward_service.rewards.base import RewardSpec

CACHE_PREFIX = "rlpr:cache:v2:"


@dataclass(frozen=True)
class Limits:
    max_batch_items: int = 4096
    max_field_chars: int = 65536
    default_deadline_s: float = 120.0
    max_deadline_s: float = 3600.0
    max_inflight_requests: int = 2048  # per API process; each waiting request holds one Redis connection


@dataclass(frozen=True)
class ResolvedRequest:
    spec: RewardSpec
    options: Any  # the reward's options dataclass
    items: tuple[RewardItem, ...]
    deadline: float  # a time.time() instant: workers in other processes read it too
    use_cache: bool = True
    front: str = "python"

    def remaining_s(self) -> float:
        return self.deadline - time.time()

    @functools.cached_property
    def id(self) -> str:
        """Names the request's reply list and cancel key in Redis; made on first use, since scoring
        in this process never needs one (and a uuid4 costs a system call)."""
        return uuid.uuid4().hex

    @functools.cached_property
    def cache_keys(self) -> tuple[str, ...]:
        """One key per item: everything that decides its reward, hashed (never the item id)."""
        head = [self.spec.name, sorted(dataclasses.asdict(self.options).items())]
        identity = self.spec.cache_identity or (lambda i: (i.prompt, i.completion, sorted(i.reference.items())))
        return tuple(_digest(head + list(identity(item))) for item in self.items)


@dataclass(frozen=True)
class WorkChunk:
    """What one queue job carries; RQ pickles it once."""

    request_id: str
    reward: str
    options: Any
    items: tuple[RewardItem, ...]
    deadline: float
    reply_key: str


def _digest(fields: list) -> str:
    payload = json.dumps(fields, ensure_ascii=False)
    return CACHE_PREFIX + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def resolve(reward: str, items: Sequence[RewardItem], options: Mapping[str, object] | None,
            deadline_s: float | None, use_cache: bool, front: str, limits: Limits,
            caller_remaining_s: float | None = None) -> ResolvedRequest:
    """Validate everything a request says, once, with messages that name the field at fault.
    The request never outlives its caller (`caller_remaining_s`, e.g. a gRPC deadline), but an
    invalid deadline is refused whatever the caller's."""
    spec = get_reward(reward)
    typed = spec.options(options)
    validate_items(items, limits)
    deadline_s = _deadline_s(deadline_s, limits, spec.default_deadline_s)
    if caller_remaining_s is not None:
        deadline_s = min(deadline_s, caller_remaining_s)
    return ResolvedRequest(spec, typed, tuple(items), time.time() + deadline_s, use_cache, front)


def _deadline_s(deadline_s: float | None, limits: Limits, reward_default_s: float | None) -> float:
    if not deadline_s:
        return min(reward_default_s or limits.default_deadline_s, limits.max_deadline_s)
    if not math.isfinite(deadline_s) or deadline_s < 0:
        raise InvalidArgument(f"deadline_ms must be a finite number >= 0 (0: the server default), got {deadline_s}")
    if deadline_s > limits.max_deadline_s:
        raise InvalidArgument(f"deadline_ms={deadline_s * 1000:.0f} is over the server's maximum of "
                              f"{limits.max_deadline_s * 1000:.0f} ms; ask for less")
    return deadline_s


def validate_items(items: Sequence[RewardItem], limits: Limits) -> None:
    if not items:
        raise InvalidArgument("the batch is empty; send at least one item")
    if len(items) > limits.max_batch_items:
        raise RequestTooLarge(f"batch of {len(items)} items is over the limit of {limits.max_batch_items}")
    seen = set()
    for index, item in enumerate(items):
        if not item.id:
            raise InvalidArgument(f"item {index} has an empty id")
        if item.id in seen:
            raise InvalidArgument(f"item id {item.id!r} appears twice; ids must be unique within a batch")
        seen.add(item.id)
        if not _is_clean(item, limits.max_field_chars):
            _raise_for_field(index, item, limits)


def _is_clean(item: RewardItem, max_chars: int) -> bool:
    """The common case, checked at once: every field a string of valid UTF-8 within the limit."""
    values = (item.id, item.prompt, item.completion, *item.reference, *item.reference.values())
    if not all(isinstance(value, str) and len(value) <= max_chars for value in values):
        return False
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_for_field(index: int, item: RewardItem, limits: Limits) -> None:
    """The error that names the first bad field of an item `_is_clean` refused."""
    fields = {"id": item.id, "prompt": item.prompt, "completion": item.completion}
    fields.update({f"reference key {k!r}": k for k in item.reference})
    fields.update({f"reference.{k}": v for k, v in item.reference.items()})
    for name, value in fields.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"item {index}: {name} must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(f"item {index}: {name} is not valid UTF-8 (lone surrogate)") from None
        if len(value) > limits.max_field_chars:
            raise RequestTooLarge(
                f"item {item.id!r}: {name} has {len(value)} characters, over the limit of {limits.max_field_chars}"
            )
