"""Sentiment-classifier reward: the positive label's logit or probability.

This is the paper's DistilBERT baseline, for any Hugging Face sequence classifier
given by name or local path. Models are loaded once per worker and kept.

In the service (`rlpr serve`, `rlpr worker`, `rlpr up`) the `model` option is a name the operator
allowed in RLPR_CLASSIFIER_MODELS, never a path or a hub name a client chose: a client's string
that reached `from_pretrained` could probe the worker's filesystem and hold it on network
timeouts. Service processes also never reach the network (HF_HUB_OFFLINE, local files only).
In-process use (the trainer, scripts) is the operator's own and may name any local model.
"""
from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass

from reward_contract.errors import quoted
from reward_contract.types import RewardItem
from reward_service.rewards.base import InvalidItem, RewardResult


@dataclass(frozen=True)
class ClassifierOptions:
    model: str = ""
    """An AutoModelForSequenceClassification (required): in the service, a name from the operator's
    RLPR_CLASSIFIER_MODELS; in-process, any local path or name in the Hugging Face cache."""
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
        model_source(self.model)  # in the service, refuses a model the operator did not allow
        if self.output not in ("logit", "prob"):
            raise ValueError("output must be 'logit' or 'prob'")
        if self.text not in ("completion", "full"):
            raise ValueError("text must be 'completion' or 'full'")


ALLOWED_MODELS_ENV = "RLPR_CLASSIFIER_MODELS"
_load_lock = threading.Lock()
_service = {"locked_down": False}


def lock_down() -> None:
    """Make this process a service process: only allowed models, and no network for any of them.
    Called at the start of `rlpr serve` and `rlpr worker`, before anything imports huggingface_hub
    (which reads HF_HUB_OFFLINE once, at import)."""
    _service["locked_down"] = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    allowed_models()  # a malformed list is a start-up error, not every request's


def allowed_models() -> dict[str, str]:
    """RLPR_CLASSIFIER_MODELS, comma-separated `NAME` (a hub name, read from the Hugging Face cache)
    or `NAME=PATH` (a local model directory): name -> what from_pretrained loads."""
    from reward_contract.errors import ConfigError

    allowed = {}
    for entry in filter(None, (e.strip() for e in os.environ.get(ALLOWED_MODELS_ENV, "").split(","))):
        name, _, path = entry.partition("=")
        if not name.strip() or (_ and not path.strip()):
            raise ConfigError(f"{ALLOWED_MODELS_ENV} entry {entry!r} is not NAME or NAME=PATH, e.g. "
                              "distilbert-imdb=/models/distilbert-imdb,lvwerra/distilbert-imdb")
        allowed[name.strip()] = path.strip() or name.strip()
    return allowed


def model_source(model: str) -> str:
    """What from_pretrained loads for the `model` option; in the service, only an allowed name."""
    if not _service["locked_down"]:
        return model
    allowed = allowed_models()
    if model not in allowed:
        names = ", ".join(sorted(allowed)) if allowed else f"none (the operator has not set {ALLOWED_MODELS_ENV})"
        raise ValueError(f"model {quoted(model)} is not one this service allows; allowed: {names}")
    return allowed[model]


@functools.lru_cache(maxsize=4)
def _load(source: str, local_only: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    classifier = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=local_only).eval()
    return tokenizer, classifier


def load(model: str):
    source = model_source(model)
    with _load_lock:  # two threads must not load the same model twice
        try:
            return _load(source, _service["locked_down"])
        except OSError as exc:  # not a local path, and not in the Hugging Face cache this worker sees
            # The message reaches clients: it names what they sent, never this worker's paths or settings.
            fix = (f"the operator allowed it in {ALLOWED_MODELS_ENV}, so its files are missing: put it in the "
                   "Hugging Face cache the workers mount ($RLPR_MODEL_CACHE in docker compose) or at its NAME=PATH"
                   if _service["locked_down"] else "give a local model directory or a name in the Hugging Face cache")
            raise RuntimeError(f"cannot load the classifier {quoted(model)}: workers never download models, and "
                               f"{fix}") from None


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
