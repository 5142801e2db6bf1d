"""Reward workers: RQ workers that score in their own process and never fork.

Forking per job costs more than a cheap reward and kills a JVM (the Ludii engine
lives in the worker process), so every worker is a SimpleWorker. A SimpleWorker sends
no heartbeat while it works; ours does, from a thread, with a short TTL, so that RQ
notices a SIGKILLed worker within seconds and retries its job on another worker.
"""
from __future__ import annotations

import logging
import os
import threading

from redis import Redis
from rq import Queue, SimpleWorker
from rq.worker import WorkerStatus

from reward_service.config import WorkerConfig
from reward_service.errors import ConfigError

log = logging.getLogger(__name__)


class RewardWorker(SimpleWorker):
    heartbeat_s: float = 1.0

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        # Expire our started-job entry soon after heartbeats stop: that is how death is noticed.
        return max(2, int(3 * self.heartbeat_s + 1))

    def execute_job(self, job, queue):
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, execution, stop), name="rq-heartbeat", daemon=True)
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beat.join()
        self.set_state(WorkerStatus.IDLE)

    def _beat(self, job, execution, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            try:
                self.maintain_heartbeats(job, execution)
            except Exception:  # noqa: BLE001 - a missed beat is retried next tick; the job goes on
                log.warning("heartbeat failed", exc_info=True, extra={"job_id": job.id})


def run_worker(config: WorkerConfig) -> None:
    if "ludii" in config.queue_list:
        from reward_service.ludii.engine import get_engine
        from reward_service.ludii.jvm import JvmError

        try:
            get_engine()  # start the JVM once, before any job, and fail fast without a jar
        except JvmError as exc:
            raise ConfigError(f"the ludii queue needs the Ludii engine: {exc}") from exc
    redis = Redis.from_url(config.redis_url)
    queues = [Queue(name, connection=redis) for name in config.queue_list]
    worker = RewardWorker(queues, connection=redis, name=config.name or None, maintenance_interval=5)
    worker.heartbeat_s = config.heartbeat_s
    print(f"rlpr worker {worker.name}: pid {os.getpid()}, queues {','.join(config.queue_list)}", flush=True)
    # No RQ scheduler: it runs in a forked process, and nothing may fork once a JVM is up.
    # Retries are immediate (Retry without interval), so no scheduler is needed.
    worker.work(burst=config.burst, with_scheduler=False, logging_level=config.log_level.upper())
