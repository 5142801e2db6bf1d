"""Ludii game-synthesis reward: compile, then random playouts on a JVM kept by the worker.

The completion is the generated middle of a game; `reference.prefix` and
`reference.suffix` (the FIM context) are joined around it when present, so the
scored text is prefix + completion + suffix.
"""
from __future__ import annotations

from dataclasses import dataclass

from reward_service.ludii import metrics
from reward_service.types import RewardItem, RewardResult


@dataclass(frozen=True)
class LudiiOptions:
    playouts: int = 100
    """Uniformly random playouts per game (the paper: 100)."""
    max_turns: int = 500
    """Turn cap per playout; a capped game counts as unfinished (the paper: 500)."""
    unplayable_reward: float = 0.1
    """Reward of a game that compiles but cannot be played (the paper: 0.1)."""
    timeout_reward: float = 0.0
    """Reward of a game whose evaluation ran past `time_limit_s`."""
    time_limit_s: float = 30.0
    """Wall-clock limit of one evaluation; playouts stop there and the result is flagged timeout."""
    seed: int = 0
    """Seed of the playouts, so an evaluation is reproducible."""

    def __post_init__(self):
        if self.playouts < 1:
            raise ValueError("playouts must be >= 1")
        if self.max_turns < 1:
            raise ValueError("max_turns must be >= 1")
        if self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be > 0")


def game_text(item: RewardItem) -> str:
    return item.reference.get("prefix", "") + item.completion + item.reference.get("suffix", "")


def score(item: RewardItem, options: LudiiOptions) -> RewardResult:
    from reward_service.ludii.engine import get_engine

    outcome = get_engine().evaluate(
        game_text(item), options.playouts, options.max_turns, options.seed, options.time_limit_s
    )
    components = {"compiles": float(outcome.compiles), "playable": float(outcome.playable),
                  "timeout": float(outcome.timed_out), "playouts": float(len(outcome.winners)),
                  "failed_playouts": float(outcome.failed_playouts)}
    if outcome.timed_out:
        detail = f"evaluation passed its {options.time_limit_s} s limit after {len(outcome.winners)} playouts"
        return RewardResult(options.timeout_reward, components, detail=detail)
    summary = metrics.PlayoutSummary(outcome.num_players, outcome.winners)
    if outcome.compiles and outcome.playable:
        components.update(balance=summary.balance, completion=summary.completion, decisiveness=summary.decisiveness)
    value = metrics.reward(outcome.compiles, outcome.playable, summary, options.unplayable_reward)
    return RewardResult(value, components, detail=outcome.message)
