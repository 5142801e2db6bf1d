"""Where the paper's Ludii games come from: its train/test split (805 and 275 games), downloaded once
from the authors' repository at a pinned commit, checked against its SHA-256, and cached.

RLPR_LUDII_DATA_URL replaces the download's base URL (a mirror, or a directory served on a
machine without GitHub); the checksums still apply.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import urllib.request

PAPER_REPOSITORY = "PadLex/Reinforcement-Learning-from-Explicitly-Programmed-Reward-Signals"
PAPER_COMMIT = "62d1b28438b509f5482a61f31df01c451465e75e"
PAPER_URL = (f"https://raw.githubusercontent.com/{PAPER_REPOSITORY}/{PAPER_COMMIT}/"
             "ludii_game_synthesis/lms/caches")
SHA256 = {"train": "9f7be4be80b0890b52685f43de1070fa8b09dc66f81da5b54740efbebaecfa11",
          "test": "6b55d9aa25011ba98979063e600db2b1e8f2ec6c0e94d47f5b952af923dbc604"}
SPLITS = tuple(SHA256)


def upstream_name(split: str) -> str:
    return f"ludii_descriptions_{split}.json"


def cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "rlpr" / "ludii-data" / PAPER_COMMIT[:12]


def games_file(split: str, games_dir: str = "") -> pathlib.Path:
    """The games of `split`: from `games_dir` (games_<split>.json or the upstream name), else the
    paper's, downloaded into the cache on first use."""
    if split not in SHA256:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if games_dir:
        candidates = [pathlib.Path(games_dir) / name for name in (f"games_{split}.json", upstream_name(split))]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"no {' or '.join(p.name for p in candidates)} in {games_dir}")
        return found
    cached = cache_dir() / f"games_{split}.json"
    if not cached.is_file():
        download(split, cached)
    return cached


def games(split: str, games_dir: str = "") -> list[dict]:
    """The games of `split` as the paper stores them: a JSON list of {"code": ...} (see games_file)."""
    return json.loads(games_file(split, games_dir).read_text(encoding="utf-8"))


def game_named(name: str, games_dir: str = "") -> str:
    """The code of the game called `name`, from either split."""
    for split in SPLITS:
        for game in games(split, games_dir):
            if game["code"].startswith(f'(game "{name}"'):
                return game["code"]
    raise KeyError(f"no game named {name!r} among the paper's Ludii games")


def download(split: str, to: pathlib.Path) -> None:
    """Fetch one split, check its SHA-256, and only then put it at `to` (never a partial or wrong file)."""
    base = os.environ.get("RLPR_LUDII_DATA_URL", PAPER_URL).rstrip("/")
    url = f"{base}/{upstream_name(split)}"
    print(f"downloading the paper's Ludii {split} games from {url}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise FileNotFoundError(f"cannot download the Ludii {split} games from {url} ({exc}); download "
                                f"{upstream_name(split)} yourself and pass its folder with --games") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[split]:
        raise ValueError(f"the Ludii {split} games from {url} have SHA-256 {digest}, not the paper's "
                         f"{SHA256[split]}; nothing was kept")
    to.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=to.parent, delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, to)  # atomic: a concurrent reader sees no file or the whole file
