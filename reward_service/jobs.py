"""The RQ job run by reward workers: score one chunk and push the results to the reply list."""
from __future__ import annotations

import pickle

from rq import get_current_job

from reward_service.rewards import get_reward
from reward_service.scoring import score_items
from reward_service.types import RewardItem, ScoredItem

REPLY_TTL_S = 600  # a reply list outlives any request deadline, then Redis drops it


def pack_items(items: list[RewardItem]) -> list[tuple]:
    """Plain tuples: much cheaper to build and pickle than dataclasses.asdict for big chunks."""
    return [(i.id, i.prompt, i.completion, dict(i.reference)) for i in items]


def unpack_reply(payload: bytes) -> tuple[str, list[ScoredItem]]:
    job_id, rows = pickle.loads(payload)
    return job_id, [ScoredItem.from_tuple(row) for row in rows]


def score_chunk(reward: str, options: dict, items: list[tuple], reply_key: str) -> int:
    spec = get_reward(reward)
    results = score_items(reward, spec.parse_options(options), [RewardItem(*item) for item in items])
    job = get_current_job()
    # Pickle, like RQ's own job payloads: the reply list is internal, and JSON costs ~10x more.
    payload = pickle.dumps((job.id, [r.to_tuple() for r in results]), protocol=pickle.HIGHEST_PROTOCOL)
    with job.connection.pipeline() as pipe:
        pipe.rpush(reply_key, payload)
        pipe.expire(reply_key, REPLY_TTL_S)
        pipe.execute()
    return len(results)
