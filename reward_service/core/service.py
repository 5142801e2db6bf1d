"""The reward service core, shared by the gRPC and REST fronts and by in-process clients.

A call is resolved once into a `ResolvedRequest`, admitted (or refused with
RESOURCE_EXHAUSTED when too many of its reward's items are in flight), served from the
cache where it can be, and scored by the backend.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

from redis.exceptions import RedisError

from reward_contract.errors import Internal, InvalidArgument, ResourceExhausted, Unavailable, quoted_names
from reward_contract.types import RewardChoice, RewardItem, RewardKind, RewardTerm, ScoredItem
from reward_service.config import ServeConfig
from reward_service.core.backends import POLL_S, STALL_S, Backend, InProcessBackend, QueueBackend, QueueLoad
from reward_service.core.cache import ResultCache
from reward_service.core.composite import CompositeRequest, combine, validate_terms
from reward_service.core.health import Health, HealthMonitor
from reward_service.core.memory import MemoryReleaser
from reward_service.core.prometheus import ServiceMetrics
from reward_service.core.request import Limits, ResolvedRequest, resolve
from reward_service.rewards import REGISTRY, get_reward
from reward_service.rewards.base import RewardSpec

log = logging.getLogger(__name__)

ADMISSION_RETRY_S = 1.0


def redis_problem(exc: Exception) -> str:
    """What went wrong with the queue store, in words that do not depend on Redis's message."""
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, ResponseError) and "maxmemory" in str(exc).lower():
        return "the queue store is full"
    if isinstance(exc, RedisTimeoutError):
        return "redis did not answer in time"
    return "redis is unreachable"


def internal_error(front: str) -> Internal:
    """Log the exception being handled under a fresh error id, and the client's error naming that id."""
    error_id = uuid.uuid4().hex[:16]
    log.error("internal error", exc_info=True, extra={"error_id": error_id, "front": front})
    return Internal.reported(error_id)


