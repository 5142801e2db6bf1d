"""The Ludii fill-in-the-middle dataset built from the paper's games in ../shared/ludii."""
import random
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.ludii_games import SHARED, game_named, games
from trainer.tasks import ludii_data

pytestmark = pytest.mark.skipif(not (SHARED / "games_train.json").exists(), reason=f"no Ludii games in {SHARED}")


def test_the_paper_split_is_read_from_shared():
    assert len(games("train")) == 805 and len(games("test")) == 275


def test_a_sample_removes_one_balanced_parenthetical():
    code = game_named("Tic-Tac-Toe")
    rng = random.Random(0)
    for _ in range(50):
        sample = ludii_data.fim_sample(code, rng)
        assert sample.prefix + sample.middle + sample.suffix == code
        assert sample.middle.startswith("(") and sample.middle.endswith(")") and sample.middle != code
        assert sample.middle.count("(") == sample.middle.count(")")
        assert sample.prompt.startswith("### PRE: ") and "\n### SUF: " in sample.prompt


def test_parentheticals_are_drawn_uniformly():
    code = "(game (a (b)) (c))"
    spans = ludii_data.parentheticals(code)
    assert sorted(code[s:e] for s, e in spans) == ["(a (b))", "(b)", "(c)"]
    rng = random.Random(1)
    counts = {}
    for _ in range(3000):
        middle = ludii_data.fim_sample(code, rng).middle
        counts[middle] = counts.get(middle, 0) + 1
    assert all(abs(c / 3000 - 1 / 3) < 0.05 for c in counts.values())


def test_parentheses_inside_strings_are_ignored():
    assert ludii_data.parentheticals('(game "A (b" (x))') == [(13, 16)]


def test_name_masking_is_consistent_and_keeps_player_digits():
    code = game_named("Tic-Tac-Toe")
    masked = ludii_data.mask_names(code)
    assert '"Tic-Tac-Toe"' not in masked and '(game "Game"' in masked
    assert '(piece "NameA" P1)' in masked and '(piece "NameB" P2)' in masked
    assert ludii_data.mask_names('(game "X" (piece "Disc" P1) (place "Disc1" 3) (place "Disc2" 4))') == \
        '(game "Game" (piece "NameA" P1) (place "NameA1" 3) (place "NameA2" 4))'


def test_min_masked_filter_is_switchable():
    codes = [g["code"] for g in games("train")[:60]]
    strict = ludii_data.build_samples(codes, random.Random(0), min_masked=0.2)
    loose = ludii_data.build_samples(codes, random.Random(0), min_masked=0.0)
    assert strict and all(s.masked_fraction >= 0.2 for s in strict)
    assert len(loose) == 4 * 60 > len(strict)
    unmasked = ludii_data.build_samples(codes[:1], random.Random(0), mask=False, min_masked=0.0)
    assert unmasked[0].prefix.startswith(codes[0][:10])


def test_ludeme_tokens_are_added_to_a_tokenizer():
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.helpers import tiny_word_tokenizer

    codes = [g["code"] for g in games("train")]
    names = ludii_data.ludemes(codes)
    assert {"game", "players", "equipment", "board", "piece", "rules", "move", "end"} <= set(names)
    assert all(re.fullmatch(r"[a-z][\w.]*", n) for n in names)
    tokenizer = tiny_word_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2))
    added = ludii_data.add_ludeme_tokens(tokenizer, model, codes)
    assert added == len(names) and model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert tokenizer.tokenize("(board") == ["(board"]


def test_export_as_a_hugging_face_dataset(tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "fim"
    result = subprocess.run([sys.executable, "-m", "rlpr", "ludii-data", "--out", str(out), "--train",
                             str(SHARED / "games_train.json"), "--test", str(SHARED / "games_test.json")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = load_from_disk(str(out))
    assert set(data) == {"train", "test"} and len(data["train"]) > 100 and len(data["test"]) > 30
    row = data["test"][0]
    assert row["prompt"] == f"### PRE: {row['prefix']}\n### SUF: {row['suffix']}\n### MID: "
    assert row["masked_fraction"] >= 0.2


def test_a_missing_games_file_says_where_the_papers_split_is_published(tmp_path):
    from trainer.config import TrainConfig
    from trainer.tasks.ludii_data import LudiiDataConfig, load_games

    assert TrainConfig.ludii_games == LudiiDataConfig.train == "data/ludii/games_train.json"  # inside the checkout
    with pytest.raises(FileNotFoundError) as error:
        load_games(tmp_path / "games_train.json")
    message = str(error.value)
    assert "github.com/PadLex/Reinforcement-Learning-from-Explicitly-Programmed-Reward-Signals" in message
    assert "shared" not in message and "--ludii-games" in message
