"""Ludii game synthesis for the trainers: FIM prompts, the `ludii` reward on prefix + middle + suffix."""
from __future__ import annotations

import random

from trainer.tasks.base import Prompt
from trainer.tasks.ludii_data import build_samples, load_games


class LudiiTask:
    name = "ludii"
    reward = "ludii"
    reward_options: dict = {}
    min_new_tokens = 1
    max_new_tokens = 256

    def __init__(self, model: str, games: str, mask_names: bool = True, min_masked: float = 0.2, seed: int = 0,
                 ludeme_tokens: bool = False):
        self.model = model
        self.ludeme_tokens = ludeme_tokens
        self._codes = load_games(games)
        self._samples = build_samples(self._codes, random.Random(seed), mask_names, min_masked)
        if not self._samples:
            raise ValueError(f"no FIM samples from {games}: lower --ludii-min-masked")

    def load(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(self.model)
        if self.ludeme_tokens:
            from trainer.tasks.ludii_data import add_ludeme_tokens

            add_ludeme_tokens(tokenizer, model, self._codes)
        return tokenizer, model

    def prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        chosen = [rng.choice(self._samples) for _ in range(n)]
        return [Prompt(s.prompt, {"prefix": s.prefix, "suffix": s.suffix}) for s in chosen]

    def stop_token_ids(self, tokenizer) -> list[int]:
        return [tokenizer.eos_token_id]

    def clean(self, completion: str) -> str:
        return completion.split("###", 1)[0].strip()

    def supervised_texts(self, n: int, rng: random.Random, split: str) -> list[tuple[str, str]]:
        chosen = [rng.choice(self._samples) for _ in range(n)]
        return [(s.prompt, s.middle) for s in chosen]
