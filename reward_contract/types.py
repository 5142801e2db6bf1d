"""Items and results: the one shape each has in every process."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Sequence, Union


@dataclass(frozen=True)
class RewardItem:
    """One completion to score. `reference` carries task data (targets, previous steps). Only `id` is
    required: `RewardItem("1", completion="23 + 4", reference={"previous": "23 + 1 + 3"})`."""

    id: str
    prompt: str = ""
    completion: str = ""
    reference: Mapping[str, str] = field(default_factory=dict)

    def __reduce__(self):  # positional and compact: chunks of items are pickled for every queue job
        return RewardItem, (self.id, self.prompt, self.completion, dict(self.reference))


class ItemStatus(str, enum.Enum):
    """Outcome of one item. Only OK items carry a usable reward."""

    OK = "ok"
    INVALID = "invalid"  # the item itself is bad (missing reference field, ...)
    ERROR = "error"  # the reward function raised
    TIMEOUT = "timeout"  # not scored before the request's deadline
    LOST = "lost"  # the worker died and retries were exhausted
    TIME_LIMIT = "time_limit"  # the reward's own per-item limit passed; components hold the partial work


@dataclass(frozen=True)
class ScoredItem:
    """One result, as the service returns it and every client receives it."""

    id: str
    reward: float
    components: Mapping[str, float]
    status: ItemStatus
    error: str = ""
    cached: bool = False
    detail: str = ""  # human-readable why, e.g. Ludii's compiler message; not an error
    # A composite request's reward of each term, by the term's reward name; empty for one reward.
    rewards: Mapping[str, float] = field(default_factory=dict)

    def __reduce__(self):  # positional and compact: results are pickled in worker replies and the cache
        return ScoredItem, (self.id, self.reward, dict(self.components), self.status, self.error, self.cached,
                            self.detail, dict(self.rewards))

    @property
    def ok(self) -> bool:
        return self.status is ItemStatus.OK

    @classmethod
    def failed(cls, item_id: str, status: ItemStatus, error: str, components: Mapping[str, float] | None = None
               ) -> "ScoredItem":
        return cls(id=item_id, reward=0.0, components=dict(components or {}), status=status, error=error)


@dataclass(frozen=True)
class RewardTerm:
    """One weighted reward of a composite request: `[RewardTerm("arithmetic"), RewardTerm(
    "length_penalty", 0.1, {"budget": 8})]` scores both and returns `1.0 * arithmetic + 0.1 *
    length_penalty` per item, with each term's reward in `ScoredItem.rewards`."""

    reward: str
    weight: float = 1.0
    options: Mapping[str, object] = field(default_factory=dict)


# What a client scores: one reward's name, or the terms of a composite reward.
RewardChoice = Union[str, Sequence[RewardTerm]]


@dataclass(frozen=True)
class RewardKind:
    """A reward the service offers, as ListRewards and GET /v1/rewards describe it."""

    name: str
    description: str
    queue: str
    options: Mapping[str, str]  # option name -> "type (default: value)"
    label_field: str = ""  # the reference field a bare label fills; "" when labels must be JSON objects
