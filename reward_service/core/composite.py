"""Composite rewards: several rewards, each with a weight, scored as one request.

Each term is an ordinary `ResolvedRequest` of its own reward, so it goes to that reward's queue,
is admitted, cached and withdrawn on its own; the service scores the terms in parallel and
`combine` folds their results into one per item: the weighted sum when every term scored the
item, else the first failed term's status and error, naming that term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from reward_contract.errors import InvalidArgument
from reward_contract.types import RewardTerm, ScoredItem

MAX_TERMS = 16


@dataclass(frozen=True)
class CompositeRequest:
    """The terms of one composite request: (reward name, weight, that reward's resolved request)."""

    parts: tuple[tuple[str, float, object], ...]  # object: a ResolvedRequest (request.py imports this module)

    @property
    def items(self):
        return self.parts[0][2].items


def validate_terms(terms: Sequence[RewardTerm]) -> None:
    """Names unique (they key each result's `rewards`), weights finite, a bounded number of terms."""
    if not terms:
        raise InvalidArgument("a composite request needs at least one term")
    if len(terms) > MAX_TERMS:
        raise InvalidArgument(f"{len(terms)} terms is over the limit of {MAX_TERMS}")
    seen = set()
    for term in terms:
        if term.reward in seen:
            raise InvalidArgument(f"reward {term.reward!r} is named twice; each term needs its own reward")
        seen.add(term.reward)
        if not isinstance(term.weight, (int, float)) or not math.isfinite(term.weight):
            raise InvalidArgument(f"the weight of {term.reward!r} must be a finite number, got {term.weight!r}")


def combine(names: Sequence[str], weights: Sequence[float], per_term: Sequence[Sequence[ScoredItem]]
            ) -> list[ScoredItem]:
    """One result per item from each term's results (same items, same order)."""
    return [_combine_item(names, weights, results) for results in zip(*per_term)]


def _combine_item(names, weights, results: Sequence[ScoredItem]) -> ScoredItem:
    rewards = {name: r.reward for name, r in zip(names, results) if r.ok}
    components = {f"{name}/{key}": value for name, r in zip(names, results) for key, value in r.components.items()}
    detail = "; ".join(f"{name}: {r.detail}" for name, r in zip(names, results) if r.detail)
    failed = next(((name, r) for name, r in zip(names, results) if not r.ok), None)
    if failed is not None:
        name, result = failed
        return ScoredItem(result.id, 0.0, components, result.status, f"reward {name!r}: {result.error}",
                          detail=detail, rewards=rewards)
    total = math.fsum(weight * r.reward for weight, r in zip(weights, results))
    return ScoredItem(results[0].id, total, components, results[0].status, "", all(r.cached for r in results),
                      detail, rewards)
