"""verl's custom reward function, backed by an rlpr reward service.

In verl's config (`reward.custom_reward_function`; the path is what
`python -m reward_contract.integrations.verl` prints, wherever rlpr is installed, editable or not):

    reward:
      custom_reward_function:
        path: /path/printed/by/the/command/above/verl.py
        name: compute_score_async    # or compute_score
        reward_kwargs: {url: "grpc://127.0.0.1:50051"}

verl's reward loop scores each sample on its own under `asyncio.gather` (the `naive` and
`rate_limited` reward managers): `compute_score_async` is a coroutine, so those calls overlap,
each waiting on a worker thread; `compute_score` is the same, synchronous, and also takes a whole
batch (`data_sources=`, `solution_strs=`, ..., as verl's `batch` manager passes them).

The reward kind is each item's `data_source` unless `reward` is given. `ground_truth` becomes
the item's reference (reward_contract.labels: a JSON object names fields, a bare string fills
the reward's label field, e.g. arithmetic's `previous`). Each score is a dict: `score`, and
`rlpr_failed` (1.0 for an item the service could not score, whose score is then `failed_score`,
default 0.0). A request that cannot be served at all raises.
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

from reward_contract.client import RewardClient, make_client
from reward_contract.errors import ConfigError
from reward_contract.labels import reference_from_label
from reward_contract.types import RewardItem

_KWARGS = {"url", "token", "reward", "options", "deadline_s", "failed_score"}


@functools.lru_cache(maxsize=8)
def _client(url: str, token: str) -> RewardClient:
    return make_client(url, token)


@functools.lru_cache(maxsize=8)
def _label_fields(url: str, token: str) -> dict[str, str]:
    return {kind.name: kind.label_field for kind in _client(url, token).kinds()}


def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, *, data_sources=None,
                  solution_strs=None, ground_truths=None, extra_infos=None, **reward_kwargs):
    """verl's naive manager calls this per item (returns a dict); its batch manager per batch (a list)."""
    if solution_strs is None:
        return score_batch([data_source], [solution_str], [ground_truth], **reward_kwargs)[0]
    return score_batch(list(data_sources), list(solution_strs), list(ground_truths), **reward_kwargs)


async def compute_score_async(data_source=None, solution_str=None, ground_truth=None, extra_info=None,
                              **reward_kwargs):
    """compute_score as a coroutine, for verl's async reward loop: the call runs on a worker thread."""
    import asyncio

    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth, extra_info,
                                   **reward_kwargs)


def score_batch(data_sources: Sequence[str], solutions: Sequence[str], ground_truths: Sequence[object],
                **reward_kwargs) -> list[dict[str, float]]:
    unknown = set(reward_kwargs) - _KWARGS
    if unknown:
        raise ConfigError(f"unknown reward_kwargs {sorted(unknown)}; rlpr takes {sorted(_KWARGS)}")
    url, token = reward_kwargs.get("url", ""), reward_kwargs.get("token", "")
    options: Mapping[str, object] = reward_kwargs.get("options") or {}
    failed_score = float(reward_kwargs.get("failed_score", 0.0))
    kinds = [reward_kwargs.get("reward") or source for source in data_sources]
    label_fields = _label_fields(url, token)
    scores: list[dict[str, float]] = [{}] * len(solutions)
    for kind in dict.fromkeys(kinds):  # one service call per reward kind in the batch
        rows = [i for i, k in enumerate(kinds) if k == kind]
        items = [RewardItem(str(i), "", solutions[i],
                            reference_from_label(ground_truths[i], label_fields.get(kind, ""), kind)) for i in rows]
        results = _client(url, token).score(kind, items, options, reward_kwargs.get("deadline_s"))
        for i, result in zip(rows, results):
            scores[i] = {"score": result.reward if result.ok else failed_score, "rlpr_failed": float(not result.ok)}
    return scores


if __name__ == "__main__":
    print(__file__)  # the `path` for verl's custom_reward_function
