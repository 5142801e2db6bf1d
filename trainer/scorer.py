"""Rewards for the trainer: the reward client, masking of failed items, and overlap with generation."""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from reward_contract.client import RewardClient, make_client
from reward_contract.errors import ConfigError, RlprError
from reward_contract.types import ItemStatus, RewardItem
from trainer.tasks.base import Prompt

log = logging.getLogger(__name__)


@dataclass
class Scores:
    rewards: list[float]  # 0.0 where not valid; never used for masked items
    valid: list[bool]  # False: the item failed and must be masked out of the update
    unavailable: bool = False  # the whole batch could not be scored
    time_limited: int = 0  # items whose reward hit its own time limit
    components: dict[str, float] = field(default_factory=dict)  # mean of each named component over scored items

    @property
    def failed(self) -> int:
        return self.valid.count(False)


class RewardScorer:
    """Scores completions through any RewardClient; a failure masks items, it never invents a reward.

    The one exception is explicit: with `timeout_reward` set, an item whose reward ran past its
    own time limit (status time_limit) gets that reward instead of being masked.
    """

    def __init__(self, client: RewardClient, reward: str, options: Mapping[str, str], deadline_s: float,
                 timeout_reward: float | None = None):
        self.client = client
        self.reward = reward
        self.options = dict(options)
        self.deadline_s = deadline_s
        self.timeout_reward = timeout_reward
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewards")

    def score(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> Scores:
        items = [RewardItem(str(i), p.text, c, dict(p.reference)) for i, (p, c) in enumerate(zip(prompts, completions))]
        try:
            results = self.client.score(self.reward, items, self.options, self.deadline_s)
        except RlprError as exc:
            log.warning("reward batch could not be scored; masking it: %s", exc)
            return Scores([0.0] * len(items), [False] * len(items), unavailable=True)
        rewards, valid = [], []
        for result in results:
            timed_out = result.status is ItemStatus.TIME_LIMIT and self.timeout_reward is not None
            rewards.append(result.reward if result.ok else self.timeout_reward if timed_out else 0.0)
            valid.append(result.ok or timed_out)
        return Scores(rewards, valid, time_limited=sum(r.status is ItemStatus.TIME_LIMIT for r in results),
                      components=component_means(r for r in results if r.ok))

    def submit(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> "Future[Scores]":
        """Score in the background so the trainer can generate the next batch meanwhile."""
        return self._pool.submit(self.score, list(prompts), list(completions))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()


def open_scorer(url: str, token: str, reward: str, options: Mapping[str, str], deadline_s: float,
                timeout_reward: float | None = None) -> RewardScorer:
    """A scorer whose service answered once: a wrong address, token or reward name stops the run
    at start-up with the fix, instead of masking every batch. Later outages are masked."""
    client = make_client(url, token)
    try:
        kinds = {kind.name for kind in client.kinds()}
    except RlprError:
        client.close()
        raise
    if reward not in kinds:
        client.close()
        raise ConfigError(f"the reward service at {url or 'this process'} has no reward {reward!r}; "
                          f"it has: {', '.join(sorted(kinds))}")
    return RewardScorer(client, reward, options, deadline_s, timeout_reward)


def make_scorer(config, task) -> RewardScorer:
    """The scorer a training config asks for: the task's reward unless --reward overrides it."""
    reward = config.reward or task.reward
    options = dict(task.reward_options) if reward == task.reward else {}
    options.update(config.reward_options)
    return open_scorer(config.reward_url, config.reward_token, reward, options,
                       config.reward_deadline_s or task.reward_deadline_s, config.timeout_reward)


def component_means(results) -> dict[str, float]:
    """Mean of each named component over the results that carry it (Ludii's compiles, balance, ...)."""
    sums: dict[str, list[float]] = {}
    for result in results:
        for name, value in result.components.items():
            sums.setdefault(name, []).append(value)
    return {name: sum(values) / len(values) for name, values in sums.items()}
