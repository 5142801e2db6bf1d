"""A length penalty: 0 within the budget, then -1 per budget's worth of excess.

Alone it teaches nothing useful; beside a task's reward it stops a policy from padding its
answers (docs/custom_rewards.md walks through it).
"""
from __future__ import annotations

from dataclasses import dataclass

from reward_contract.types import RewardItem
from reward_service.rewards.base import InvalidItem, RewardResult, RewardSpec


@dataclass(frozen=True)
class LengthOptions:
    budget: int = 20
    """Longest completion without a penalty."""
    unit: str = "words"
    """Count `words` (split on whitespace) or `chars`."""

    def __post_init__(self):
        if self.budget < 1:
            raise ValueError("budget must be at least 1")
        if self.unit not in ("words", "chars"):
            raise ValueError("unit must be 'words' or 'chars'")


def score(item: RewardItem, options: LengthOptions) -> RewardResult:
    """-(length - budget) / budget past the budget, else 0."""
    if not item.completion.strip():
        raise InvalidItem("the completion is empty")
    length = len(item.completion.split()) if options.unit == "words" else len(item.completion)
    penalty = max(0, length - options.budget) / options.budget
    return RewardResult(-penalty, {"length": float(length)})


LENGTH_PENALTY = RewardSpec("length_penalty", score, options_type=LengthOptions)
