"""The Ludii reward formula on constructed playout outcomes (no JVM)."""
import pytest

from reward_service.ludii.quality import DRAW, PlayoutSummary, quality, reward


def summary(num_players, winners, capped=None):
    return PlayoutSummary(num_players, winners, capped if capped is not None else [False] * len(winners))


def test_all_wins_by_one_player():
    s = summary(2, [1] * 100)
    assert (s.balance, s.completion, s.decisiveness) == (0.0, 1.0, 1.0)
    assert reward(True, True, s) == pytest.approx((0 + 1 + 1) / 3)


def test_perfect_balance():
    s = summary(2, [1, 2] * 50)
    assert (s.balance, s.completion, s.decisiveness) == (1.0, 1.0, 1.0)
    assert reward(True, True, s) == pytest.approx(1.0)


def test_all_draws():
    s = summary(2, [DRAW] * 10)
    assert (s.balance, s.completion, s.decisiveness) == (1.0, 1.0, 0.0)
    assert reward(True, True, s) == pytest.approx(2 / 3)


def test_capped_without_a_winner_is_unfinished_and_undecided():
    s = summary(2, [DRAW] * 10, [True] * 10)
    assert (s.completion, s.decisiveness) == (0.0, 0.0)
    assert reward(True, True, s) == pytest.approx(1 / 3)  # balanced only because nobody won


def test_capped_with_a_winner_is_unfinished_but_decisive():
    """The paper: completion counts playouts that end within the cap; decisiveness those without a
    draw. Ludii names a winner at the cap (by score, say): that playout is decisive and counts
    towards balance, while it still did not complete."""
    s = summary(2, [1, 2, 1, 2, DRAW], [True, True, False, False, True])
    assert s.completion == pytest.approx(0.4)
    assert s.decisiveness == pytest.approx(0.8)
    assert s.balance == pytest.approx(1.0)


def test_three_players():
    s = summary(3, [1] * 5 + [2] * 3 + [3] * 2)
    assert s.balance == pytest.approx(1 - (0.5 - 0.2))
    assert quality(s) == pytest.approx((0.7 ** (1 / 3) + 1 + 1) / 3)


def test_zero_playouts_compile_and_play_flags():
    empty = summary(2, [])
    assert (empty.balance, empty.completion, empty.decisiveness) == (0.0, 0.0, 0.0)
    assert reward(True, True, empty) == 0.1  # nothing was played: treated as unplayable
    assert reward(False, False, None) == 0.0
    assert reward(True, False, summary(2, [1, 2])) == 0.1
    assert reward(True, False, None, unplayable_reward=0.05) == 0.05


def test_mixed_outcomes_cube_roots():
    s = summary(2, [1, 1, 1, 2, DRAW, DRAW, 1, 2, 2, 2], [False] * 5 + [True] + [False] * 4)
    assert s.balance == pytest.approx(1.0)  # 4 wins each
    assert s.completion == pytest.approx(0.9)
    assert s.decisiveness == pytest.approx(0.8)
    assert reward(True, True, s) == pytest.approx((1 + 0.9 ** (1 / 3) + 0.8 ** (1 / 3)) / 3)


def test_winners_and_capped_must_describe_the_same_playouts():
    with pytest.raises(ValueError):
        PlayoutSummary(2, [1, 2], [False])
