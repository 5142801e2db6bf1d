"""Sentiment-classifier reward: the positive label's logit or probability.

This is the paper's DistilBERT baseline, for any Hugging Face sequence classifier
given by name or local path. Models are loaded once per worker and kept.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from reward_contract.errors import quoted
from reward_contract.types import RewardItem
from reward_service.rewards.base import InvalidItem, RewardResult


@dataclass(frozen=True)
class ClassifierOptions:
    model: str = ""
    """Hub name or local path of an AutoModelForSequenceClassification (required)."""
    positive_label: str = ""
    """Label name for 'positive'; empty picks a label containing 'pos', else index 1."""
    output: str = "logit"
    """`logit` (the paper's choice) or `prob`."""
    text: str = "full"
    """Score `full` (prompt + completion) or `completion` alone."""
    max_length: int = 512

    def __post_init__(self):
        if not self.model:
            raise ValueError("option 'model' is required (a hub name or a local path)")
        if self.output not in ("logit", "prob"):
            raise ValueError("output must be 'logit' or 'prob'")
        if self.text not in ("completion", "full"):
            raise ValueError("text must be 'completion' or 'full'")


_load_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load(model: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    classifier = AutoModelForSequenceClassification.from_pretrained(model).eval()
    return tokenizer, classifier


def load(model: str):
    with _load_lock:  # two threads must not load the same model twice
        try:
            return _load(model)
        except OSError as exc:  # not a local path, and not in the Hugging Face cache this worker sees
            # The message reaches clients: it names what they sent, never this worker's paths or settings.
            raise RuntimeError(
                f"cannot load the classifier {quoted(model)}: it is not a model directory this worker can read, "
                "and workers never download models. Give a local path, or mount a Hugging Face cache holding it "
                "(docker compose mounts $RLPR_MODEL_CACHE there)") from None


def positive_index(id2label: dict, wanted: str) -> int:
    labels = {int(i): str(name) for i, name in id2label.items()}
    if wanted:
        for index, name in labels.items():
            if name.lower() == wanted.lower():
                return index
        raise InvalidItem(f"label {wanted!r} not in the model's labels {sorted(labels.values())}")
    for index, name in labels.items():
        if "pos" in name.lower():
            return index
    return 1 if len(labels) > 1 else 0


def score(item: RewardItem, options: ClassifierOptions) -> RewardResult:
    import torch

    tokenizer, classifier = load(options.model)
    text = item.completion if options.text == "completion" else item.prompt + item.completion
    batch = tokenizer(text, return_tensors="pt", truncation=True, max_length=options.max_length)
    with torch.inference_mode():
        logits = classifier(**batch).logits[0].float()
    index = positive_index(classifier.config.id2label, options.positive_label)
    prob = torch.softmax(logits, dim=-1)[index].item()
    logit = logits[index].item()
    reward = logit if options.output == "logit" else prob
    return RewardResult(float(reward), {"logit": float(logit), "prob": float(prob)})
