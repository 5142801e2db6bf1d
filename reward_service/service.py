"""The reward service core, shared by the gRPC and REST fronts and by in-process clients."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

from redis.exceptions import RedisError

from reward_service.backends import Backend, InProcessBackend, QueueBackend
from reward_service.cache import ResultCache
from reward_service.config import ServeConfig
from reward_service.errors import Unavailable
from reward_service.metrics import ServiceMetrics
from reward_service.rewards import REGISTRY, get_reward
from reward_service.rewards.base import RewardSpec
from reward_service.types import RewardItem, ScoredItem
from reward_service.validation import Limits, validate_items


class RewardService:
    def __init__(
        self,
        backend: Backend,
        cache: ResultCache | None = None,
        limits: Limits = Limits(),
        default_deadline_s: float = 120.0,
        redis=None,
    ):
        self.backend = backend
        self.cache = cache
        self.limits = limits
        self.default_deadline_s = default_deadline_s
        self.redis = redis
        self.metrics = ServiceMetrics()

    @classmethod
    def from_config(cls, config: ServeConfig) -> "RewardService":
        limits = Limits(config.max_batch_items, config.max_field_chars)
        if config.backend == "inprocess":
            return cls(InProcessBackend(), None, limits, config.deadline_s)
        from redis import Redis

        redis = Redis.from_url(config.redis_url, socket_timeout=10, socket_connect_timeout=5)
        cache = ResultCache(redis, config.cache_ttl_s) if config.cache else None
        return cls(QueueBackend(redis, config.retries), cache, limits, config.deadline_s, redis)

    @classmethod
    def embedded(cls) -> "RewardService":
        """The no-Redis default: the same reward functions, run in this process."""
        return cls(InProcessBackend())

    def rewards(self) -> list[RewardSpec]:
        return [REGISTRY[name] for name in sorted(REGISTRY)]

    def healthy(self) -> bool:
        if self.redis is None:
            return True
        try:
            return bool(self.redis.ping())
        except Exception:  # noqa: BLE001 - any failure to ping is "not healthy"
            return False

    def score(
        self,
        reward: str,
        items: Sequence[RewardItem],
        options: Mapping[str, str] | None = None,
        deadline_s: float | None = None,
        use_cache: bool = True,
        front: str = "python",
    ) -> list[ScoredItem]:
        spec = get_reward(reward)
        options = {k: str(v) for k, v in (options or {}).items()}
        spec.parse_options(options)  # reject bad options before any work is queued
        validate_items(items, self.limits)
        self.metrics.requests.labels(front, reward).inc()
        started = time.monotonic()
        deadline = started + (deadline_s if deadline_s and deadline_s > 0 else self.default_deadline_s)
        cache = self.cache if use_cache else None
        try:
            hits = cache.get_many(reward, options, items) if cache else {}
            misses = [item for item in items if item.id not in hits]
            fresh = self.backend.score(spec, options, misses, deadline) if misses else []
            if cache:
                cache.put_many(reward, options, list(zip(misses, fresh)))
        except RedisError as exc:
            raise Unavailable(f"redis is unreachable: {exc}") from exc
        by_id = hits | {result.id: result for result in fresh}
        results = [by_id[item.id] for item in items]
        self.metrics.latency.labels(reward).observe(time.monotonic() - started)
        for result in results:
            self.metrics.items.labels(reward, result.status.value, str(result.cached).lower()).inc()
        return results
