"""The Ludii fill-in-the-middle dataset built from the paper's games in ../shared/ludii."""
import json
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
    result = subprocess.run([sys.executable, "-m", "rlpr", "ludii-data", "--out", str(out), "--games", str(SHARED)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = load_from_disk(str(out))
    assert set(data) == {"train", "test"} and len(data["train"]) > 100 and len(data["test"]) > 30
    row = data["test"][0]
    assert row["prompt"] == f"### PRE: {row['prefix']}\n### SUF: {row['suffix']}\n### MID: "
    assert row["masked_fraction"] >= 0.2


@pytest.fixture
def games_site(tmp_path, monkeypatch):
    """The paper's files under their upstream names, served over HTTP from a folder of the test's own;
    the download's cache is the test's too."""
    import functools
    import http.server
    import shutil
    import threading

    site = tmp_path / "site"
    site.mkdir()
    for split in ("train", "test"):
        shutil.copy(SHARED / f"games_{split}.json", site / f"ludii_descriptions_{split}.json")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("RLPR_LUDII_DATA_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield site, server
    server.shutdown()


def test_the_papers_games_are_downloaded_once_checked_and_cached(games_site, tmp_path):
    from trainer.config import TrainConfig
    from trainer.tasks.ludii_data import load_games
    from trainer.tasks.ludii_games import PAPER_URL, cache_dir

    site, server = games_site
    assert TrainConfig.ludii_games == "" and "/62d1b28438b509f5482a61f31df01c451465e75e/" in PAPER_URL
    assert len(load_games(split="train")) == 805 and len(load_games(split="test")) == 275
    assert sorted(p.name for p in cache_dir().iterdir()) == ["games_test.json", "games_train.json"]
    server.shutdown()  # from now on only the cache can answer
    assert load_games(split="test") == [game["code"] for game in json.loads((SHARED / "games_test.json").read_text())]


def test_a_download_that_does_not_match_the_papers_checksum_is_refused_and_not_kept(games_site):
    from trainer.tasks.ludii_data import load_games
    from trainer.tasks.ludii_games import cache_dir

    site, _ = games_site
    games = json.loads((site / "ludii_descriptions_train.json").read_text())
    (site / "ludii_descriptions_train.json").write_text(json.dumps(games[:-1]))  # one game missing
    with pytest.raises(ValueError, match="have SHA-256 [0-9a-f]{64}, not the paper's 9f7be4be"):
        load_games(split="train")
    assert not (cache_dir() / "games_train.json").exists()
    (site / "ludii_descriptions_test.json").unlink()
    with pytest.raises(FileNotFoundError, match="cannot download the Ludii test games from http.*pass its folder "
                                                "with --games"):
        load_games(split="test")


def test_a_games_folder_takes_either_name_and_says_what_it_lacks(tmp_path):
    from trainer.tasks.ludii_games import games_file

    assert games_file("train", str(SHARED)) == SHARED / "games_train.json"
    (tmp_path / "ludii_descriptions_test.json").write_text("[]")
    assert games_file("test", str(tmp_path)).name == "ludii_descriptions_test.json"
    with pytest.raises(FileNotFoundError, match="no games_train.json or ludii_descriptions_train.json in"):
        games_file("train", str(tmp_path))
