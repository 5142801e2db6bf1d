"""Rewards for the trainer: the reward client, masking of failed items, and overlap with generation."""
from __future__ import annotations

import logging
import random
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from reward_contract.client import RewardClient, make_client
from reward_contract.errors import ConfigError, RlprError
from reward_contract.settings import choice_names
from reward_contract.types import ItemStatus, RewardChoice, RewardItem
from trainer.tasks.base import Prompt

log = logging.getLogger(__name__)
PROBE_DEADLINE_S = 60.0


@dataclass
class Scores:
    rewards: list[float]  # 0.0 where not valid; never used for masked items
    valid: list[bool]  # False: the item failed and must be masked out of the update
    unavailable: bool = False  # the whole batch could not be scored
    time_limited: int = 0  # items whose reward hit its own time limit
    components: dict[str, float] = field(default_factory=dict)  # mean of each named component over scored items
    terms: dict[str, float] = field(default_factory=dict)  # a composite's mean reward of each term

    @property
    def failed(self) -> int:
        return self.valid.count(False)


class RewardScorer:
    """Scores completions through any RewardClient; a failure masks items, it never invents a reward.

    The one exception is explicit: with `timeout_reward` set, an item whose reward ran past its
    own time limit (status time_limit) gets that reward instead of being masked.
    """

    def __init__(self, client: RewardClient, reward: RewardChoice, options: Mapping[str, str], deadline_s: float,
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
                      components=component_means(r.components for r in results if r.ok),
                      terms=component_means(r.rewards for r in results if r.ok))

    def submit(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> "Future[Scores]":
        """Score in the background so the trainer can generate the next batch meanwhile."""
        return self._pool.submit(self.score, list(prompts), list(completions))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()


def open_scorer(url: str, token: str, reward: RewardChoice, options: Mapping[str, str], deadline_s: float,
                timeout_reward: float | None = None, probe: Prompt | None = None) -> RewardScorer:
    """A scorer whose service answered once: a wrong address, token or reward name stops the run
    at start-up with the fix, instead of masking every batch, and so does a reward that fails a
    `probe` item (see `probe_reward`). Later outages are masked."""
    client = make_client(url, token)
    try:
        kinds = {kind.name for kind in client.kinds()}
        for name in choice_names(reward):
            if name not in kinds:
                raise ConfigError(f"the reward service at {url or 'this process'} has no reward {name!r}; "
                                  f"it has: {', '.join(sorted(kinds))}")
        if probe is not None:
            probe_reward(client, reward, options, probe, deadline_s)
    except (RlprError, ConfigError):
        client.close()
        raise
    return RewardScorer(client, reward, options, deadline_s, timeout_reward)


def probe_reward(client: RewardClient, reward: RewardChoice, options: Mapping[str, str], prompt: Prompt,
                 deadline_s: float) -> None:
    """Score one of the task's prompts with an empty completion. A reward function that raises on it
    (status `error`: a classifier path that does not exist, a Ludii engine without its jar) fails on
    every item, so the run stops now with the reward's own message. An empty completion may be
    `invalid` or score 0; that is the reward working. No worker yet, or Redis away, is not a
    configuration error: the run starts and masks such batches until the service serves."""
    item = RewardItem("probe", prompt.text, "", dict(prompt.reference))
    try:
        # Bounded: a busy service (a Ludii batch's deadline is 30 min) must not hold the start; a probe
        # that times out says nothing about the configuration.
        [result] = client.score(reward, [item], options, min(deadline_s, PROBE_DEADLINE_S))
    except RlprError as exc:
        log.warning("the reward service could not score a probe item; starting anyway: %s", exc)
        return
    if result.status is ItemStatus.ERROR:
        raise ConfigError(f"the reward {', '.join(choice_names(reward))} fails with these options (probe item: "
                          f"{result.error}); "
                          "fix --reward-option or the reward's set-up before training")


def make_scorer(config, task) -> RewardScorer:
    """The scorer a training config asks for: the task's reward unless --reward overrides it."""
    reward, options = config.reward_for(task)
    return open_scorer(config.reward_url, config.reward_token, reward, options,
                       config.reward_deadline_s or task.reward_deadline_s, config.timeout_reward,
                       probe=task.prompts(1, random.Random(config.seed))[0])


def component_means(mappings) -> dict[str, float]:
    """Mean of each name over the mappings that carry it (Ludii's compiles, balance, ...; a composite's terms)."""
    sums: dict[str, list[float]] = {}
    for mapping in mappings:
        for name, value in mapping.items():
            sums.setdefault(name, []).append(value)
    return {name: sum(values) / len(values) for name, values in sums.items()}
