"""Plain data types shared by reward functions, backends, servers and clients."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class RewardItem:
    """One completion to score. `reference` carries task data (targets, previous steps)."""

    id: str
    prompt: str
    completion: str
    reference: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RewardResult:
    """What every reward function returns: the reward, why, and an error if it failed."""

    reward: float
    components: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    detail: str = ""  # human-readable why, e.g. Ludii's compiler message; not an error


class ItemStatus(str, enum.Enum):
    """Outcome of one item. Only OK items carry a usable reward."""

    OK = "ok"
    INVALID = "invalid"  # the item itself is bad (missing reference field, ...)
    ERROR = "error"  # the reward function raised
    TIMEOUT = "timeout"  # not scored before the deadline
    LOST = "lost"  # the worker died and retries were exhausted


@dataclass(frozen=True)
class ScoredItem:
    """One result as the service returns it."""

    id: str
    reward: float
    components: Mapping[str, float]
    status: ItemStatus
    error: str = ""
    cached: bool = False
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is ItemStatus.OK

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "reward": self.reward,
            "components": dict(self.components),
            "status": self.status.value,
            "error": self.error,
            "cached": self.cached,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "ScoredItem":
        return cls(
            id=data["id"],
            reward=float(data["reward"]),
            components=dict(data["components"]),
            status=ItemStatus(data["status"]),
            error=data.get("error", ""),
            cached=bool(data.get("cached", False)),
            detail=data.get("detail", ""),
        )

    def to_tuple(self) -> tuple:
        return (self.id, self.reward, dict(self.components), self.status.value, self.error, self.cached, self.detail)

    @classmethod
    def from_tuple(cls, row: tuple) -> "ScoredItem":
        item_id, reward, components, status, error, cached, detail = row
        return cls(item_id, reward, components, ItemStatus(status), error, cached, detail)

    @classmethod
    def failed(cls, item_id: str, status: ItemStatus, error: str) -> "ScoredItem":
        return cls(id=item_id, reward=0.0, components={}, status=status, error=error)
