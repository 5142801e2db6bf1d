"""Result cache on Redis: identical items are scored once.

Entries are the service's one internal encoding of a result (a pickled ScoredItem). Only
OK results are kept: failures may be transient. Memory is bounded twice: the Redis that
holds the cache runs with `maxmemory` and an LRU policy (compose and `rlpr up`), and each
entry's lifetime shrinks with its size, so an entry costs at most about
`ttl_s x SIZE_REFERENCE_BYTES` byte-seconds: a 300-byte arithmetic result lives the full
TTL, a 4 KB Ludii result with a long compiler message a quarter of it (never less than
`min_ttl_s`). Writing is best-effort: a failed write is counted and logged, and the scored
results still go back to the caller.
"""
from __future__ import annotations

import logging
import pickle
from typing import Sequence

from redis.exceptions import RedisError

from reward_contract.types import ScoredItem
from reward_service.core.prometheus import ServiceMetrics
from reward_service.core.request import ResolvedRequest

log = logging.getLogger(__name__)
SIZE_REFERENCE_BYTES = 1024


def entry_ttl_s(size: int, ttl_s: int, min_ttl_s: int) -> int:
    return max(min_ttl_s, min(ttl_s, ttl_s * SIZE_REFERENCE_BYTES // max(size, 1)))


class ResultCache:
    def __init__(self, redis, ttl_s: int, min_ttl_s: int, metrics: ServiceMetrics):
        self.redis = redis  # redis.asyncio
        self.ttl_s = ttl_s
        self.min_ttl_s = min(min_ttl_s, ttl_s)
        self.metrics = metrics

    async def get_many(self, request: ResolvedRequest) -> dict[str, ScoredItem]:
        """item id -> cached result, marked cached and carrying the item's own id."""
        raw = await self.redis.mget(request.cache_keys)
        hits = {}
        for item, value in zip(request.items, raw):
            if value is not None:
                hit = pickle.loads(value)
                hits[item.id] = ScoredItem(item.id, hit.reward, hit.components, hit.status, hit.error, True,
                                           hit.detail)
        return hits

    async def put_many(self, request: ResolvedRequest, results: Sequence[ScoredItem]) -> None:
        keys = dict(zip((item.id for item in request.items), request.cache_keys))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for result in results:
                    if result.ok:
                        blob = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
                        pipe.set(keys[result.id], blob, ex=entry_ttl_s(len(blob), self.ttl_s, self.min_ttl_s))
                await pipe.execute()
        except RedisError as exc:  # the results are scored; losing their cache entries costs only a rescore
            self.metrics.cache_write_failures.labels(request.spec.name).inc()
            log.warning("cache write failed; results returned uncached",
                        extra={"reward": request.spec.name, "request_id": request.id, "error": repr(exc)})
