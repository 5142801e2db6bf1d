"""The Ludii reward formula on constructed playout outcomes (no JVM)."""
import pytest

from reward_service.ludii.metrics import DRAW, UNFINISHED, PlayoutSummary, quality, reward


def test_all_wins_by_one_player():
    s = PlayoutSummary(2, [1] * 100)
    assert (s.balance, s.completion, s.decisiveness) == (0.0, 1.0, 1.0)
    assert reward(True, True, s) == pytest.approx((0 + 1 + 1) / 3)


def test_perfect_balance():
    s = PlayoutSummary(2, [1, 2] * 50)
    assert (s.balance, s.completion, s.decisiveness) == (1.0, 1.0, 1.0)
    assert reward(True, True, s) == pytest.approx(1.0)


def test_all_draws():
    s = PlayoutSummary(2, [DRAW] * 10)
    assert (s.balance, s.completion, s.decisiveness) == (1.0, 1.0, 0.0)
    assert reward(True, True, s) == pytest.approx(2 / 3)


def test_all_unfinished():
    s = PlayoutSummary(2, [UNFINISHED] * 10)
    assert (s.completion, s.decisiveness) == (0.0, 0.0)
    assert reward(True, True, s) == pytest.approx(1 / 3)  # balanced only because nobody won


def test_three_players():
    s = PlayoutSummary(3, [1] * 5 + [2] * 3 + [3] * 2)
    assert s.balance == pytest.approx(1 - (0.5 - 0.2))
    expected = (0.7 ** (1 / 3) + 1 + 1) / 3
    assert quality(s) == pytest.approx(expected)


def test_zero_playouts_compile_and_play_flags():
    empty = PlayoutSummary(2, [])
    assert (empty.balance, empty.completion, empty.decisiveness) == (0.0, 0.0, 0.0)
    assert reward(True, True, empty) == 0.1  # nothing was played: treated as unplayable
    assert reward(False, False, None) == 0.0
    assert reward(True, False, PlayoutSummary(2, [1, 2])) == 0.1
    assert reward(True, False, None, unplayable_reward=0.05) == 0.05


def test_mixed_outcomes_cube_roots():
    s = PlayoutSummary(2, [1, 1, 1, 2, DRAW, UNFINISHED, 1, 2, 2, 2])
    assert s.balance == pytest.approx(1.0)  # 4 wins each
    assert s.completion == pytest.approx(0.9)
    assert s.decisiveness == pytest.approx(0.8)
    assert reward(True, True, s) == pytest.approx((1 + 0.9 ** (1 / 3) + 0.8 ** (1 / 3)) / 3)
