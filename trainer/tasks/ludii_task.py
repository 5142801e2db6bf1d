"""Ludii game synthesis for the trainers: FIM prompts, the `ludii` reward on prefix + middle + suffix."""
from __future__ import annotations

import random

from trainer.tasks.base import Prompt
from trainer.tasks.ludii_data import build_samples, load_games

EOS = "<|endoftext|>"
BPE_VOCAB = 2000
CONTEXT = 2048  # the longest training game is about 1,500 tokens


class LudiiTask:
    name = "ludii"
    reward = "ludii"
    reward_options: dict = {}
    min_new_tokens = 1
    max_new_tokens = 256
    reward_deadline_s = 1800.0  # a batch of games, some of them slow to evaluate

    def __init__(self, model: str, games: str, mask_names: bool = True, min_masked: float = 0.2, seed: int = 0,
                 ludeme_tokens: bool = False, model_size: str = "4x256"):
        self.model = model
        self.model_size = model_size
        self.seed = seed
        self.ludeme_tokens = ludeme_tokens
        self._codes = load_games(games)
        self._samples = build_samples(self._codes, random.Random(seed), mask_names, min_masked)
        if not self._samples:
            raise ValueError(f"no FIM samples from {games}: lower --ludii-min-masked")

    def load(self, **pretrained_kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not self.model:
            tokenizer, model = self._from_scratch()
        else:
            tokenizer = AutoTokenizer.from_pretrained(self.model, padding_side="left")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForCausalLM.from_pretrained(self.model, **pretrained_kwargs)
        if self.ludeme_tokens:
            from trainer.tasks.ludii_data import add_ludeme_tokens

            add_ludeme_tokens(tokenizer, model, self._codes)
        return tokenizer, model

    def _from_scratch(self):
        """A small GPT-2 over a byte-level BPE tokenizer trained on the training games: the task runs
        with no model hub. Pre-train it with `rlpr sft --task ludii` before RL."""
        import torch
        from tokenizers import ByteLevelBPETokenizer
        from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(self._codes, vocab_size=BPE_VOCAB, min_frequency=2, special_tokens=[EOS],
                                show_progress=False)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, pad_token=EOS,
                                            padding_side="left", model_max_length=CONTEXT)
        layers, width = (int(v) for v in self.model_size.split("x"))
        torch.manual_seed(self.seed)
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=CONTEXT, n_embd=width, n_layer=layers,
                            n_head=max(1, width // 64), eos_token_id=tokenizer.eos_token_id,
                            bos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
        return tokenizer, GPT2LMHeadModel(config)

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

    def baseline(self):
        return None  # no reward is known that a policy reaches without reading the prompt
