"""Ludii game quality from playout outcomes (Padula & Soemers, section 4.3). Pure Python.

C compiles, P playable, B balance, F completion, D decisiveness;
R = 0 if not C, `unplayable_reward` if not P, else (B^(1/3) + F^(1/3) + D^(1/3)) / 3.

Each playout keeps two facts: Ludii's winner (a player id >= 1, or DRAW) and whether the
turn cap stopped it. Completion is the share of playouts that ended within the cap.
Decisiveness is the share that did not end in a draw, and balance compares win rates: a
capped playout in which Ludii still names a winner (a game that scores at the cap, say)
counts as unfinished for completion and as decisive for decisiveness and balance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

DRAW = 0  # Ludii's winner id for a draw or no winner


@dataclass(frozen=True)
class PlayoutSummary:
    """The playouts of one game: `winners[i]` and `capped[i]` describe playout i."""

    num_players: int
    winners: Sequence[int]
    capped: Sequence[bool]

    def __post_init__(self):
        if len(self.winners) != len(self.capped):
            raise ValueError("winners and capped must describe the same playouts")

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
        """Share of playouts that ended within the turn cap."""
        return sum(1 for c in self.capped if not c) / len(self.capped) if self.capped else 0.0

    @property
    def decisiveness(self) -> float:
        """Share of playouts with a winner, capped or not."""
        return sum(1 for w in self.winners if w >= 1) / len(self.winners) if self.winners else 0.0

    def components(self) -> dict[str, float]:
        return {"balance": self.balance, "completion": self.completion, "decisiveness": self.decisiveness}


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
