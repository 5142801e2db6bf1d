"""Repetition penalty: minus the share of a completion's word n-grams that repeat an earlier one.

Why it exists: a programmed reward can be gamed. VADER's compound score climbs with every
positive word, so a sentiment policy drifts to "great great great ..."; weighted beside the
task's reward (`--reward sentiment_vader=1 --reward repetition=0.5`) this term makes that cost.
0 for a completion with no repeated n-gram (or fewer than n words), down to nearly -1.
"""
from __future__ import annotations

from dataclasses import dataclass

from reward_contract.types import RewardItem
from reward_service.rewards.base import RewardResult


@dataclass(frozen=True)
class RepetitionOptions:
    n: int = 1
    """Length of the word n-grams compared: 1 counts repeated words, 2 repeated word pairs."""

    def __post_init__(self):
        if not 1 <= self.n <= 16:
            raise ValueError("n must be between 1 and 16")


def score(item: RewardItem, options: RepetitionOptions) -> RewardResult:
    words = item.completion.lower().split()
    grams = [tuple(words[i:i + options.n]) for i in range(len(words) - options.n + 1)]
    if not grams:
        return RewardResult(0.0, {"ngrams": 0.0, "repeated": 0.0})
    repeated = len(grams) - len(set(grams))
    return RewardResult(-repeated / len(grams), {"ngrams": float(len(grams)), "repeated": float(repeated)})
