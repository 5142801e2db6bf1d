"""What the service knows about its dependencies: is Redis reachable, which queues have live workers.

A monitor refreshes this every second in the API's event loop. Health endpoints report it,
and a request for a queue no live worker serves is refused at once (FAILED_PRECONDITION /
503) instead of waiting for its deadline; while Redis is unreachable, or for REJOIN_S after it
came back empty and its workers are registering again, the answer is UNAVAILABLE, which clients
retry with backoff.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from redis.exceptions import RedisError

from reward_service.config import DEAD_AFTER_S

log = logging.getLogger(__name__)
LIVE_S = DEAD_AFTER_S  # a worker whose last heartbeat is older is dead: no work is routed to it
STALE_S = 5.0  # a running monitor finishes a check every interval, or every STALL_S (2 s) when Redis is silent
REJOIN_S = 5.0  # after Redis comes back, how long its workers may take to register again (they take ~1 s)


@dataclass(frozen=True)
class Health:
    redis: bool
    workers: Mapping[str, int] = field(default_factory=dict)  # queue -> live workers
    everything: bool = False  # in-process scoring: every reward is served here

    def serves(self, queue: str) -> bool:
        return self.everything or (self.redis and self.workers.get(queue, 0) > 0)

    @property
    def ready(self) -> bool:
        return self.everything or (self.redis and any(self.workers.values()))


IN_PROCESS = Health(redis=True, everything=True)


def _age_s(now: datetime, beat: datetime) -> float:
    return (now - beat.replace(tzinfo=beat.tzinfo or timezone.utc)).total_seconds()


class HealthMonitor:
    def __init__(self, redis, interval_s: float = 1.0):
        self.redis = redis  # synchronous: RQ's registry API is synchronous
        self.interval_s = interval_s
        self.latest = Health(redis=False)
        self._seen_redis = False  # Redis answered once: an outage from now on is an outage, not a first start
        self._redis_back_at = -math.inf
        self._checked_at = -math.inf
        self._seen: dict[str, tuple[datetime, tuple[str, ...]]] = {}  # worker -> (last heartbeat, queues)

    def check(self) -> Health:
        from rq import Worker

        try:
            self.redis.ping()
            workers = Worker.all(connection=self.redis)
        except RedisError:
            return Health(redis=False)
        now = datetime.now(timezone.utc)
        # Workers as last seen whole. Redis may evict a live worker's hash (RQ gives it a TTL) or keep
        # only part of it; the worker writes it again within seconds, and meanwhile what this monitor
        # saw of it less than LIVE_S ago still holds: eviction must not turn a reward "unserved".
        seen = {name: last for name, last in self._seen.items() if _age_s(now, last[0]) < LIVE_S}
        for worker in workers:
            beat, queues = worker.last_heartbeat, tuple(worker.queue_names())
            if beat is not None and _age_s(now, beat) < LIVE_S:
                seen[worker.name] = (beat, queues or seen.get(worker.name, (beat, ()))[1])
        self._seen = seen  # replaced whole: a request's refresh may run beside the monitor's
        counts: dict[str, int] = {}
        for _, queues in seen.values():
            for queue in queues:
                counts[queue] = counts.get(queue, 0) + 1
        return Health(redis=True, workers=counts)

    async def refresh(self) -> Health:
        health = await asyncio.to_thread(self.check)
        if health.redis and not self.latest.redis and self._seen_redis:
            self._redis_back_at = time.monotonic()
        self._seen_redis = self._seen_redis or health.redis
        self.latest = health
        self._checked_at = time.monotonic()
        return health

    def stale(self) -> bool:
        """No check finished lately: no monitor loop runs (a service used without its fronts)."""
        return time.monotonic() - self._checked_at > STALE_S

    def rejoining(self) -> bool:
        """Redis came back from an outage moments ago: an empty Redis has forgotten every worker,
        and they register again within about a second, so "no worker" is not known yet."""
        return time.monotonic() - self._redis_back_at < REJOIN_S

    async def run(self, on_change=None) -> None:
        """Refresh forever; call `on_change(health)` whenever the picture changes."""
        previous = None
        while True:
            started = time.monotonic()
            health = await self.refresh()
            if health != previous and on_change is not None:
                await on_change(health)
            previous = health
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
