"""Result cache on Redis: identical items are scored once."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Mapping, Sequence

from reward_service.types import RewardItem, ScoredItem

PREFIX = "rlpr:cache:v1:"


def cache_key(reward: str, options: Mapping[str, str], item: RewardItem) -> str:
    """Everything that decides a reward, hashed; the item id is not part of it."""
    from reward_service.rewards import get_reward

    identity = get_reward(reward).cache_identity
    fields = identity(item) if identity else (item.prompt, item.completion, sorted(item.reference.items()))
    payload = json.dumps([reward, sorted(options.items()), *fields], ensure_ascii=False)
    return PREFIX + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class ResultCache:
    def __init__(self, redis, ttl_s: int):
        self.redis = redis
        self.ttl_s = ttl_s

    def get_many(self, reward: str, options: Mapping[str, str], items: Sequence[RewardItem]) -> dict[str, ScoredItem]:
        """item id -> cached result (marked cached, carrying the item's own id)."""
        if not items:
            return {}
        raw = self.redis.mget([cache_key(reward, options, item) for item in items])
        hits = {}
        for item, value in zip(items, raw):
            if value is not None:
                hit = ScoredItem.from_dict(json.loads(value))
                hits[item.id] = dataclasses.replace(hit, id=item.id, cached=True)
        return hits

    def put_many(self, reward: str, options: Mapping[str, str], pairs: Sequence[tuple[RewardItem, ScoredItem]]) -> None:
        """Store OK results only: failures may be transient and must be retried."""
        with self.redis.pipeline(transaction=False) as pipe:
            for item, result in pairs:
                if result.ok:
                    pipe.set(cache_key(reward, options, item), json.dumps(result.to_dict()), ex=self.ttl_s)
            pipe.execute()
