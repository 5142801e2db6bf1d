"""Reward workers: RQ workers that score in their own process and never fork.

Forking per job costs more than a cheap reward and kills a JVM, so every worker is a
SimpleWorker; the Ludii engine's JVM lives in a spawned child process that a supervisor
restarts when an evaluation overruns (reward_service/ludii/engine.py). Beyond RQ's own:

- a busy worker heartbeats from a thread every second, and one silent for `--dead-after-s` (20 s)
  is dead: RQ retries its job on another worker. Not sooner, or a briefly stalled worker's job
  would run twice;
- an idle worker heartbeats every IDLE_HEARTBEAT_S, so the API tells a live worker from a gone one;
- SIGTERM or Ctrl-C stops it gracefully (`stopping.py`): no new job, the running one has
  `--stop-grace-s` to finish and otherwise goes back to the front of its queue; a second signal
  puts it back at once;
- when Redis goes away the worker waits for it, polling every REDIS_POLL_S, and goes on
  (RQ's own backoff grows to 60 s, and a Redis error mid-job makes RQ's worker exit);
- RQ's per-job bookkeeping without its redundant round trips: a heartbeat's three commands in one
  round trip, plain heartbeats at most every PLAIN_BEAT_S, the suspension check at most every
  SUSPENSION_CHECK_S, no repeated state write, a job's start written once (21 round trips and
  61 Redis commands a job became 9 and 46).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.utils import now
from rq.worker import WorkerStatus

from reward_contract.errors import ConfigError
from reward_service.config import DEAD_AFTER_S, STOP_GRACE_S, WorkerConfig
from reward_service.core import rq_gaps
from reward_service.worker import stopping

log = logging.getLogger(__name__)
IDLE_HEARTBEAT_S = 5  # RQ blocks on the queues for worker_ttl - 15 s between heartbeats
REDIS_POLL_S = 0.2
REGISTRATION_CHECK_S = 0.5  # how often a worker asks whether Redis still knows it (restarts are noticed within this)
# RQ's work loop sends three plain heartbeats per job (3 round trips each) and asks Redis whether
# workers are suspended before every job: at most this often instead.
PLAIN_BEAT_S = 1.0
SUSPENSION_CHECK_S = 1.0
# RQ's pubsub thread (for `rq`'s stop-job commands) waits this long for a message between looks at
# whether it should end. RQ waits 60 s, and redis-py 8's PubSubWorkerThread.stop() joins the thread:
# a stopping worker hung in teardown for up to a minute.
PUBSUB_WAKE_S = 1.0
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


class RewardWorker(SimpleWorker):
    heartbeat_s: float = 1.0
    dead_after_s: float = DEAD_AFTER_S
    stop_grace_s: float = STOP_GRACE_S
    # RQ's reconnect loop in dequeue: poll every second instead of backing off to a minute.
    exponential_backoff_factor = 1.0
    max_connection_wait_time = 1.0

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("worker_ttl", IDLE_HEARTBEAT_S + 15)
        super().__init__(*args, **kwargs)
        self._registration_checked = 0.0
        self._full_beat_at = -math.inf  # when a plain heartbeat last set the worker's full TTL
        self._suspension_checked = -math.inf
        # One heartbeat thread for the worker's life, told which job runs: starting and joining a
        # thread per job cost a cheap job most of a scheduler slice on a busy machine.
        self._running: tuple | None = None  # (job, execution) while a job runs
        self._beat_lock = threading.Lock()
        self._beat_thread: threading.Thread | None = None
        self._prepared_job_id: str | None = None  # whose start prepare_execution already wrote

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        # Our started-job entry expires dead_after_s after the last beat: that is how death is noticed.
        return max(1, math.ceil(self.dead_after_s))

    def execute_job(self, job, queue):
        try:
            execution = self.prepare_execution(job)
            self._beat_for(job, execution)
            try:
                self.perform_job(job, queue, execution)
            finally:
                self._beat_for(None)
        except _REDIS_DOWN as exc:
            # RQ's bookkeeping of this job failed. Its results were already pushed (the job retries
            # that), and if RQ lost track of it, the API's registry cleanup retries it.
            log.warning("redis went away during a job; waiting for it", extra={"job_id": job.id, "error": repr(exc)})
            self._wait_for_redis()
        # IDLE, and the full TTL back (the job's own beat shortened it), in one round trip
        self._until_redis(self._send_beat, None, WorkerStatus.IDLE)

    def prepare_execution(self, job) -> Execution:
        """RQ writes a job's start in two round trips, both on the way from the queue to the job:
        the execution record with the worker BUSY, then the job's status and heartbeats. Both run
        here, one after the other in one process, so they go in one transaction (what RQ's
        `prepare_execution` and `prepare_job_execution` write, in their order)."""
        ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipe:
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(ttl, pipeline=pipe)
            job.heartbeat(now(), ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            if len(self.queues) == 1:  # RQ's perform_job asks for this with one queue only
                pipe.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipe.execute()
        self._prepared_job_id = job.id
        return execution

    def prepare_job_execution(self, job, remove_from_intermediate_queue: bool = False) -> None:
        if self._prepared_job_id != job.id:  # a start that did not pass through prepare_execution
            super().prepare_job_execution(job, remove_from_intermediate_queue)
        else:
            self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")  # as RQ's does
        self._prepared_job_id = None

    # -- a graceful stop ------------------------------------------------------------------------
    def subscribe(self):
        """RQ's, with the pubsub thread waking every PUBSUB_WAKE_S instead of every 60 s."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=PUBSUB_WAKE_S, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def request_stop(self, signum, frame):
        """RQ's warm stop (no new job; it raises StopRequested when idle), with a grace for the running job."""
        grace = stopping.request(self.stop_grace_s)
        if self._running is not None:
            job = self._running[0]
            print(f"rlpr worker {self.name}: stopping; job {job.id} has {grace:.0f} s to finish, "
                  "then it goes back on its queue (signal again to put it back now)", flush=True)
        super().request_stop(signum, frame)

    def request_force_stop(self, signum, frame):
        """A second signal: the running job goes back on its queue now, not after its grace. Only once
        its grace is spent (a reward that never checks) does RQ's cold stop end the process mid-job; RQ's
        own cleanup then retries the job once the worker is declared dead."""
        if stopping.overdue():
            super().request_force_stop(signum, frame)
        stopping.request(0.0)

    def _finalize_failure(self, job, queue, execution, exc_info):
        if isinstance(exc_info[1], stopping.JobPutBack):
            self._put_back(job, queue, execution)
        else:
            super()._finalize_failure(job, queue, execution, exc_info)

    def _put_back(self, job, queue, execution) -> None:
        """Off the started registry and back to the front of its queue, in one transaction: not a failure,
        so no retry is spent and no failure is recorded. The job never replied, so it runs once."""
        with self.connection.pipeline() as pipe:
            pipe.multi()  # RQ's enqueue_job wants a pipeline it is handed in MULTI before any command
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        print(f"rlpr worker {self.name}: job {job.id} went back on queue {queue.name} unfinished", flush=True)

    # -- heartbeats -------------------------------------------------------------------------------
    def _beat_for(self, job, execution=None) -> None:
        """Heartbeat for `job` from now on (None: for no job). Waits for a beat in progress, so no
        beat of a finished job lands after it. The beat thread is never woken for this: a wake per
        job made it fight the job for the GIL."""
        with self._beat_lock:
            self._running = (job, execution) if job is not None else None
        if self._beat_thread is None:
            self._beat_thread = threading.Thread(target=self._beat_forever, name="rq-heartbeat", daemon=True)
            self._beat_thread.start()

    def _beat_forever(self) -> None:
        """Beat for whatever job runs, every heartbeat_s: no job goes longer than that unbeaten."""
        while True:
            time.sleep(self.heartbeat_s)
            with self._beat_lock:
                if self._running is None:
                    continue
                try:
                    self.maintain_heartbeats(*self._running)
                except Exception:  # noqa: BLE001 - a missed beat is retried next tick; the job goes on
                    log.warning("heartbeat failed", exc_info=True, extra={"job_id": self._running[0].id})

    # Redis calls of RQ's work loop that would otherwise end the worker when Redis is away.
    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is not None:  # part of RQ's bookkeeping of a job, which sets the short job TTL:
            super().heartbeat(timeout, pipeline)
            self._full_beat_at = -math.inf  # so the next plain beat must be sent
            return
        if timeout is None and time.monotonic() - self._full_beat_at < PLAIN_BEAT_S:
            return  # the TTL a full beat set moments ago still has a minute to run
        self._until_redis(self._send_beat, timeout)

    def _send_beat(self, timeout=None, state: str | None = None) -> None:
        """RQ's heartbeat (three commands), and a new state if given, in one round trip."""
        sent_at = time.monotonic()
        with self.connection.pipeline(transaction=False) as pipe:
            if state is not None:
                self.set_state(state, pipe)
            super().heartbeat(timeout, pipe)
            pipe.execute()
        if timeout is None:
            self._full_beat_at = sent_at
        # A Redis that restarted may have forgotten us, even if no call of ours failed: ask at most
        # every REGISTRATION_CHECK_S, not on every beat.
        if sent_at - self._registration_checked >= REGISTRATION_CHECK_S:
            rq_gaps.reregister_if_forgotten(self)
            self._registration_checked = sent_at

    def check_for_suspension(self, burst: bool):
        # `rq suspend` is an operator's action: noticing it within SUSPENSION_CHECK_S is soon enough.
        now = time.monotonic()
        if now - self._suspension_checked < SUSPENSION_CHECK_S:
            return None
        self._suspension_checked = now
        return self._until_redis(super().check_for_suspension, burst)

    def set_state(self, state, pipeline=None):
        # RQ writes IDLE again on entering its dequeue, right after our execute_job wrote it.
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def run_maintenance_tasks(self):
        return self._until_redis(super().run_maintenance_tasks)

    def _until_redis(self, call, *args, **kwargs):
        while True:
            try:
                return call(*args, **kwargs)
            except _REDIS_DOWN as exc:
                log.warning("redis is unreachable; waiting for it", extra={"worker": self.name, "error": repr(exc)})
                self._wait_for_redis()

    def _wait_for_redis(self) -> None:
        while True:
            try:
                self.connection.ping()
                break
            except _REDIS_DOWN:
                time.sleep(REDIS_POLL_S)
        rq_gaps.reregister_if_forgotten(self)


