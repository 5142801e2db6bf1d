"""Positive-sentiment completion of movie-review prefixes (paper 4.1)."""
from __future__ import annotations

import pathlib
import random

from trainer.tasks.base import Prompt

SHIPPED = pathlib.Path(__file__).parent / "data" / "review_prefixes.txt"
# Words a from-scratch tiny model can emit; enough sentiment both ways for VADER to grade.
TINY_VOCAB_EXTRA = (
    "good great wonderful excellent love loved amazing brilliant best fun beautiful enjoyable happy superb "
    "bad awful terrible boring worst hate hated dull poor ugly sad weak mess waste . , ! and but the a it was "
    "is this film movie story acting plot really very not so too"
).split()


def load_prefixes(source: str) -> list[str]:
    if source == "imdb":
        from datasets import load_dataset

        data = load_dataset("stanfordnlp/imdb", split="train")
        return [row["text"].replace("<br />", " ") for row in data]
    path = SHIPPED if source == "shipped" else pathlib.Path(source)
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


class SentimentTask:
    name = "sentiment"
    reward = "sentiment_vader"
    reward_options = {"text": "completion"}
    min_new_tokens = 4
    max_new_tokens = 15
    reward_deadline_s = 300.0

    def __init__(self, model: str = "", prompts: str = "shipped", seed: int = 0):
        self.model = model
        self.source = prompts
        self.seed = seed
        self._prefixes = load_prefixes(prompts)

    def load(self, **pretrained_kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.model:
            tokenizer = AutoTokenizer.from_pretrained(self.model, padding_side="left")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer, AutoModelForCausalLM.from_pretrained(self.model, **pretrained_kwargs)
        return self._tiny_model()

    def _tiny_model(self):
        """A word-level GPT-2 over the shipped prefixes' words: lets the task run with no hub."""
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

        words = sorted({w for line in self._prefixes for w in line.lower().split()} | set(TINY_VOCAB_EXTRA))
        vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<eos>", *words])}
        core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        core.normalizer = None
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                            eos_token="<eos>", padding_side="left", model_max_length=64)
        torch.manual_seed(self.seed)
        config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=64, n_layer=2, n_head=2,
                            eos_token_id=2, bos_token_id=2, pad_token_id=0)
        return tokenizer, GPT2LMHeadModel(config)

    def prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        chosen = [rng.choice(self._prefixes) for _ in range(n)]
        # Prompts of 2-8 words, as in the paper's setup (2-8 tokens).
        cut = [" ".join(text.lower().split()[: rng.randint(2, 8)]) if not self.model else
               " ".join(text.split()[: rng.randint(2, 8)]) for text in chosen]
        return [Prompt(text) for text in cut]

    def stop_token_ids(self, tokenizer) -> list[int]:
        return [tokenizer.eos_token_id]

    def clean(self, completion: str) -> str:
        return completion

    def supervised_texts(self, n, rng, split):
        texts = [rng.choice(self._prefixes) for _ in range(n)]
        return [("", " ".join(t.split()[:24])) for t in texts]

    def baseline(self):
        return None  # no reward is known that a policy reaches without reading the prompt
