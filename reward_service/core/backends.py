"""Where scoring happens: in this process, or on RQ workers through Redis queues.

Both backends take a resolved request and the items still to score, and return one
ScoredItem per item, in order. Waiting is asynchronous: a slow reward holds no thread.
"""
from __future__ import annotations

import asyncio
import logging
import pickle
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, Sequence

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Retry
from rq.job import Job, JobStatus

from reward_contract.errors import NoWorker, Unavailable
from reward_contract.types import ItemStatus, RewardItem, ScoredItem
from reward_service.core import rq_gaps
from reward_service.core.health import IN_PROCESS, Health, HealthMonitor
from reward_service.core.prometheus import ServiceMetrics
from reward_service.core.request import ResolvedRequest, WorkChunk
from reward_service.core.scoring import score_items

log = logging.getLogger(__name__)

JOB_FUNCTION = "reward_service.worker.jobs.score_chunk"  # by name: the core never imports the worker
POLL_S = 0.5  # how long to block on replies before checking for failed or abandoned jobs
JOB_TTL_MARGIN_S = 60  # a job nobody started by its request's deadline (plus this) is dropped by RQ
CANCEL_TTL_S = 600
STALL_S = 2.0  # Redis answers a command in milliseconds: one that takes this long has stalled (e.g. SIGSTOP)
CLEANUP_WAIT_S = 1.0  # a request waits this long for its withdrawal; a stalled Redis finishes it in the background
_TERMINAL_FAILURES = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def cancel_key(request_id: str) -> str:
    """Set while a request's remaining work must not run; workers check it between items."""
    return f"rlpr:cancel:{request_id}"


@dataclass(frozen=True)
class QueueLoad:
    """The work on one queue now: what an autoscaler sizes its workers by."""

    queued: int = 0  # jobs waiting for a worker
    running: int = 0  # jobs a live worker is running (those of dead workers are requeued first)


class Backend(Protocol):
    health: Health

    async def score(self, request: ResolvedRequest, items: Sequence[RewardItem]) -> list[ScoredItem]: ...

    def load(self, queues: Sequence[str]) -> dict[str, QueueLoad]: ...


class InProcessBackend:
    """The embedded default: no Redis, no workers. A reward running in this process cannot be
    interrupted, so the deadline is checked between items. With an executor the event loop
    stays free while rewards run; without one (the in-process client) they run inline."""

    health = IN_PROCESS

    def __init__(self, executor: Executor | None = None):
        self.executor = executor

    async def score(self, request, items):
        def run():
            return score_items(request.spec, request.options, items, request.deadline)

        if self.executor is None:
            return run()
        return await asyncio.get_running_loop().run_in_executor(self.executor, run)

    def load(self, queues):
        return {name: QueueLoad() for name in queues}  # no queues: every item is scored as it arrives