def run_worker(config: WorkerConfig) -> int:
    from reward_service.rewards import sentiment_classifier

    sentiment_classifier.lock_down()  # only models the operator allowed, and never from the network
    if "ludii" in config.queue_list:
        from reward_service.ludii.engine import LudiiUnavailable, get_engine

        try:
            get_engine().start()  # start the JVM child before any job, and fail fast without a jar
        except LudiiUnavailable as exc:
            raise ConfigError(f"the ludii queue needs the Ludii engine: {exc}") from exc
    redis = Redis.from_url(config.redis_url)
    queues = [Queue(name, connection=redis) for name in config.queue_list]
    worker = RewardWorker(queues, connection=redis, name=config.name or None, maintenance_interval=5)
    worker.heartbeat_s, worker.dead_after_s, worker.stop_grace_s = (config.heartbeat_s, config.dead_after_s,
                                                                    config.stop_grace_s)
    print(f"rlpr worker {worker.name}: pid {os.getpid()}, queues {','.join(config.queue_list)}", flush=True)
    # No RQ scheduler: it runs in a forked process. Retries are immediate (Retry without an
    # interval), so none is needed.
    try:
        worker.work(burst=config.burst, with_scheduler=False, logging_level=config.log_level.upper())
    except _REDIS_DOWN as exc:  # stopped while Redis was away: RQ could not record the worker's death
        print(f"rlpr worker {worker.name}: stopped while redis was unreachable ({exc})", flush=True)
    return 0
