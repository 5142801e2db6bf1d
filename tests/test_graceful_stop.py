"""A worker told to stop (SIGTERM, as Kubernetes, compose and `rlpr up` send it) takes no new job,
finishes its running job within its grace or puts it back on the queue, and nothing is lost or
run twice: real worker processes, a real Redis, a real Ludii JVM."""
import signal
import threading
import time

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.results import Result

from reward_contract.types import ItemStatus, RewardItem
from reward_service.ludii.engine import LudiiUnavailable, jar_path
from tests.ludii_games import game_named
from tests.system import service_on, wait_for

try:
    jar_path()
    NO_JAR = ""
except LudiiUnavailable as exc:
    NO_JAR = f"no Ludii jar: {exc}"

# Backgammon with 20 playouts: an evaluation of 4-8 s on two cores, long enough to stop a worker in.
BACKGAMMON = {"playouts": 20, "time_limit_s": 120}


def score_in_background(service, reward, items, options=None) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(
        results=service.score_blocking(reward, items, options, deadline_s=300, use_cache=False)))
    thread.start()
    return thread, outcome


def executions(redis, job_ids, settle_s: float = 5.0) -> dict[str, list[tuple[str, str]]]:
    """RQ's record of every execution of each job: (result type, worker name). RQ writes it after the
    reply went out, so wait (up to `settle_s`) until each job has one, and a moment more for any extra."""
    def read():
        return {job_id: [(result.type.name, result.worker_name)
                         for result in Result.all(Job.fetch(job_id, connection=redis))] for job_id in job_ids}

    deadline = time.monotonic() + settle_s
    while not all(read().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    return read()


def wait_for_exit(proc, within_s: float) -> float:
    started = time.monotonic()
    proc.wait(timeout=within_s)
    return time.monotonic() - started


def worker_name(redis, proc) -> str:
    return next(w.name for w in Worker.all(connection=redis) if w.pid == proc.pid)


def started_job(redis, queue: str, timeout_s: float = 30) -> str:
    registry = StartedJobRegistry(queue, connection=redis)
    wait_for(lambda: registry.get_job_ids(), timeout_s, f"no {queue} job started")
    return registry.get_job_ids()[0]


@pytest.mark.skipif(bool(NO_JAR), reason=NO_JAR or "jar present")
def test_a_stopped_ludii_worker_finishes_its_evaluation_within_its_grace_and_takes_no_new_job(workers, redis_url):
    redis = Redis.from_url(redis_url)
    service = service_on(redis_url)
    first = workers.start("ludii", stop_grace_s=120)
    first_name = worker_name(redis, first)
    game = game_named("Backgammon")
    running, running_outcome = score_in_background(service, "ludii", [RewardItem("a", "", game)], BACKGAMMON)
    running_job = started_job(redis, "ludii")
    waiting, waiting_outcome = score_in_background(service, "ludii", [RewardItem("b", "", game)],
                                                   {**BACKGAMMON, "seed": 1})
    wait_for(lambda: Queue("ludii", connection=redis).count == 1, 10, "the second game was not queued")
    time.sleep(1.0)  # well into the first evaluation
    first.send_signal(signal.SIGTERM)
    took = wait_for_exit(first, 120)
    assert first.returncode == 0
    running.join(10)
    [result] = running_outcome["results"]
    assert result.status is ItemStatus.OK and result.components["playouts"] == 20.0, result.error
    # It finished the running evaluation, and left the queued one alone.
    queue = Queue("ludii", connection=redis)
    [waiting_job] = queue.job_ids
    assert executions(redis, [running_job]) == {running_job: [("SUCCESSFUL", first_name)]}
    assert took > 1.0  # it did not walk away from the evaluation
    second = workers.start("ludii")
    waiting.join(120)
    [other] = waiting_outcome["results"]
    assert other.status is ItemStatus.OK, other.error
    assert executions(redis, [waiting_job]) == {waiting_job: [("SUCCESSFUL", worker_name(redis, second))]}


@pytest.mark.skipif(bool(NO_JAR), reason=NO_JAR or "jar present")
def test_a_ludii_evaluation_past_the_grace_goes_back_on_the_queue_and_runs_once_elsewhere(workers, redis_url):
    redis = Redis.from_url(redis_url)
    service = service_on(redis_url)
    first = workers.start("ludii", stop_grace_s=1)
    game = game_named("Backgammon")
    thread, outcome = score_in_background(service, "ludii", [RewardItem("a", "", game)], BACKGAMMON)
    job_id = started_job(redis, "ludii")
    time.sleep(1.0)
    first.send_signal(signal.SIGTERM)
    took = wait_for_exit(first, 30)
    assert first.returncode == 0 and took < 1.0 + 3.0, took  # the grace, then the JVM child is stopped
    # Back at the front of its queue, unfinished: no reply, no result, no retry spent, no failure.
    job = Job.fetch(job_id, connection=redis)
    assert Queue("ludii", connection=redis).job_ids == [job_id] and job.get_status() == "queued"
    assert executions(redis, [job_id], settle_s=0) == {job_id: []} and job.retries_left == 2
    assert not redis.exists(f"rlpr:reply:{job.args[0].request_id}")
    assert thread.is_alive()  # the caller still waits: nothing was lost
    second = workers.start("ludii")
    thread.join(120)
    [result] = outcome["results"]
    assert result.status is ItemStatus.OK and result.components["playouts"] == 20.0, result.error
    assert executions(redis, [job_id]) == {job_id: [("SUCCESSFUL", worker_name(redis, second))]}


def test_a_worker_stopped_in_the_middle_of_an_arithmetic_batch_takes_no_new_job_and_loses_none(workers, redis_url):
    redis = Redis.from_url(redis_url)
    service = service_on(redis_url, max_batch_items=40_000)
    first = workers.start("arithmetic")
    first_name = worker_name(redis, first)
    items = [RewardItem(str(k), "", f"{k % 30} + 4", {"previous": "1 + 2 + 4", "target": "7"}) for k in range(40_000)]
    thread, outcome = score_in_background(service, "arithmetic", items)

    def done_by_first() -> int:
        return next(w.successful_job_count for w in Worker.all(connection=redis) if w.name == first_name)

    wait_for(lambda: done_by_first() >= 3, 60, "the worker never got going")
    first.send_signal(signal.SIGTERM)
    before = done_by_first()
    assert wait_for_exit(first, 10) < 3.0 and first.returncode == 0
    queue = Queue("arithmetic", connection=redis)
    left = queue.count
    jobs = -(-len(items) // 128)
    assert left > 0 and before + left <= jobs  # it stopped mid-batch ...
    assert jobs - left - before <= 2  # ... taking no new job: at most the one running as the signal landed
    second = workers.start("arithmetic")
    thread.join(120)
    results = outcome["results"]
    assert len(results) == len(items) and all(r.ok for r in results)
    ran = executions(redis, queue.finished_job_registry.get_job_ids())
    assert len(ran) == jobs and all(len(runs) == 1 and runs[0][0] == "SUCCESSFUL" for runs in ran.values())
    assert {runs[0][1] for runs in ran.values()} == {first_name, worker_name(redis, second)}


def test_ctrl_c_twice_puts_the_running_job_back_at_once(workers, redis_url):
    redis = Redis.from_url(redis_url)
    service = service_on(redis_url)
    first = workers.start("test_slow", stop_grace_s=60)
    thread, outcome = score_in_background(service, "test_slow", [RewardItem("a", "", "abc", {"sleep_s": "3"})])
    job_id = started_job(redis, "test_slow")
    first.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert first.poll() is None  # the first Ctrl-C lets the job go on
    first.send_signal(signal.SIGINT)
    assert wait_for_exit(first, 10) < 2.0 and first.returncode == 0
    assert Queue("test_slow", connection=redis).job_ids == [job_id]
    workers.start("test_slow")
    thread.join(60)
    assert outcome["results"][0].ok and outcome["results"][0].reward == 3.0
