"""What every task provides to the trainers."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Protocol


@dataclass(frozen=True)
class Prompt:
    text: str
    reference: Mapping[str, str] = field(default_factory=dict)


class Task(Protocol):
    name: str
    reward: str  # default reward kind of the service
    reward_options: Mapping[str, str]
    max_new_tokens: int
    min_new_tokens: int
    reward_deadline_s: float  # default deadline of one reward batch

    def load(self, **pretrained_kwargs) -> tuple:
        """(tokenizer, causal LM). Tokenizers pad on the left, for generation. `pretrained_kwargs` go to
        `from_pretrained` (quantization); a model built from scratch takes none."""

    def prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        """n prompts with their reward references."""

    def stop_token_ids(self, tokenizer) -> list[int]:
        """Tokens that end a completion (always including EOS)."""

    def clean(self, completion: str) -> str:
        """The part of a decoded completion the reward sees."""

    def supervised_texts(self, n: int, rng: random.Random, split: str) -> list[tuple[str, str]]:
        """(prompt, target) pairs for the supervised baseline; the loss is on the target only."""

    def baseline(self):
        """A `trainer.summary.Baseline` for the task's own reward (a reward reached without using the
        prompt), or None where none is known."""
