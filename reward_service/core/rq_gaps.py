"""The places where RQ 3 falls short for a service that must notice a dead worker in seconds
and survive a Redis restart. Each is proven by a test that fails without it
(tests/test_queue_backend.py, tests/test_resilience.py):

1. A worker killed after taking a job off the queue but before starting it leaves the job in
   RQ's intermediate list; RQ moves it back only after a minute (`IntermediateQueue.cleanup`).
   `requeue_stranded` puts such jobs back after STRANDED_S.
2. RQ cleans its started-job registry under a 15-minute maintenance lock; a worker killed
   while holding that lock blocks all cleanup for that long. `cleanup_started` runs RQ's own
   cleanup (abandoned jobs are retried by RQ's `Retry`) under a 1-second lock of ours.

Nothing else in rlpr touches RQ's internals.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)
CLEANUP_LOCK_S = 1.0  # at most one cleanup per queue per second, across API replicas
STRANDED_S = 3.0  # a healthy worker starts a job within milliseconds of taking it


def cleanup_started(queue) -> None:
    if queue.connection.set(f"rlpr:reap:{queue.name}", 1, nx=True, px=int(CLEANUP_LOCK_S * 1000)):
        queue.started_job_registry.cleanup()


def requeue_stranded(queue, job_ids, stranded_since: dict[str, float]) -> None:
    """Requeue those of `job_ids` that have sat in the intermediate list for STRANDED_S.
    `stranded_since` remembers first sightings between calls."""
    now = time.monotonic()
    waiting = set(queue.intermediate_queue.get_job_ids()) & set(job_ids)
    for job_id in list(stranded_since):
        if job_id not in waiting:
            del stranded_since[job_id]
    for job_id in waiting:
        if job_id in queue.started_job_registry:
            continue
        if now - stranded_since.setdefault(job_id, now) >= STRANDED_S:
            with queue.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job_id)
                queue.push_job_id(job_id, pipeline=pipe, at_front=True)
                pipe.execute()
            del stranded_since[job_id]
            log.warning("requeued a job stranded by a dead worker", extra={"job_id": job_id, "queue": queue.name})


def reregister_if_forgotten(worker) -> None:
    """3. A Redis restart without persistence forgets every worker, and an RQ worker never
    registers again, so the service would see no worker for its queues. Register again when
    our registration is gone (called once Redis answers after an outage, and on heartbeats).

    A registration can also be lost in part: RQ gives a worker's hash a TTL, so Redis may evict it
    under memory pressure (volatile-* policies) or it may expire during a stall, and the next
    heartbeat then recreates it with only `state` and `last_heartbeat`. The worker stays in
    `rq:workers`, but with no `queues` field nobody sees what it serves. So the check is on
    both: the set membership and the hash's `queues`, in one round trip."""
    from rq import worker_registration

    with worker.connection.pipeline(transaction=False) as pipe:
        pipe.sismember(worker_registration.REDIS_WORKER_KEYS, worker.key)
        pipe.hexists(worker.key, "queues")
        listed, whole = pipe.execute()
    if listed and whole:
        return
    with worker.connection.pipeline() as pipe:
        pipe.hset(worker.key, mapping={**worker.serialize(), "state": worker.get_state()})
        worker_registration.register(worker, pipe)
        pipe.expire(worker.key, worker.worker_ttl + 60)
        pipe.execute()
    lost = "registration" if not listed else "registration's fields (its hash was evicted or expired)"
    log.warning(f"registered again after Redis forgot this worker's {lost}", extra={"worker": worker.name})
