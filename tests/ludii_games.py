"""The paper's Ludii games for the tests, read from ../shared/ludii (never copied into the repository)."""
from __future__ import annotations

import os
import pathlib

from trainer.tasks import ludii_games

SHARED = pathlib.Path(os.environ.get("RLPR_LUDII_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "ludii"))


def games(split: str) -> list[dict]:
    return ludii_games.games(split, str(SHARED))


def game_named(name: str) -> str:
    return ludii_games.game_named(name, str(SHARED))