class RewardService:
    def __init__(self, backend: Backend, cache: ResultCache | None = None, limits: Limits = Limits(),
                 metrics: ServiceMetrics | None = None, monitor: HealthMonitor | None = None):
        self.backend = backend
        self.cache = cache
        self.limits = limits
        self.metrics = metrics or ServiceMetrics()
        self.monitor = monitor  # None: nothing to watch (in-process scoring)
        self.memory = MemoryReleaser()  # both fronts give big requests' memory back through it
        self._inflight: dict[str, int] = {}  # items in flight, by reward
        self._requests = 0  # requests in flight
        self._labelled_cache: dict[tuple, object] = {}  # see _labelled
        self._loop: asyncio.AbstractEventLoop | None = None  # for score_blocking
        self._runs_inline = isinstance(backend, InProcessBackend) and backend.executor is None and cache is None
        self._loop_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ServeConfig) -> "RewardService":
        limits = Limits(config.max_batch_items, config.max_field_chars, config.deadline_s, config.max_deadline_s,
                        config.max_inflight_requests)
        metrics = ServiceMetrics()
        if config.backend == "inprocess":
            executor = ThreadPoolExecutor(config.inprocess_threads, thread_name_prefix="reward")
            return cls(InProcessBackend(executor), None, limits, metrics)
        from redis import Redis
        from redis import asyncio as aioredis

        redis = Redis.from_url(config.redis_url, socket_timeout=10, socket_connect_timeout=5)
        # Every waiting request holds one connection (its reply BLPOP); admission caps the requests.
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # A command that has not answered in STALL_S (beyond a reply wait's own POLL_S) has stalled: a
        # request gives up on it, after one retry, rather than hang past its deadline (redis-py's
        # default retries with backoff turned a 5 s deadline into 19 s under a stalled Redis).
        aredis = aioredis.Redis.from_url(config.redis_url, socket_connect_timeout=5, socket_timeout=POLL_S + STALL_S,
                                         retry=AsyncRetry(NoBackoff(), 1),
                                         max_connections=config.max_inflight_requests + 64)
        # Readiness is "Redis answers within STALL_S": the monitor's own client, with no retry.
        monitor = HealthMonitor(Redis.from_url(config.redis_url, socket_timeout=STALL_S, socket_connect_timeout=STALL_S,
                                               retry=Retry(NoBackoff(), 0)))
        cache = ResultCache(aredis, config.cache_ttl_s, config.cache_min_ttl_s, metrics) if config.cache else None
        return cls(QueueBackend(redis, aredis, monitor, metrics, config.retries), cache, limits, metrics, monitor)

    @classmethod
    def embedded(cls) -> "RewardService":
        """The no-Redis default: the same reward functions, run in the caller's thread."""
        return cls(InProcessBackend())

    @property
    def health(self) -> Health:
        return self.backend.health

    def resolve_spec(self, reward: str) -> RewardSpec:
        """The reward's spec; an unknown name is UnknownReward listing the valid ones."""
        return get_reward(reward)

    def queue_names(self) -> list[str]:
        return sorted({spec.queue for spec in REGISTRY.values()})

    async def queue_loads(self, queues: Sequence[str]) -> dict[str, QueueLoad]:
        """The work waiting and running on each of `queues` (every queue of a known reward)."""
        known = self.queue_names()
        unknown = [name for name in queues if name not in known]
        if unknown:
            raise InvalidArgument(f"unknown queue(s) {quoted_names(unknown)}; the queues are: {', '.join(known)}")
        try:
            return await asyncio.to_thread(self.backend.load, list(queues))
        except RedisError as exc:
            raise Unavailable(redis_problem(exc)) from None

    def kinds(self) -> list[RewardKind]:
        return [REGISTRY[name].kind() for name in sorted(REGISTRY)]

    def resolve(self, reward: str, items: Sequence[RewardItem], options: Mapping[str, object] | None = None,
                deadline_s: float | None = None, use_cache: bool = True, front: str = "python",
                caller_remaining_s: float | None = None) -> ResolvedRequest:
        return resolve(reward, items, options, deadline_s, use_cache, front, self.limits, caller_remaining_s)

    def resolve_terms(self, terms: Sequence[RewardTerm], items: Sequence[RewardItem], deadline_s: float | None = None,
                      use_cache: bool = True, front: str = "python", caller_remaining_s: float | None = None
                      ) -> CompositeRequest:
        """A composite request: each term resolved as a request of its own reward, on the same items."""
        validate_terms(terms)
        return CompositeRequest(tuple((t.reward, float(t.weight), self.resolve(
            t.reward, items, t.options, deadline_s, use_cache, front, caller_remaining_s)) for t in terms))

    def resolve_choice(self, reward: RewardChoice, items: Sequence[RewardItem],
                       options: Mapping[str, object] | None = None, deadline_s: float | None = None,
                       use_cache: bool = True, front: str = "python", caller_remaining_s: float | None = None
                       ) -> ResolvedRequest | CompositeRequest:
        """What a front received: one reward's name with `options`, or a composite's terms (each
        carrying its own options, so `options` must then be empty)."""
        if isinstance(reward, str):
            return self.resolve(reward, items, options, deadline_s, use_cache, front, caller_remaining_s)
        if options:
            raise InvalidArgument("a composite request carries options in its terms; send no top-level options "
                                  f"(got {quoted_names(list(options))})")
        return self.resolve_terms(reward, items, deadline_s, use_cache, front, caller_remaining_s)

    async def score(self, request: ResolvedRequest | CompositeRequest) -> list[ScoredItem]:
        if isinstance(request, CompositeRequest):
            return await self._score_composite(request)
        name = request.spec.name
        requests, inflight, latency = self._labelled(("request", request.front, name), lambda: (
            self.metrics.requests.labels(request.front, name), self.metrics.inflight.labels(name),
            self.metrics.latency.labels(name)))
        requests.inc()
        self._admit(request)
        self._requests += 1
        self._inflight[name] = self._inflight.get(name, 0) + len(request.items)
        inflight.set(self._inflight[name])
        started = time.monotonic()
        try:
            results = await self._score(request)
        finally:
            self._requests -= 1
            self._inflight[name] -= len(request.items)
            inflight.set(self._inflight[name])
        latency.observe(time.monotonic() - started)
        for (status, cached), count in Counter((r.status, r.cached) for r in results).items():
            self._labelled(("items", name, status, cached), lambda: self.metrics.items.labels(
                name, status.value, str(cached).lower())).inc(count)
        return results

    async def _score_composite(self, request: CompositeRequest) -> list[ScoredItem]:
        """Every term at once, each on its own queue; one term refused (admission, Redis) withdraws
        the others' work and refuses the whole request."""
        names, weights, parts = zip(*request.parts)
        if self._runs_inline:  # nothing suspends here, and no loop runs: one term after another
            per_term = [await self.score(part) for part in parts]
        else:
            tasks = [asyncio.ensure_future(self.score(part)) for part in parts]
            try:
                per_term = await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
        return combine(names, weights, per_term)

    def _labelled(self, key: tuple, make):
        """`make()`'s labelled metrics, made once per key: a prometheus `labels()` lookup costs as
        much as scoring a small arithmetic item."""
        found = self._labelled_cache.get(key)
        if found is None:
            found = self._labelled_cache[key] = make()
        return found

    def _admit(self, request: ResolvedRequest) -> None:
        """Refuse, with a retry hint, rather than queue without bound: a reward's items in flight
        are capped (so slow Ludii games cannot take every slot), and so are requests in flight."""
        name, inflight = request.spec.name, self._inflight.get(request.spec.name, 0)
        if inflight and inflight + len(request.items) > request.spec.max_inflight_items:
            raise ResourceExhausted(f"{inflight} items of reward {name!r} are in flight here (limit "
                                    f"{request.spec.max_inflight_items}); retry later", ADMISSION_RETRY_S)
        if self._requests >= self.limits.max_inflight_requests:
            raise ResourceExhausted(f"{self._requests} requests are in flight here (limit "
                                    f"{self.limits.max_inflight_requests}); retry later", ADMISSION_RETRY_S)

    async def _score(self, request: ResolvedRequest) -> list[ScoredItem]:
        cache = self.cache if request.use_cache else None
        try:
            hits = await cache.get_many(request) if cache else {}
            misses = [item for item in request.items if item.id not in hits]
            fresh = await self.backend.score(request, misses) if misses else []
        except RedisError as exc:
            # The client gets a stable message and the request id; Redis's own words (addresses,
            # commands) go to this log only.
            log.warning("redis failed a request", extra={"request_id": request.id, "error": repr(exc)})
            raise Unavailable(f"{redis_problem(exc)}; retry later (request {request.id})") from exc
        if cache and fresh:
            await cache.put_many(request, fresh)
        by_id = hits | {result.id: result for result in fresh}
        return [by_id[item.id] for item in request.items]

    def score_blocking(self, reward: RewardChoice, items: Sequence[RewardItem],
                       options: Mapping[str, object] | None = None, deadline_s: float | None = None,
                       use_cache: bool = True, front: str = "inprocess") -> list[ScoredItem]:
        """For callers without an event loop (the in-process client, scripts). The embedded service
        runs in the caller's thread; one with Redis runs on an event loop thread of its own, so its
        async Redis clients always see one loop."""
        request = self.resolve_choice(reward, items, options, deadline_s, use_cache, front)
        if self._runs_inline:
            # Nothing on this path awaits anything that suspends, and a loop (or a hop to a loop
            # thread) costs more than scoring a small batch: drive the coroutine to its end here,
            # one call at a time as on a loop thread.
            with self._loop_lock:
                return _run_to_completion(self.score(request))
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="rlpr-service-loop", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(self.score(request), self._loop).result()


def _run_to_completion(coroutine):
    """The result of a coroutine that never suspends; one that does is a bug on the inline path."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the inline scoring path suspended; it must not await I/O")
