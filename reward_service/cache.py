"""Result cache on Redis: identical items are scored once."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Mapping, Sequence

from reward_service.types import RewardItem, ScoredItem

PREFIX = "rlpr:cache:v1:"


def cache_keys(reward: str, options: Mapping[str, str], items: Sequence[RewardItem]) -> list[str]:
    """Everything that decides each item's reward, hashed; item ids are not part of it."""
    from reward_service.rewards import get_reward

    identity = get_reward(reward).cache_identity
    head = [reward, sorted(options.items())]
    return [_digest(head + list(identity(item) if identity else
                                (item.prompt, item.completion, sorted(item.reference.items()))))
            for item in items]


def cache_key(reward: str, options: Mapping[str, str], item: RewardItem) -> str:
    return cache_keys(reward, options, [item])[0]


def _digest(fields: list) -> str:
    payload = json.dumps(fields, ensure_ascii=False)
    return PREFIX + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class ResultCache:
    def __init__(self, redis, ttl_s: int):
        self.redis = redis
        self.ttl_s = ttl_s

    def get_many(self, reward: str, options: Mapping[str, str], items: Sequence[RewardItem]) -> dict[str, ScoredItem]:
        """item id -> cached result (marked cached, carrying the item's own id)."""
        if not items:
            return {}
        raw = self.redis.mget(cache_keys(reward, options, items))
        hits = {}
        for item, value in zip(items, raw):
            if value is not None:
                hit = ScoredItem.from_dict(json.loads(value))
                hits[item.id] = dataclasses.replace(hit, id=item.id, cached=True)
        return hits

    def put_many(self, reward: str, options: Mapping[str, str], pairs: Sequence[tuple[RewardItem, ScoredItem]]) -> None:
        """Store OK results only: failures may be transient and must be retried."""
        keep = [(item, result) for item, result in pairs if result.ok]
        keys = cache_keys(reward, options, [item for item, _ in keep])
        with self.redis.pipeline(transaction=False) as pipe:
            for key, (_, result) in zip(keys, keep):
                pipe.set(key, json.dumps(result.to_dict()), ex=self.ttl_s)
            pipe.execute()
