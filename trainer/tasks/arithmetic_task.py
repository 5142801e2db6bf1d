"""The arithmetic task for the trainers (data and tokenizer live in arithmetic.py)."""
from __future__ import annotations

import random

from trainer.tasks import arithmetic
from trainer.tasks.base import Prompt


class ArithmeticTask:
    name = "arithmetic"
    reward = "arithmetic"
    min_new_tokens = 1
    reward_deadline_s = 300.0

    def __init__(self, model: str = "", step: str = "last", model_size: str = "4x128", seed: int = 0,
                 lenient: bool = False, max_new_tokens: int = 8):
        self.model = model
        self.step = step
        sizes = [int(v) for v in model_size.split("x")]
        self.n_layer, self.n_embd = sizes[:2]
        self.n_head = sizes[2] if len(sizes) == 3 else max(1, self.n_embd // 32)
        self.seed = seed
        self.reward_options = {"lenient": "true"} if lenient else {}
        # Y_i has at most 4 terms: 7 tokens, plus the closing '='. The authors generated one token.
        self.max_new_tokens = max_new_tokens

    def load(self, **pretrained_kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.model:
            tokenizer = AutoTokenizer.from_pretrained(self.model, padding_side="left")
            return tokenizer, AutoModelForCausalLM.from_pretrained(self.model, **pretrained_kwargs)
        tokenizer = arithmetic.build_tokenizer()
        return tokenizer, arithmetic.build_model(tokenizer, self.n_layer, self.n_embd, self.n_head, self.seed)

    def prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        made = [arithmetic.make_prompt(rng, self.step) for _ in range(n)]
        return [Prompt(p.text, p.reference() | {"answer": p.answer}) for p in made]

    def stop_token_ids(self, tokenizer) -> list[int]:
        return [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("=")]

    def clean(self, completion: str) -> str:
        return completion.split("=", 1)[0].replace("<eos>", "").strip()

    def supervised_texts(self, n: int, rng: random.Random, split: str) -> list[tuple[str, str]]:
        # Separate streams for train and validation, both fresh random chains.
        rng = random.Random(rng.random() + (0.5 if split == "validation" else 0.0))
        prompts = self.prompts(n, rng)
        return [(p.text, " " + p.reference["answer"] + " =") for p in prompts]

    def baseline(self):
        """The best constant answer of the final-sum task: the collapse the paper warns of."""
        if self.step != "last":
            return None
        from trainer.summary import Baseline

        answer, reward = arithmetic.best_constant_answer()
        return Baseline(f"the best constant answer ({answer})", reward)
