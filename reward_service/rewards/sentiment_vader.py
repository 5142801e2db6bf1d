"""VADER sentiment reward: the compound score in [-1, 1], through NLTK.

NLTK's downloader cannot reach its server here, so the lexicon is read from the
`vaderSentiment` package, which ships the same `vader_lexicon.txt`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from reward_contract.types import RewardItem
from reward_service.rewards.base import RewardResult


@dataclass(frozen=True)
class VaderOptions:
    text: str = "completion"
    """What to score: `completion` alone, or `full` (prompt + completion)."""

    def __post_init__(self):
        if self.text not in ("completion", "full"):
            raise ValueError("text must be 'completion' or 'full'")


@functools.lru_cache(maxsize=1)
def analyzer():
    import nltk
    import vaderSentiment
    from nltk.sentiment.vader import SentimentIntensityAnalyzer

    lexicon_dir = os.path.dirname(vaderSentiment.__file__)
    if lexicon_dir not in nltk.data.path:
        # NLTK only opens resources under its data path, so register the package dir.
        nltk.data.path.append(lexicon_dir)
    return SentimentIntensityAnalyzer(lexicon_file="vader_lexicon.txt")


def score(item: RewardItem, options: VaderOptions) -> RewardResult:
    text = item.completion if options.text == "completion" else item.prompt + item.completion
    scores = analyzer().polarity_scores(text)
    return RewardResult(float(scores["compound"]), {k: float(v) for k, v in scores.items()})
