"""The supervised Ludii engine on the real jar: every evaluation ends on time, whatever the game.

Pathological games: a 150x150 Tic-Tac-Toe (its start alone outlasts the limit), 20 nested
`(or (move ...))` (moves explode), and two pieces wandering a 4x4 board, asked for 1,000
playouts of 10,000 turns (every move is quick; the work is endless). Skipped, saying why,
without LUDII_JAR.
"""
import os
import time

import pytest

from reward_contract.types import ItemStatus, RewardItem
from tests.ludii_games import game_named

pytestmark = pytest.mark.skipif(
    not os.environ.get("LUDII_JAR"),
    reason="LUDII_JAR is not set: these tests need a Ludii jar (build one with ../shared/ludii/build-test-jar.sh)",
)
LIMIT_S = 3.0
KILL_AND_ANSWER_S = 3.0  # the supervisor's grace (2 s) plus the request's own overhead
TTT = game_named("Tic-Tac-Toe")


def nested_or_moves(depth: int) -> str:
    move = "(move Add (to (sites Empty)))"
    for _ in range(depth):
        move = f"(or {move} (move Add (to (sites Empty))))"
    return TTT.replace("(move Add (to (sites Empty)))", move)


WANDER = ('(game "Wander" (players 2) (equipment {(board (square 4)) (piece "Disc" Each (move Step (to if:(is Empty '
          '(to)))))}) (rules (start {(place "Disc1" 0) (place "Disc2" 15)}) (play (forEach Piece)) '
          '(end (if (no Moves Next) (result Mover Win)))))')
LONG = {"playouts": 1000, "max_turns": 10000}
# name -> (game, options beyond the time limit)
PATHOLOGICAL = {
    "huge board": (TTT.replace("(square 3)", "(square 150)"), {}),
    "exploding moves": (nested_or_moves(20), {}),
    "long playouts": (WANDER, LONG),
}


@pytest.fixture
def ludii_service(workers, queue_service):
    workers.start("ludii")
    # Warm: the first evaluation of a fresh JVM loads Ludii's compiler (about a second).
    assert queue_service.score_blocking("ludii", [RewardItem("warm", "", TTT)], deadline_s=60)[0].ok
    return queue_service


@pytest.mark.slow
@pytest.mark.parametrize("name", PATHOLOGICAL)
def test_a_pathological_game_ends_within_its_limit_and_the_worker_serves_the_next(ludii_service, name):
    game, options = PATHOLOGICAL[name]
    started = time.monotonic()
    [result] = ludii_service.score_blocking("ludii", [RewardItem("bad", "", game)],
                                            {"time_limit_s": LIMIT_S, **options}, deadline_s=60)
    assert time.monotonic() - started < LIMIT_S + KILL_AND_ANSWER_S
    assert result.status is ItemStatus.TIME_LIMIT and result.reward == 0.0
    assert f"passed its {LIMIT_S:g} s limit" in result.error
    [good] = ludii_service.score_blocking("ludii", [RewardItem("good", "", TTT)], deadline_s=60)
    assert good.ok and good.components["playouts"] == 100


@pytest.mark.slow
def test_java_stops_a_slow_game_within_a_fraction_of_a_second_and_keeps_its_playouts(ludii_service):
    started = time.monotonic()
    [result] = ludii_service.score_blocking("ludii", [RewardItem("slow", "", WANDER)],
                                            {"time_limit_s": LIMIT_S, **LONG}, deadline_s=60)
    assert time.monotonic() - started < LIMIT_S + 1.0
    assert result.status is ItemStatus.TIME_LIMIT
    # Java stopped it (the playouts it finished are kept); a supervisor kill would have kept none.
    assert 0 < result.components["playouts"] < 1000 and result.components["compiles"] == 1.0
    assert {"balance", "completion", "decisiveness"} <= set(result.components)  # over the playouts it finished


@pytest.mark.slow
def test_nothing_else_in_a_batch_is_lost_and_time_limits_are_not_cached(ludii_service):
    four_in_a_row = TTT.replace("(square 3)", "(square 4)").replace("(is Line 3)", "(is Line 4)")
    items = [RewardItem("ttt", "", TTT), RewardItem("huge", "", PATHOLOGICAL["huge board"][0]),
             RewardItem("four", "", four_in_a_row)]
    # Room for the fresh, cold JVM that follows the kill to play 4x4 on a loaded machine; the huge
    # board's start alone outlasts any limit a test could wait for.
    limit = {"time_limit_s": 10.0}
    results = ludii_service.score_blocking("ludii", items, limit, deadline_s=120)
    assert [r.status for r in results] == [ItemStatus.OK, ItemStatus.TIME_LIMIT, ItemStatus.OK]
    again = ludii_service.score_blocking("ludii", items[1:2], limit, deadline_s=60)
    assert again[0].status is ItemStatus.TIME_LIMIT and not again[0].cached  # evaluated again, never cached
    assert ludii_service.score_blocking("ludii", items[:1], limit, deadline_s=60)[0].cached


def test_a_capped_playout_keeps_ludiis_winner():
    """Tayam Sonalu hits the 500-turn cap in about half its playouts, and Ludii names a winner in
    every one: completion about 0.5, decisiveness 1.0 (it was 0.49 when a capped playout counted
    as a draw)."""
    from reward_service.core.local_client import LocalRewardClient

    [result] = LocalRewardClient().score("ludii", [RewardItem("t", "", game_named("Tayam Sonalu"))], deadline_s=300)
    assert result.ok
    assert result.components["decisiveness"] == 1.0
    assert 0.2 < result.components["completion"] < 0.8


def test_a_withdrawn_request_stops_its_evaluation():
    from reward_service.ludii.engine import get_engine

    engine = get_engine()
    engine.start()
    started = time.monotonic()
    # Endless but quick moves: the JVM is busy in playouts, never stuck in one call. (A CI run once saw
    # the exploding-moves game answer at once, not compiled, so that one is no test of withdrawal.)
    outcome = engine.evaluate(WANDER, LONG["playouts"], LONG["max_turns"], 0, 60.0,
                              cancelled=lambda: time.monotonic() - started > 0.5)
    assert outcome.stopped == "cancelled", outcome
    assert time.monotonic() - started < 2.0
    assert engine.evaluate(TTT, 10, 500, 0, 60.0).compiles  # a fresh JVM took over
