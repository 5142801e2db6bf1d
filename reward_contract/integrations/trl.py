"""A TRL `reward_funcs` entry backed by an rlpr reward service (or by in-process scoring).

    from reward_contract.integrations.trl import RlprReward
    trainer = GRPOTrainer(..., reward_funcs=[RlprReward("arithmetic", url="grpc://127.0.0.1:50051")])

TRL logs each reward function as `rewards/<__name__>/mean`: an adapter is named `rlpr_<reward>`,
or `name=` (two adapters of one reward need two names).

Several rewards, weighted, map onto TRL in one of two ways:
- one adapter of a composite reward, `RlprReward([RewardTerm("arithmetic"), RewardTerm("length_penalty",
  0.1)])`: the service sums the terms, an item fails if any term fails, and each term's mean is
  logged as `reward/<name>`;
- TRL's own `reward_funcs` and `reward_weights`: `funcs, weights = rlpr_reward_funcs(terms, url=...)`,
  then `GRPOConfig(reward_weights=weights)` and `reward_funcs=funcs`. TRL sums what each scored
  (nansum), so an item one term failed keeps the others' reward there. `AsyncRlprReward` is the same reward as
a coroutine: TRL (0.27+) gathers coroutine reward functions, so several rewards are scored at
once, each waiting on a worker thread, never on TRL's event loop.

Dataset columns other than the prompt become each item's reference (e.g. `previous`,
`target`). An item the service could not score comes back as None: TRL then leaves it out
of its group's baseline and gives it no advantage. Failed items are logged through TRL's
`log_metric` as `rlpr/failed_items`.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

from reward_contract.client import RewardClient, make_client
from reward_contract.errors import RlprError
from reward_contract.settings import choice_names
from reward_contract.types import ItemStatus, RewardChoice, RewardItem, RewardTerm, ScoredItem

# Keyword arguments TRL passes to every reward function that are not dataset columns.
TRL_KWARGS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}


def _text(message) -> str:
    """A plain string, or the last message's content in TRL's conversational format."""
    return message if isinstance(message, str) else message[-1]["content"]


class RlprReward:
    def __init__(self, reward: RewardChoice, url: str = "", token: str = "", options: Mapping[str, object] | None = None,
                 deadline_s: float | None = None, reference_columns: Sequence[str] | None = None,
                 transform: Callable[[str], str] | None = None, time_limit_reward: float | None = None,
                 client: RewardClient | None = None, name: str = ""):
        self.reward = reward
        self.client = client or make_client(url, token)
        self.options = dict(options or {})
        self.deadline_s = deadline_s
        self.reference_columns = reference_columns
        self.transform = transform or (lambda text: text)
        self.time_limit_reward = time_limit_reward
        self.__name__ = name or "rlpr_" + "+".join(choice_names(reward))  # TRL names its reward metrics after this

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        return self.score_batch(prompts, completions, **kwargs)

    def score_batch(self, prompts, completions, **kwargs) -> list[float | None]:
        log_metric = kwargs.get("log_metric")
        columns = {k: v for k, v in kwargs.items() if k not in TRL_KWARGS
                   and (self.reference_columns is None or k in self.reference_columns)}
        texts = [self.transform(_text(c)) for c in completions]
        items = [RewardItem(str(i), _text(p), text, {k: str(v[i]) for k, v in columns.items()})
                 for i, (p, text) in enumerate(zip(prompts, texts))]
        try:
            results = self.client.score(self.reward, items, self.options, self.deadline_s)
        except RlprError:
            if log_metric:
                log_metric("rlpr/unavailable", 1.0)
            results = [ScoredItem.failed(item.id, ItemStatus.LOST, "the service could not be reached")
                       for item in items]
        rewards = [self.reward_of(r) for r in results]
        if log_metric:
            log_metric("rlpr/failed_items", float(sum(r is None for r in rewards)))
            terms: dict[str, list[float]] = {}
            for result in results:
                for term, value in (result.rewards if result.ok else {}).items():
                    terms.setdefault(term, []).append(value)
            for term, values in terms.items():
                log_metric(f"reward/{term}", sum(values) / len(values))
        self.after_batch(items, results, log_metric)
        return rewards

    def reward_of(self, result: ScoredItem) -> float | None:
        if result.ok:
            return result.reward
        if result.status is ItemStatus.TIME_LIMIT and self.time_limit_reward is not None:
            return self.time_limit_reward
        return None

    def after_batch(self, items: list[RewardItem], results: list[ScoredItem], log_metric) -> None:
        """A hook for subclasses that log more about each batch (items hold the scored completions)."""

    def close(self) -> None:
        self.client.close()


class AsyncRlprReward(RlprReward):
    """RlprReward as a coroutine function, for TRL's asyncio.gather of reward functions. The gRPC
    call runs on a worker thread: the event loop stays free for the other rewards."""

    async def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        import asyncio

        return await asyncio.to_thread(self.score_batch, prompts, completions, **kwargs)


def rlpr_reward_funcs(terms: Sequence[RewardTerm], **kwargs) -> tuple[list[RlprReward], list[float]]:
    """TRL's `reward_funcs` and `reward_weights` for a weighted sum of rlpr rewards: one adapter per
    term (with the term's options, named `rlpr_<reward>`) and the terms' weights. `kwargs` go to
    every adapter (url, token, deadline_s, ...)."""
    return [RlprReward(t.reward, options=t.options, **kwargs) for t in terms], [float(t.weight) for t in terms]
