"""Ludii game-synthesis reward: compile, then uniformly random playouts (Padula & Soemers, 4.3).

The completion is the generated middle of a game; `reference.prefix` and `reference.suffix`
(the FIM context) are joined around it when present, so the scored text is
prefix + completion + suffix. The evaluation runs in the worker's supervised JVM child
(`reward_service.ludii.engine`), bounded by `time_limit_s` from compile to the last playout;
past it the item is `time_limit`, never a score.
"""
from __future__ import annotations

from dataclasses import dataclass

from reward_contract.types import RewardItem
from reward_service.ludii import quality
from reward_service.rewards.base import RequestExpired, RewardResult, TimeLimitExceeded, work_limits

# Server-side maxima: a request cannot buy more work than this per game.
MAX_PLAYOUTS = 1000
MAX_TURNS = 10_000
MAX_TIME_LIMIT_S = 600.0
# From the evaluation times of the 275 test games, one worker on two cores (bench/ludii_corpus.py;
# docs/benchmarks.md has the latest run): p50 0.25 s, p95 8.5 s, max 222 s (Sudoku X, whose random
# playouts run to the turn cap), and 151 s at most on a faster machine of the same kind. 400 s lets
# the slowest finish on a slower or busier machine: before the JVM's young generation was enlarged,
# it took 250 s, and 312 s beside two training runs.
DEFAULT_TIME_LIMIT_S = 400.0
DEFAULT_DEADLINE_S = 900.0  # a request for a few games under the default limit, unless it names one


@dataclass(frozen=True)
class LudiiOptions:
    playouts: int = 100
    """Uniformly random playouts per game (the paper: 100; at most 1000)."""
    max_turns: int = 500
    """Turn cap per playout (the paper: 500; at most 10000)."""
    unplayable_reward: float = 0.1
    """Reward of a game that compiles but cannot be played (the paper: 0.1)."""
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    """Wall-clock limit of one evaluation, compile to last playout (at most 600); past it the item is time_limit."""
    seed: int = 0
    """Seed of the playouts, so an evaluation is reproducible."""

    def __post_init__(self):
        if not 1 <= self.playouts <= MAX_PLAYOUTS:
            raise ValueError(f"playouts must be in [1, {MAX_PLAYOUTS}], got {self.playouts}")
        if not 1 <= self.max_turns <= MAX_TURNS:
            raise ValueError(f"max_turns must be in [1, {MAX_TURNS}], got {self.max_turns}")
        if not 0 < self.time_limit_s <= MAX_TIME_LIMIT_S:
            raise ValueError(f"time_limit_s must be in (0, {MAX_TIME_LIMIT_S:g}], got {self.time_limit_s}")
        if not -2**63 <= self.seed < 2**63:
            raise ValueError("seed must fit in 64 bits")


def game_text(item: RewardItem) -> str:
    return item.reference.get("prefix", "") + item.completion + item.reference.get("suffix", "")


def score(item: RewardItem, options: LudiiOptions) -> RewardResult:
    from reward_service.ludii.engine import get_engine

    request = work_limits()
    outcome = get_engine().evaluate(game_text(item), options.playouts, options.max_turns, options.seed,
                                    options.time_limit_s, request.deadline, request.cancelled)
    summary = quality.PlayoutSummary(outcome.num_players, outcome.winners, outcome.capped)
    components = {"compiles": float(outcome.compiles), "playable": float(outcome.playable),
                  "playouts": float(len(outcome.winners)), "failed_playouts": float(outcome.failed_playouts)}
    if outcome.stopped in ("deadline", "cancelled"):
        raise RequestExpired(f"the request ended ({outcome.stopped}) after {len(outcome.winners)} of "
                             f"{options.playouts} playouts")
    if outcome.stopped:
        if summary.winners:
            components.update(summary.components())
        raise TimeLimitExceeded(f"evaluation passed its {options.time_limit_s:g} s limit after "
                                f"{len(outcome.winners)} of {options.playouts} playouts; {outcome.message}".rstrip("; "),
                                components)
    if outcome.compiles and outcome.playable:
        components.update(summary.components())
    value = quality.reward(outcome.compiles, outcome.playable, summary, options.unplayable_reward)
    return RewardResult(value, components, detail=outcome.message)
