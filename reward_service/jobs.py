"""The RQ job run by reward workers: score one chunk and push the results to the reply list."""
from __future__ import annotations

import json

from rq import get_current_job

from reward_service.rewards import get_reward
from reward_service.scoring import score_items
from reward_service.types import RewardItem

REPLY_TTL_S = 600  # a reply list outlives any request deadline, then Redis drops it


def score_chunk(reward: str, options: dict, items: list[dict], reply_key: str) -> int:
    spec = get_reward(reward)
    results = score_items(reward, spec.parse_options(options), [RewardItem(**item) for item in items])
    job = get_current_job()
    payload = json.dumps({"job_id": job.id, "results": [r.to_dict() for r in results]})
    with job.connection.pipeline() as pipe:
        pipe.rpush(reply_key, payload)
        pipe.expire(reply_key, REPLY_TTL_S)
        pipe.execute()
    return len(results)
