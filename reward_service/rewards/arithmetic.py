"""Arithmetic-simplification reward (Padula & Soemers, section 4.2).

R = 2 / (1 + exp(|value(G) - value(Y)| / scale)), and 0 when G is not a valid
`a + b + ...` sum of non-negative integers. In the default strict mode G must also
have exactly one `+` fewer than the previous expression, as in the authors' code:
without that check, copying the prompt scores 1 because every step has one value.

Reference fields: `previous` (Y_{i-1}, required in strict mode) and `target`
(value(Y); computed from `previous` when absent).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from reward_contract.types import RewardItem
from reward_service.rewards.base import InvalidItem, RewardResult

# Terms of at most 30 digits: absurd numbers are refused rather than summed.
_SUM = re.compile(r"\s*\d{1,30}(?:\s*\+\s*\d{1,30})*\s*", re.ASCII)


@dataclass(frozen=True)
class ArithmeticOptions:
    lenient: bool = False
    """Score the value alone (the paper's text) instead of also requiring one fewer `+`."""
    scale: float = 10.0
    """Distance scale in the exponent; the paper uses 10."""

    def __post_init__(self):
        if self.scale <= 0:
            raise ValueError("scale must be > 0")


def parse_sum(text: str) -> list[int] | None:
    """The terms of `a + b + ...`, or None if `text` is not such a sum."""
    if not _SUM.fullmatch(text):
        return None
    return [int(term) for term in text.split("+")]  # int() ignores the surrounding spaces


def _target(item: RewardItem) -> tuple[int, list[int] | None]:
    previous_text = item.reference.get("previous")
    previous = parse_sum(previous_text) if previous_text is not None else None
    if previous_text is not None and previous is None:
        raise InvalidItem(f"reference 'previous' is not a sum of non-negative integers: {previous_text!r}")
    target_text = item.reference.get("target")
    if target_text is not None:
        try:
            return int(str(target_text).strip()), previous
        except ValueError:
            raise InvalidItem(f"reference 'target' is not an integer: {target_text!r}") from None
    if previous is None:
        raise InvalidItem("reference needs 'target' or 'previous'")
    return sum(previous), previous


def score(item: RewardItem, options: ArithmeticOptions) -> RewardResult:
    target, previous = _target(item)
    if not options.lenient and previous is None:
        raise InvalidItem("strict mode needs reference 'previous' (or set option lenient=true)")
    terms = parse_sum(item.completion)
    if terms is None:
        return RewardResult(0.0, {"valid": 0.0, "target": float(target)})
    value = sum(terms)
    components = {"valid": 1.0, "value": float(value), "target": float(target), "abs_error": float(abs(value - target))}
    if not options.lenient and len(terms) != len(previous) - 1:
        components["one_step"] = 0.0
        return RewardResult(0.0, components)
    distance = abs(value - target) / options.scale
    reward = 0.0 if distance > 700 else 2.0 / (1.0 + math.exp(distance))
    return RewardResult(reward, components)
