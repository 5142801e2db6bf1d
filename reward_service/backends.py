"""Where scoring happens: in this process, or on RQ workers through Redis queues.

Both backends take already-validated input and return one ScoredItem per item, in order.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Mapping, Protocol, Sequence

from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job, JobStatus

from reward_service import jobs
from reward_service.rewards.base import RewardSpec
from reward_service.scoring import score_items
from reward_service.types import ItemStatus, RewardItem, ScoredItem

log = logging.getLogger(__name__)

POLL_S = 0.5  # how long to block on replies before checking for failed or abandoned jobs
REAP_LOCK_S = 1.0  # at most one registry cleanup per queue per second, across API replicas
STRANDED_S = 3.0  # a healthy worker starts a job within milliseconds of taking it
_TERMINAL_FAILURES = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


class Backend(Protocol):
    def score(
        self, spec: RewardSpec, options: Mapping[str, str], items: Sequence[RewardItem], deadline: float
    ) -> list[ScoredItem]:
        """`deadline` is a time.monotonic() instant."""


class InProcessBackend:
    """The embedded default: no Redis, no workers. A running reward cannot be interrupted,
    so the deadline is only checked between items."""

    def score(self, spec, options, items, deadline):
        parsed = spec.parse_options(options)
        results = []
        for item in items:
            if time.monotonic() > deadline:
                results.append(ScoredItem.failed(item.id, ItemStatus.TIMEOUT, "deadline passed before scoring"))
            else:
                results.extend(score_items(spec.name, parsed, [item]))
        return results


class QueueBackend:
    """Split a batch into chunks, enqueue them on the reward's RQ queue, gather replies.

    Workers push each chunk's results onto a reply list unique to the request, so late
    results of an expired request can never reach another one. Retries after worker
    failure or death are RQ's own (`Retry`, and the started-job registry's cleanup of
    jobs whose worker stopped sending heartbeats).
    """

    def __init__(self, redis, retries: int = 2):
        self.redis = redis
        self.retries = retries

    def score(self, spec, options, items, deadline):
        queue = Queue(spec.queue, connection=self.redis)
        reply_key = f"rlpr:reply:{uuid.uuid4().hex}"
        chunks = [list(items[i : i + spec.chunk_size]) for i in range(0, len(items), spec.chunk_size)]
        try:  # a RedisError propagates: the service turns it into Unavailable, once, for cache and queue
            pending = self._enqueue(queue, spec, options, chunks, reply_key)
            results = self._gather(queue, pending, reply_key, deadline)
        finally:
            self._forget(reply_key)
        return [results.get(item.id) or ScoredItem.failed(item.id, ItemStatus.TIMEOUT, "deadline exceeded")
                for item in items]

    def _enqueue(self, queue, spec, options, chunks, reply_key) -> dict[str, list[RewardItem]]:
        retry = Retry(max=self.retries) if self.retries else None
        datas = [
            Queue.prepare_data(
                jobs.score_chunk,
                args=(spec.name, dict(options), jobs.pack_items(chunk), reply_key),
                description=f"{spec.name}: {len(chunk)} items",  # RQ's default repr()s every argument
                timeout=spec.job_timeout_s,
                result_ttl=60,
                failure_ttl=3600,
                retry=retry,
            )
            for chunk in chunks
        ]
        enqueued = queue.enqueue_many(datas)
        return {job.id: chunk for job, chunk in zip(enqueued, chunks)}

    def _gather(self, queue, pending, reply_key, deadline) -> dict[str, ScoredItem]:
        results: dict[str, ScoredItem] = {}
        stranded_since: dict[str, float] = {}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(list(pending))
                break
            reply = self.redis.blpop([reply_key], timeout=min(remaining, POLL_S))
            if reply is not None:
                job_id, scored = jobs.unpack_reply(reply[1])
                if pending.pop(job_id, None) is not None:
                    results.update((r.id, r) for r in scored)
                continue
            self._reap(queue, pending, results, stranded_since)
        return results

    def _reap(self, queue, pending, results, stranded_since) -> None:
        """Recover jobs whose worker died, and fail the items of jobs that are out of retries."""
        # RQ's own recovery: a started job whose worker stopped heartbeating is retried (Retry)
        # or failed. Guarded by a short lock of ours, not RQ's 15-minute maintenance lock, which
        # a worker killed mid-maintenance would hold long after its death.
        if self.redis.set(f"rlpr:reap:{queue.name}", 1, nx=True, px=int(REAP_LOCK_S * 1000)):
            queue.started_job_registry.cleanup()
        self._requeue_stranded(queue, pending, stranded_since)
        job_ids = list(pending)
        for job_id, job in zip(job_ids, Job.fetch_many(job_ids, connection=self.redis)):
            if job is None:  # Redis lost it (a restart without persistence): it will never reply
                reason = "job vanished from Redis (was Redis restarted?)"
            elif job.get_status(refresh=False) in _TERMINAL_FAILURES:
                reason = _failure_reason(job)
            else:
                continue
            for item in pending.pop(job_id):
                results[item.id] = ScoredItem.failed(item.id, ItemStatus.LOST, reason)

    def _requeue_stranded(self, queue, pending, stranded_since) -> None:
        """A worker that dies after taking a job off the queue but before starting it leaves the
        job in RQ's intermediate list, where RQ only notices it after a minute. Put such jobs of
        ours back on the queue once they have sat there for STRANDED_S."""
        now = time.monotonic()
        waiting = set(queue.intermediate_queue.get_job_ids()) & set(pending)
        for job_id in list(stranded_since):
            if job_id not in waiting:
                del stranded_since[job_id]
        for job_id in waiting:
            if job_id in queue.started_job_registry:
                continue
            if now - stranded_since.setdefault(job_id, now) >= STRANDED_S:
                with self.redis.pipeline() as pipe:
                    pipe.lrem(queue.intermediate_queue_key, 1, job_id)
                    queue.push_job_id(job_id, pipeline=pipe, at_front=True)
                    pipe.execute()
                del stranded_since[job_id]
                log.warning("requeued a job stranded by a dead worker", extra={"job_id": job_id})

    def _cancel(self, job_ids) -> None:
        for job in Job.fetch_many(job_ids, connection=self.redis):
            if job is not None and job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED):
                job.cancel()

    def _forget(self, reply_key: str) -> None:
        try:
            self.redis.delete(reply_key)
        except RedisError:
            log.warning("could not delete reply list", extra={"reply_key": reply_key})


def _failure_reason(job: Job) -> str:
    result = job.latest_result()
    detail = (result.exc_string or "").strip().splitlines()[-1:] if result else []
    return f"worker failed after retries: {detail[0] if detail else job.get_status(refresh=False)}"
