"""The reward registry: a plain name -> RewardSpec table.

Extra rewards plug in without touching this file: set `RLPR_REWARD_PLUGINS` to a
comma-separated list of `module:attribute` naming RewardSpec objects. The API server and
every worker must see the same value.
"""
from __future__ import annotations

import importlib
import os

from reward_contract.errors import UnknownReward
from reward_service.rewards import arithmetic, ludii, sentiment_classifier, sentiment_vader
from reward_service.rewards.base import RewardSpec

REGISTRY: dict[str, RewardSpec] = {
    spec.name: spec
    for spec in (
        RewardSpec(
            name="arithmetic",
            description="2/(1+exp(|value(G)-value(Y)|/10)); 0 for an invalid sum (strict: one '+' fewer)",
            score=arithmetic.score,
            options_type=arithmetic.ArithmeticOptions,
            queue="arithmetic",
            chunk_size=128,
            job_timeout_s=60,
            label_field="previous",
        ),
        RewardSpec(
            name="sentiment_vader",
            description="VADER compound score in [-1, 1] (NLTK)",
            score=sentiment_vader.score,
            options_type=sentiment_vader.VaderOptions,
            queue="sentiment_vader",
            chunk_size=64,
            job_timeout_s=60,
        ),
        RewardSpec(
            name="sentiment_classifier",
            description="positive-label logit or probability of a Hugging Face sequence classifier",
            score=sentiment_classifier.score,
            options_type=sentiment_classifier.ClassifierOptions,
            queue="sentiment_classifier",
            chunk_size=16,
            job_timeout_s=300,
        ),
        RewardSpec(
            name="ludii",
            description="Ludii game: 0 if it does not compile, 0.1 if unplayable, else mean cube roots of B, F, D",
            score=ludii.score,
            options_type=ludii.LudiiOptions,
            queue="ludii",
            chunk_size=1,
            job_timeout_s=int(ludii.MAX_TIME_LIMIT_S) + 60,
            max_inflight_items=1024,
            default_deadline_s=ludii.DEFAULT_DEADLINE_S,
            # The same game reached from different FIM prompts is evaluated once.
            cache_identity=lambda item: (ludii.game_text(item),),
        ),
    )
}


def _load_plugins(spec_paths: str) -> dict[str, RewardSpec]:
    plugins = {}
    for path in filter(None, (p.strip() for p in spec_paths.split(","))):
        module, _, attribute = path.partition(":")
        spec = getattr(importlib.import_module(module), attribute)
        if not isinstance(spec, RewardSpec):
            raise TypeError(f"RLPR_REWARD_PLUGINS entry {path!r} is a {type(spec).__name__}, not a RewardSpec")
        plugins[spec.name] = spec
    return plugins


REGISTRY.update(_load_plugins(os.environ.get("RLPR_REWARD_PLUGINS", "")))


def get_reward(name: str) -> RewardSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(REGISTRY))
        raise UnknownReward(f"unknown reward {name!r}; valid rewards: {valid}") from None
