"""Arithmetic simplification (paper 4.2): sum 5 digits by adding one random pair of terms per step.

A chain looks like `6 + 10 + 7 + 1 + 3 = 6 + 17 + 1 + 3 = 23 + 1 + 3 = 23 + 4 = 27`. A prompt is
the true chain up to `Y_{i-1} =` (teacher forcing), and the model generates G_i.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

SPECIAL = ["<pad>", "<unk>", "<eos>"]
MAX_VALUE = 45  # 5 digits of at most 9
VOCAB = SPECIAL + [str(n) for n in range(MAX_VALUE + 1)] + ["+", "="]
CONTEXT = 64


def random_chain(rng: random.Random, digits: int = 5) -> list[list[int]]:
    """Each step adds two random adjacent-or-not terms; steps[0] holds the digits, steps[-1] one integer."""
    terms = [rng.randint(0, 9) for _ in range(digits)]
    steps = [list(terms)]
    while len(terms) > 1:
        i, j = sorted(rng.sample(range(len(terms)), 2))
        merged = terms[i] + terms[j]
        terms = terms[:i] + [merged] + terms[i + 1 : j] + terms[j + 1 :]
        steps.append(list(terms))
    return steps


def render(terms: list[int]) -> str:
    return " + ".join(str(t) for t in terms)


def chain_text(steps: list[list[int]]) -> str:
    return " = ".join(render(s) for s in steps)


@dataclass(frozen=True)
class ArithmeticPrompt:
    text: str  # the chain up to and including the last "="
    previous: str  # Y_{i-1}
    answer: str  # Y_i, the true next step
    target: int  # the value every step shares

    def reference(self) -> dict[str, str]:
        return {"previous": self.previous, "target": str(self.target)}


def make_prompt(rng: random.Random, step: str = "last") -> ArithmeticPrompt:
    """`step="last"`: ask for the final sum (the authors' code); `"random"`: any step (the paper's text)."""
    steps = random_chain(rng)
    if step == "last":
        i = len(steps) - 1
    elif step == "random":
        i = rng.randint(1, len(steps) - 1)
    else:
        raise ValueError(f"step must be 'last' or 'random', got {step!r}")
    text = chain_text(steps[:i]) + " ="
    return ArithmeticPrompt(text, render(steps[i - 1]), render(steps[i]), sum(steps[0]))


def build_tokenizer():
    """A word-level `transformers` tokenizer over 0..45, '+', '=' (plus pad/unk/eos); save_pretrained works."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({token: i for i, token in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
        model_max_length=CONTEXT, padding_side="left",
    )


def build_model(tokenizer, n_layer: int = 4, n_embd: int = 128, n_head: int = 4, seed: int = 0):
    """A GPT-2 trained from scratch, context 64, as in the paper (size configurable)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=CONTEXT, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def supervised_text(rng: random.Random) -> str:
    """A whole chain, for the supervised baseline."""
    return chain_text(random_chain(rng))


def sum_distribution(digits: int = 5) -> dict[int, float]:
    """Exact distribution of the sum of `digits` uniform digits 0..9: the value every step of a chain has."""
    distribution = {0: 1.0}
    for _ in range(digits):
        step: dict[int, float] = {}
        for total, p in distribution.items():
            for digit in range(10):
                step[total + digit] = step.get(total + digit, 0.0) + p / 10
        distribution = step
    return distribution


def best_constant_answer(scale: float = 10.0) -> tuple[int, float]:
    """The single answer with the highest expected reward on the final-sum task, and that reward.

    A policy that always answers it is the trap the paper describes: no prompt information is
    used, yet the reward is well above zero. Computed from the generator, never typed in."""
    import math

    distribution = sum_distribution()
    expected = {answer: sum(p * 2 / (1 + math.exp(abs(answer - total) / scale)) for total, p in distribution.items())
                for answer in range(MAX_VALUE + 1)}
    best = max(expected, key=expected.get)
    return best, expected[best]
