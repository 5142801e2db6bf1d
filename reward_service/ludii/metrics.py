"""Ludii game quality from playout outcomes (Padula & Soemers, section 4.3). Pure Python.

C compiles, P playable, B balance, F completion, D decisiveness;
R = 0 if not C, `unplayable_reward` if not P, else (B^(1/3) + F^(1/3) + D^(1/3)) / 3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

DRAW = 0  # Ludii's winner id for a draw or no winner
UNFINISHED = -1  # our marker for a playout stopped by the turn cap


@dataclass(frozen=True)
class PlayoutSummary:
    """Aggregated playouts of one game. `winners` holds one entry per playout:
    a player id >= 1, DRAW, or UNFINISHED."""

    num_players: int
    winners: Sequence[int]

    @property
    def balance(self) -> float:
        """1 - the largest gap in win rate between any two players."""
        if not self.winners or self.num_players < 1:
            return 0.0
        n = len(self.winners)
        rates = [sum(1 for w in self.winners if w == p) / n for p in range(1, self.num_players + 1)]
        return 1.0 - (max(rates) - min(rates)) if self.num_players > 1 else 1.0

    @property
    def completion(self) -> float:
        """Fraction of playouts that ended within the turn cap."""
        if not self.winners:
            return 0.0
        return sum(1 for w in self.winners if w != UNFINISHED) / len(self.winners)

    @property
    def decisiveness(self) -> float:
        """Fraction of playouts with a winner (unfinished ones count as draws)."""
        if not self.winners:
            return 0.0
        return sum(1 for w in self.winners if w >= 1) / len(self.winners)


def quality(summary: PlayoutSummary) -> float:
    """(B^(1/3) + F^(1/3) + D^(1/3)) / 3 of a playable game."""
    parts = (summary.balance, summary.completion, summary.decisiveness)
    return sum(p ** (1.0 / 3.0) for p in parts) / 3.0


def reward(compiles: bool, playable: bool, summary: PlayoutSummary | None, unplayable_reward: float = 0.1) -> float:
    if not compiles:
        return 0.0
    if not playable or summary is None or not summary.winners:
        return unplayable_reward
    return quality(summary)
