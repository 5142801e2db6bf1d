"""The paper's Ludii fill-in-the-middle dataset, built from its 1,080 games (train/test split).

Each sample removes one uniformly random parenthetical (not the whole game) from a game
description; the model sees `### PRE: <prefix>` and `### SUF: <suffix>` and must produce
the removed text. Quoted names (game, pieces, regions...) can be masked to placeholders,
renamed consistently inside each game so the masked game still compiles.
"""
from __future__ import annotations

import json
import pathlib
import random
import re
from dataclasses import dataclass

PRE, SUF, MID = "### PRE: ", "\n### SUF: ", "\n### MID: "
_QUOTED = re.compile(r'"([^"\\]*)"')
_LUDEME = re.compile(r"\((\w[\w.]*)")


def load_games(path: str | pathlib.Path = "", split: str = "train") -> list[str]:
    """The games' code from a JSON list of {"code": ...}: `path`, or the paper's `split` (downloaded once)."""
    from trainer.tasks.ludii_games import games

    if not path:
        return [game["code"] for game in games(split)]
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Ludii games file {path} not found; leave --ludii-games empty for the paper's "
                                "games (downloaded once), or name a JSON list of {\"code\": ...}")
    return [game["code"] for game in json.loads(path.read_text(encoding="utf-8"))]


def parentheticals(code: str) -> list[tuple[int, int]]:
    """(start, end) of every balanced (...) span, end exclusive, outermost excluded."""
    spans, stack, in_string = [], [], False
    for i, char in enumerate(code):
        if char == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif char == "(":
            stack.append(i)
        elif char == ")" and stack:
            spans.append((stack.pop(), i + 1))
    return [s for s in spans if s != (0, len(code))]


def mask_names(code: str) -> str:
    """Rename quoted names consistently: the game to "Game", others to "NameA", "NameB", ...

    Trailing digits are kept (Ludii reads "Disc1" as player 1's "Disc"), so references stay valid;
    the placeholders end in letters so a kept digit can never merge into them.
    """
    mapping: dict[str, str] = {}
    game = re.match(r'\(game "([^"]*)"', code)
    if game:
        mapping[game.group(1)] = "Game"

    def rename(match: re.Match) -> str:
        text = match.group(1)
        stem = text.rstrip("0123456789")
        digits = text[len(stem):]
        if not stem:
            return match.group(0)
        if stem not in mapping:
            mapping[stem] = "Name" + _letters(sum(1 for v in mapping.values() if v != "Game"))
        return f'"{mapping[stem]}{digits}"'

    return _QUOTED.sub(rename, code)


def _letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, ..."""
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = chr(ord("A") + rest) + text
    return text


@dataclass(frozen=True)
class FimSample:
    prefix: str
    middle: str
    suffix: str

    @property
    def prompt(self) -> str:
        return f"{PRE}{self.prefix}{SUF}{self.suffix}{MID}"

    @property
    def masked_fraction(self) -> float:
        return len(self.middle) / max(1, len(self.prefix) + len(self.middle) + len(self.suffix))


def fim_sample(code: str, rng: random.Random) -> FimSample:
    start, end = rng.choice(parentheticals(code))
    return FimSample(code[:start], code[start:end], code[end:])


def build_samples(codes: list[str], rng: random.Random, mask: bool = True, min_masked: float = 0.2,
                  samples_per_game: int = 4) -> list[FimSample]:
    """Up to `samples_per_game` draws per game, each kept only if it masks >= min_masked of the game."""
    samples = []
    for code in codes:
        code = mask_names(code) if mask else code
        if not parentheticals(code):
            continue
        for _ in range(samples_per_game):
            sample = fim_sample(code, rng)
            if sample.masked_fraction >= min_masked:
                samples.append(sample)
    return samples


def ludemes(codes: list[str]) -> list[str]:
    """Every ludeme name (the word after an opening parenthesis) in the games, sorted."""
    names = {name for code in codes for name in _LUDEME.findall(_QUOTED.sub('""', code))}
    return sorted(name for name in names if name[0].islower())


def add_ludeme_tokens(tokenizer, model, codes: list[str]) -> int:
    """Add each ludeme as one token (with its '(' so it matches how ludemes appear) and resize the model."""
    added = tokenizer.add_tokens([f"({name}" for name in ludemes(codes)])
    if added:
        model.resize_token_embeddings(len(tokenizer))
    return added


def to_dataset(samples: list[FimSample]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": s.prompt, "completion": s.middle, "prefix": s.prefix, "suffix": s.suffix,
                               "masked_fraction": s.masked_fraction} for s in samples])


@dataclass
class LudiiDataConfig:
    """Build the Ludii fill-in-the-middle dataset and save it as a Hugging Face DatasetDict."""

    out: str = "data/ludii_fim"
    """Where DatasetDict.save_to_disk writes."""
    games: str = ""
    """Folder holding games_{train,test}.json (or the paper's ludii_descriptions_{train,test}.json); empty
    downloads the paper's split once, checks its SHA-256, and caches it."""
    mask_names: bool = True
    """Mask quoted names (game, pieces, ...) to consistent placeholders."""
    min_masked: float = 0.2
    """Keep samples whose removed part is at least this fraction of the game (0 keeps all)."""
    samples_per_game: int = 4
    seed: int = 0


def run_export(config: LudiiDataConfig) -> int:
    from datasets import DatasetDict

    from trainer.tasks.ludii_games import SPLITS, games_file

    rng = random.Random(config.seed)
    splits = {}
    for name in SPLITS:
        games = load_games(games_file(name, config.games), name)
        samples = build_samples(games, rng, config.mask_names, config.min_masked, config.samples_per_game)
        splits[name] = to_dataset(samples)
    DatasetDict(splits).save_to_disk(config.out)
    print(f"saved {', '.join(f'{k}: {len(v)}' for k, v in splits.items())} samples to {config.out}")
    return 0
