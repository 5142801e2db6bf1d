"""The reward registry: a plain name -> RewardSpec table.

Extra rewards plug in without touching this file, two ways:
- an installed package that declares RewardSpec objects under the entry-point group
  `rlpr.rewards` (`pip install my-rewards` is enough; see docs/custom_rewards.md);
- `RLPR_REWARD_PLUGINS`, a comma-separated list of `module:attribute` naming RewardSpec objects.
The API server and every worker must see the same rewards. A plugin may not take a name that
is already registered: a reward that silently replaced another would score differently.
"""
from __future__ import annotations

import importlib
import os

from reward_contract.errors import UnknownReward
from reward_service.rewards import arithmetic, ludii, repetition, sentiment_classifier, sentiment_vader
from reward_service.rewards.base import RewardSpec

REGISTRY: dict[str, RewardSpec] = {
    spec.name: spec
    for spec in (
        RewardSpec(
            name="arithmetic",
            description="2/(1+exp(|value(G)-value(Y)|/10)); 0 for an invalid sum (strict: one '+' fewer)",
            score=arithmetic.score,
            options_type=arithmetic.ArithmeticOptions,
            reference_fields=("previous", "target"),
            chunk_size=128,
            label_field="previous",
        ),
        RewardSpec(
            name="sentiment_vader",
            description="VADER compound score in [-1, 1] (NLTK)",
            score=sentiment_vader.score,
            options_type=sentiment_vader.VaderOptions,
        ),
        RewardSpec(
            name="sentiment_classifier",
            description="positive-label logit or probability of a Hugging Face sequence classifier",
            score=sentiment_classifier.score,
            options_type=sentiment_classifier.ClassifierOptions,
            chunk_size=16,
            job_timeout_s=300,
        ),
        RewardSpec(
            name="ludii",
            description="Ludii game: 0 if it does not compile, 0.1 if unplayable, else mean cube roots of B, F, D",
            score=ludii.score,
            options_type=ludii.LudiiOptions,
            reference_fields=("prefix", "suffix"),
            chunk_size=1,
            job_timeout_s=int(ludii.MAX_TIME_LIMIT_S) + 60,
            max_inflight_items=1024,
            default_deadline_s=ludii.DEFAULT_DEADLINE_S,
            # The same game reached from different FIM prompts is evaluated once.
            cache_identity=lambda item: (ludii.game_text(item),),
        ),
        RewardSpec(
            name="repetition",
            description="minus the share of the completion's word n-grams that repeat an earlier one, in (-1, 0]",
            score=repetition.score,
            options_type=repetition.RepetitionOptions,
        ),
    )
}


ENTRY_POINT_GROUP = "rlpr.rewards"


def _checked(spec: object, source: str) -> RewardSpec:
    if not isinstance(spec, RewardSpec):
        raise TypeError(f"{source} is a {type(spec).__name__}, not a RewardSpec")
    if spec.name in REGISTRY and REGISTRY[spec.name] is not spec:  # the same spec found twice is one reward
        raise ValueError(f"{source} names reward {spec.name!r}, which is already registered; rename it")
    return spec


def _load_plugins(spec_paths: str) -> None:
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = _checked(entry.load(), f"entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP!r}")
        REGISTRY[spec.name] = spec
    for path in filter(None, (p.strip() for p in spec_paths.split(","))):
        module, _, attribute = path.partition(":")
        spec = _checked(getattr(importlib.import_module(module), attribute), f"RLPR_REWARD_PLUGINS entry {path!r}")
        REGISTRY[spec.name] = spec


_load_plugins(os.environ.get("RLPR_REWARD_PLUGINS", ""))


def get_reward(name: str) -> RewardSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(REGISTRY))
        raise UnknownReward(f"unknown reward {name!r}; valid rewards: {valid}") from None
