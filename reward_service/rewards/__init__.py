"""The reward registry: a plain name -> RewardSpec table."""
from __future__ import annotations

from reward_service.errors import UnknownReward
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
            chunk_size=256,
            job_timeout_s=60,
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
            job_timeout_s=600,
        ),
    )
}


def get_reward(name: str) -> RewardSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(REGISTRY))
        raise UnknownReward(f"unknown reward {name!r}; valid rewards: {valid}") from None