class QueueBackend:
    """Split the items into chunks, enqueue them on the reward's RQ queue, gather the replies.

    Workers push each chunk's results onto a reply list unique to the request, so late results
    of an expired request can never reach another one. Retries after a worker failure or death
    are RQ's own (`Retry`, and the started-job registry's cleanup of jobs whose worker stopped
    heartbeating). Work nobody waits for any more is withdrawn: queued jobs are deleted, and
    running ones see the request's cancel key and stop.
    """

    def __init__(self, redis, aredis, monitor: HealthMonitor, metrics: ServiceMetrics, retries: int = 2):
        self.redis = redis  # synchronous, for RQ
        self.aredis = aredis  # asyncio, for waiting on replies
        self.monitor = monitor
        self.metrics = metrics
        self.retries = retries
        self._queues: dict[str, Queue] = {}
        self._cleanups: set[asyncio.Future] = set()  # withdrawals still running after their request answered

    @property
    def health(self) -> Health:
        return self.monitor.latest

    async def score(self, request, items):
        queue = self._queue(request.spec.queue)
        health = self.monitor.latest
        # A worker may have registered since the last look. But a Redis the running monitor found silent
        # moments ago gets no second ask from a request: under a stall, that ask is what hangs.
        if not health.serves(queue.name) and (health.redis or self.monitor.stale()):
            health = await self.monitor.refresh()
        # UNAVAILABLE, which clients retry with backoff, while it may pass; "no worker" when it will not
        if not health.redis:
            raise Unavailable("redis is unreachable; retry later")
        if not health.serves(queue.name):
            if self.monitor.rejoining():
                raise Unavailable("redis restarted moments ago and its workers are registering again; retry")
            raise NoWorker(f"no worker serves queue {queue.name!r}; start one with "
                           f"`rlpr worker --queues {queue.name}` (or `rlpr up --workers {queue.name}=1`)")
        reply_key = f"rlpr:reply:{request.id}"
        size = request.spec.chunk_size
        chunks = [tuple(items[i: i + size]) for i in range(0, len(items), size)]
        pending: dict[str, tuple[RewardItem, ...]] = {}
        finished = False
        try:
            # RQ's own enqueue_many, written through a pipeline of the asyncio client: RQ only adds
            # commands to a pipeline it is given, so the event loop enqueues with no thread hop and
            # no blocking round trip (tests/test_queue_backend.py holds RQ to that).
            async with self.aredis.pipeline(transaction=True) as pipe:
                pending.update(self._enqueue(pipe, queue, request, chunks, reply_key))
                await pipe.execute()
            results = await self._gather(queue, request, pending, reply_key)
            finished = not pending
        finally:
            if not finished:  # the deadline passed, or the caller went away (CancelledError): nobody waits
                await self._clean_up(queue, request, list(pending), reply_key)
        return [results.get(item.id) or ScoredItem.failed(item.id, ItemStatus.TIMEOUT, "deadline exceeded")
                for item in items]

    async def _clean_up(self, queue, request, job_ids, reply_key) -> None:
        """Withdraw the jobs nobody waits for and drop the reply list (late replies may still land; a
        stray one expires with the list's TTL). Shielded, so a caller that goes away cannot cut it
        short; waited for at most CLEANUP_WAIT_S, so a stalled Redis cannot hold the answer past it."""
        async def clean() -> None:
            await asyncio.to_thread(self._withdraw, queue, request, job_ids)
            await self._forget(reply_key)

        task = asyncio.ensure_future(clean())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        try:
            await asyncio.wait_for(asyncio.shield(task), CLEANUP_WAIT_S)
        except asyncio.TimeoutError:
            log.warning("withdrawal goes on in the background (redis is slow)", extra={"request_id": request.id})

    def load(self, queues):
        """RQ's own counts. A job whose worker died is cleaned up first (requeued or failed), so it is not
        counted as running. Blocking: call it off the event loop."""
        loads = {}
        for name in queues:
            queue = self._queue(name)
            rq_gaps.cleanup_started(queue)
            loads[name] = QueueLoad(queued=queue.count, running=queue.started_job_registry.count)
        return loads

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, connection=self.redis)
        return queue

    def _enqueue(self, pipe, queue, request, chunks, reply_key) -> dict[str, tuple[RewardItem, ...]]:
        retry = Retry(max=self.retries) if self.retries else None
        ttl = max(1, int(request.remaining_s()) + JOB_TTL_MARGIN_S)
        datas = [
            Queue.prepare_data(
                JOB_FUNCTION,
                args=(WorkChunk(request.id, request.spec.name, request.options, chunk, request.deadline, reply_key),),
                description=f"{request.spec.name}: {len(chunk)} items",  # RQ's default repr()s every argument
                # A finished job stays a minute, so the reaper never mistakes one whose reply it has not
                # read yet for a job that vanished.
                timeout=request.spec.job_timeout_s, ttl=ttl, result_ttl=60, failure_ttl=3600, retry=retry,
            )
            for chunk in chunks
        ]
        return {job.id: chunk for job, chunk in zip(queue.enqueue_many(datas, pipeline=pipe), chunks)}

    async def _gather(self, queue, request, pending, reply_key) -> dict[str, ScoredItem]:
        results: dict[str, ScoredItem] = {}
        stranded_since: dict[str, float] = {}
        while pending:
            remaining = request.remaining_s()
            if remaining <= 0:
                break
            try:
                reply = await self.aredis.blpop([reply_key], timeout=min(remaining, POLL_S))
            except RedisTimeoutError:
                # Redis stalled (the client gives up after POLL_S + STALL_S). The replies wait for us in
                # their list, so keep trying until the deadline: work done meanwhile is not lost if
                # Redis answers again in time.
                log.warning("redis stalled while waiting for replies", extra={"request_id": request.id})
                continue
            if reply is not None:
                job_id, scored = pickle.loads(reply[1])
                if pending.pop(job_id, None) is not None:
                    results.update((r.id, r) for r in scored)
                continue
            lost = await asyncio.to_thread(self._reap, queue, pending, stranded_since)
            results.update(lost)
        return results

    def _reap(self, queue, pending, stranded_since) -> dict[str, ScoredItem]:
        """Recover jobs whose worker died, and fail the items of jobs that are out of retries."""
        rq_gaps.cleanup_started(queue)
        rq_gaps.requeue_stranded(queue, list(pending), stranded_since)
        lost = {}
        job_ids = list(pending)
        for job_id, job in zip(job_ids, Job.fetch_many(job_ids, connection=self.redis)):
            if job is None:  # Redis lost it (a restart without persistence): it will never reply
                reason = "job vanished from Redis (was Redis restarted?)"
            elif job.get_status(refresh=False) in _TERMINAL_FAILURES:
                reason = _failure_reason(job)
            else:
                continue
            for item in pending.pop(job_id):
                lost[item.id] = ScoredItem.failed(item.id, ItemStatus.LOST, reason)
        return lost

    def _withdraw(self, queue, request, job_ids) -> None:
        """Nobody waits for these jobs: running ones stop at the cancel key; queued ones are taken off
        the queue (atomically, so no worker can be starting one meanwhile) and deleted."""
        why = "deadline" if request.remaining_s() <= 0 else "caller gone"
        try:
            self.redis.set(cancel_key(request.id), 1, ex=CANCEL_TTL_S)
            for job_id in job_ids:
                if queue.remove(job_id):  # off the queue: no worker will start it
                    self._delete_job(job_id, request)
                    self.metrics.withdrawn_jobs.labels(request.spec.name, why).inc()
        except RedisError as exc:  # the jobs' TTL and their deadline still stop them
            log.warning("could not withdraw jobs", extra={"request_id": request.id, "error": repr(exc)})

    def _delete_job(self, job_id: str, request) -> None:
        """Delete a job taken off its queue. RQ 3 cannot delete a job that was retried after its worker
        died (its execution record went with the worker: `ValueError: Execution ... not found`);
        such a job is off the queue already, and its hash expires with its TTL."""
        job = Job.fetch_many([job_id], connection=self.redis)[0]
        if job is None:
            return
        try:
            job.delete(remove_from_queue=False)
        except ValueError as exc:
            log.info("withdrawn job left to expire", extra={"request_id": request.id, "job_id": job_id,
                                                             "error": str(exc)})

    async def _forget(self, reply_key: str) -> None:
        try:
            await self.aredis.delete(reply_key)
        except RedisError:
            log.warning("could not delete reply list", extra={"reply_key": reply_key})


def _failure_reason(job: Job) -> str:
    result = job.latest_result()
    detail = (result.exc_string or "").strip().splitlines()[-1:] if result else []
    return f"worker failed after retries: {detail[0] if detail else job.get_status(refresh=False)}"
