"""Reads the paper's Ludii games from ../shared/ludii (never copied into the repository)."""
from __future__ import annotations

import json
import os
import pathlib

SHARED = pathlib.Path(os.environ.get("RLPR_LUDII_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "ludii"))


def games(split: str) -> list[dict]:
    return json.loads((SHARED / f"games_{split}.json").read_text(encoding="utf-8"))


def game_named(name: str) -> str:
    for split in ("train", "test"):
        for game in games(split):
            if game["code"].startswith(f'(game "{name}"'):
                return game["code"]
    raise KeyError(name)
