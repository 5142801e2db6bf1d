"""Scoring through real Redis queues and real `rlpr worker` processes."""
import os
import signal
import threading
import time

import httpx
import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry

from reward_contract.client import GrpcRewardClient
from reward_service.rewards import get_reward
from reward_contract.errors import NoWorker
from reward_contract.types import ItemStatus, RewardItem
from tests.system import wait_for


def arithmetic_items(n, prefix="i"):
    return [RewardItem(f"{prefix}{k}", "", f"{k % 30} + 4", {"previous": "1 + 2 + 4", "target": "7"}) for k in range(n)]


def ended_job_counts(redis, at_least: int, timeout_s: float = 5) -> list[tuple[int, int]]:
    """Each worker's (successful, failed) job counts once `at_least` jobs have ended, and a moment
    more for any extra: a reply goes out before RQ's own end-of-job bookkeeping, which trails it."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = [(w.successful_job_count, w.failed_job_count) for w in Worker.all(connection=redis)]
        if sum(map(sum, counts)) >= at_least or time.monotonic() > deadline:
            time.sleep(0.2)
            return [(w.successful_job_count, w.failed_job_count) for w in Worker.all(connection=redis)]
        time.sleep(0.02)


def start_a_slow_job(queue_service, redis, sleep_s: str, text: str = "ab"):
    """Score one test_slow item in a thread; once its job runs: (thread, outcome dict, job id)."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(results=queue_service.score_blocking(
        "test_slow", [RewardItem("1", "", text, {"sleep_s": sleep_s})], deadline_s=30)))
    thread.start()
    registry = StartedJobRegistry("test_slow", connection=redis)
    deadline = time.monotonic() + 5
    while not registry.get_job_ids() and time.monotonic() < deadline:
        time.sleep(0.02)
    [job_id] = registry.get_job_ids()
    return thread, outcome, job_id


def test_batch_is_chunked_and_scored_by_workers(workers, queue_service, make_server, redis_url):
    workers.start("arithmetic")
    server = make_server(queue_service)
    results = GrpcRewardClient(server.grpc_target).score("arithmetic", arithmetic_items(600))
    assert len(results) == 600 and all(r.ok for r in results)
    assert results[3].components["value"] == 7.0 and results[3].reward == pytest.approx(1.0)
    chunk = get_reward("arithmetic").chunk_size
    jobs = -(-600 // chunk)
    assert 1 < chunk < 600 and ended_job_counts(Redis.from_url(redis_url), jobs) == [(jobs, 0)]  # chunks, not items



def test_two_workers_share_one_queue(workers, queue_service, redis_url):
    workers.start("test_slow")
    workers.start("test_slow")
    # Sleeps long enough that the margin between one worker (>= 4 s) and two (~2 s) survives a busy machine.
    items = [RewardItem(str(k), "", "abc", {"sleep_s": "0.5"}) for k in range(8)]
    started = time.monotonic()
    results = queue_service.score_blocking("test_slow", items)
    elapsed = time.monotonic() - started
    assert all(r.ok and r.reward == 3.0 for r in results)
    counts = [ok for ok, _ in ended_job_counts(Redis.from_url(redis_url), 8)]
    assert sorted(counts) != [0, 8] and sum(counts) == 8, counts
    assert elapsed < 8 * 0.5, elapsed  # faster than one worker alone could be


def test_cache_serves_repeats_and_can_be_skipped(workers, queue_service):
    workers.start("arithmetic")
    first = queue_service.score_blocking("arithmetic", arithmetic_items(5))
    again = queue_service.score_blocking("arithmetic", arithmetic_items(5, prefix="other"))
    assert not any(r.cached for r in first) and all(r.cached for r in again)
    assert [r.id for r in again] == [f"other{k}" for k in range(5)]
    assert [r.reward for r in again] == [r.reward for r in first]
    fresh = queue_service.score_blocking("arithmetic", arithmetic_items(5), use_cache=False)
    assert not any(r.cached for r in fresh)
    lenient = queue_service.score_blocking("arithmetic", arithmetic_items(5), options={"lenient": True})
    assert not any(r.cached for r in lenient)  # options are part of the cache key


def test_sigkilled_worker_loses_no_items(workers, queue_service, redis_url):
    victim = workers.start("test_slow")
    items = [RewardItem(str(k), "", "x" * k, {"sleep_s": "0.5"}) for k in range(10)]
    outcome = {}
    scorer = threading.Thread(target=lambda: outcome.update(results=queue_service.score_blocking("test_slow", items)))
    scorer.start()
    registry = StartedJobRegistry("test_slow", connection=Redis.from_url(redis_url))
    deadline = time.monotonic() + 20
    while registry.count == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert registry.count == 1, "the victim never started a job"
    os.killpg(victim.pid, signal.SIGKILL)  # mid-job, no chance to clean up
    workers.start("test_slow")  # the survivor picks up the rest and the retried job
    scorer.join(timeout=60)
    results = outcome["results"]
    assert [r.status for r in results] == [ItemStatus.OK] * 10, [r.error for r in results if not r.ok]
    assert [r.reward for r in results] == [float(k) for k in range(10)]


def test_raising_reward_fails_one_item_and_the_worker_survives(workers, queue_service):
    proc = workers.start("test_explosive")
    items = [RewardItem(str(k), "", "boom" if k == 2 else "fine") for k in range(6)]
    results = queue_service.score_blocking("test_explosive", items)
    assert [r.status for r in results] == [ItemStatus.OK] * 2 + [ItemStatus.ERROR] + [ItemStatus.OK] * 3
    assert proc.poll() is None
    assert queue_service.score_blocking("test_explosive", items[:1])[0].ok


def test_deadline_gives_per_item_timeouts_promptly_and_late_results_do_not_leak(workers, queue_service):
    workers.start("test_slow")
    slow = [RewardItem(str(k), "", "slow", {"sleep_s": "1.0"}) for k in range(4)]
    started = time.monotonic()
    results = queue_service.score_blocking("test_slow", slow, deadline_s=1.5, use_cache=False)
    assert time.monotonic() - started < 3.0
    assert ItemStatus.TIMEOUT in {r.status for r in results}
    assert all(r.ok or r.status is ItemStatus.TIMEOUT for r in results)
    time.sleep(1.2)  # the job that was running finishes late
    fast = [RewardItem(str(k), "", "quick!", {"sleep_s": "0"}) for k in range(2)]
    later = queue_service.score_blocking("test_slow", fast, use_cache=False)
    assert [r.reward for r in later] == [6.0, 6.0]


def test_no_worker_is_said_at_once_not_after_the_deadline(queue_service):
    started = time.monotonic()
    with pytest.raises(NoWorker, match="no worker serves queue 'arithmetic'"):
        queue_service.score_blocking("arithmetic", arithmetic_items(3), deadline_s=30)
    assert time.monotonic() - started < 2.0


def test_workers_score_in_their_own_process_and_never_fork(workers, queue_service):
    proc = workers.start("test_pid")
    results = queue_service.score_blocking("test_pid", [RewardItem(str(k), "", "x") for k in range(4)], use_cache=False)
    assert {r.components["pid"] for r in results} == {float(proc.pid)}


def test_ludii_cache_key_is_the_game_not_the_prompt():
    from reward_service.core.request import Limits, resolve

    def key(reward, item, options=None):
        return resolve(reward, [item], options, None, True, "test", Limits()).cache_keys[0]

    a = RewardItem("1", "### PRE: (game ...", "(players 2)", {"prefix": "(game \"G\" ", "suffix": ")"})
    b = RewardItem("2", "another prompt", "\"G\" (players 2))", {"prefix": "(game "})
    c = RewardItem("3", "### PRE: (game ...", "(players 3)", {"prefix": "(game \"G\" ", "suffix": ")"})
    assert key("ludii", a) == key("ludii", b) != key("ludii", c)
    assert key("ludii", a) != key("ludii", a, {"playouts": "10"})
    assert key("ludii", a) == key("ludii", a, {"playouts": 100})  # options are keyed by value, defaults filled in
    assert key("arithmetic", a) != key("arithmetic", b)  # other rewards key on every field


def test_job_stranded_between_dequeue_and_start_is_requeued(workers, queue_service, redis_url):
    """A worker killed right after taking a job off the queue leaves it in RQ's intermediate list."""
    redis = Redis.from_url(redis_url)
    queue = Queue("test_slow", connection=redis)
    Worker([queue], connection=redis, name="about-to-die").register_birth()  # it takes a job, then dies
    outcome = {}
    items = [RewardItem(str(k), "", "abc", {"sleep_s": "0"}) for k in range(2)]
    scorer = threading.Thread(target=lambda: outcome.update(results=queue_service.score_blocking("test_slow", items)))
    scorer.start()
    wait = time.monotonic() + 10
    while queue.count < 2 and time.monotonic() < wait:
        time.sleep(0.01)
    redis.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")  # what a dequeuing worker does
    workers.start("test_slow")
    scorer.join(timeout=30)
    assert [r.status for r in outcome["results"]] == [ItemStatus.OK, ItemStatus.OK]


def test_recovery_does_not_wait_for_rqs_maintenance_lock(workers, queue_service, redis_url):
    """A worker killed mid-maintenance holds RQ's 15-minute lock; recovery must not depend on it."""
    redis = Redis.from_url(redis_url)
    queue = Queue("test_slow", connection=redis)
    assert queue.acquire_maintenance_lock()  # as if its holder had died
    victim = workers.start("test_slow")
    items = [RewardItem(str(k), "", "x" * k, {"sleep_s": "0.5"}) for k in range(4)]
    outcome = {}
    scorer = threading.Thread(target=lambda: outcome.update(results=queue_service.score_blocking("test_slow", items)))
    scorer.start()
    registry = StartedJobRegistry("test_slow", connection=redis)
    wait = time.monotonic() + 20
    while registry.count == 0 and time.monotonic() < wait:
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    workers.start("test_slow")
    scorer.join(timeout=40)
    assert [r.status for r in outcome["results"]] == [ItemStatus.OK] * 4


def slow_items(n, seconds=1.0):
    return [RewardItem(str(k), "", "x", {"sleep_s": str(seconds)}) for k in range(n)]


def assert_withdrawn(redis_url, finished_at_most):
    """Nothing runs after the request ended: the running job stopped, queued ones were removed."""
    from tests.plugins.fake_rewards import SCORED_COUNTER

    redis = Redis.from_url(redis_url)
    time.sleep(2.5)  # had the work gone on, more items would have finished by now
    assert int(redis.get(SCORED_COUNTER) or 0) <= finished_at_most
    queue = Queue("test_slow", connection=redis)
    assert queue.count == 0 and queue.canceled_job_registry.count == 0  # removed, not parked as canceled


def test_work_past_its_deadline_is_withdrawn(workers, queue_service, redis_url):
    workers.start("test_slow")
    started = time.monotonic()
    results = queue_service.score_blocking("test_slow", slow_items(6), deadline_s=1.5, use_cache=False)
    assert time.monotonic() - started < 3.0
    assert sum(r.ok for r in results) <= 1 and {r.status for r in results} <= {ItemStatus.OK, ItemStatus.TIMEOUT}
    assert_withdrawn(redis_url, finished_at_most=1)


def test_work_of_a_caller_that_went_away_is_withdrawn(workers, queue_service, make_server, redis_url):
    import grpc

    from reward_contract.codec import request_to_pb
    from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

    workers.start("test_slow")
    server = make_server(queue_service)
    channel = grpc.insecure_channel(server.grpc_target)
    call = pb_grpc.RewardServiceStub(channel).Score.future(
        request_to_pb("test_slow", slow_items(6), {}, 60, use_cache=False), timeout=60)
    time.sleep(0.6)
    call.cancel()  # the trainer died, or gave up
    assert_withdrawn(redis_url, finished_at_most=1)
    channel.close()


def test_work_of_a_rest_client_that_hung_up_is_withdrawn(workers, queue_service, make_server, redis_url):
    import httpx

    workers.start("test_slow")
    server = make_server(queue_service)
    body = {"reward": "test_slow", "no_cache": True, "deadline_ms": 60000,
            "items": [{"id": str(k), "completion": "x", "reference": {"sleep_s": 1.0}} for k in range(6)]}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(server.rest_url + "/v1/score:batch", json=body, timeout=0.6)
    assert_withdrawn(redis_url, finished_at_most=1)


def test_rq_only_buffers_into_a_given_pipeline_so_the_asyncio_client_can_enqueue(redis_url):
    """The API enqueues with RQ's own `enqueue_many` through a pipeline of the asyncio Redis
    client (core/backends.py). That holds only while RQ adds commands to a given pipeline and
    reads nothing back; if a release of RQ starts to, this fails before the service does."""
    import asyncio
    import warnings

    from redis import asyncio as aioredis
    from rq import Retry

    redis = Redis.from_url(redis_url)
    queue = Queue("test_async_enqueue", connection=redis)
    datas = [Queue.prepare_data("builtins.len", args=((1, 2),), job_id=f"async-enqueue-{k}", ttl=60, result_ttl=60,
                                retry=Retry(max=2)) for k in range(2)]
    synchronous = redis.pipeline()
    queue.enqueue_many(datas, pipeline=synchronous)
    expected = [command[0][:2] for command in synchronous.command_stack]

    async def enqueue():
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with client.pipeline(transaction=True) as pipe:
                jobs = queue.enqueue_many(datas, pipeline=pipe)
                buffered = [command[0][:2] for command in pipe.command_stack]
                await pipe.execute()
            return jobs, buffered
        finally:
            await client.aclose()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a coroutine RQ created and never awaited
            jobs, buffered = asyncio.run(enqueue())
        assert buffered == expected
        assert queue.job_ids == [job.id for job in jobs] == ["async-enqueue-0", "async-enqueue-1"]
        assert [job.func_name for job in queue.jobs] == ["builtins.len"] * 2
    finally:
        queue.delete(delete_jobs=True)


def test_a_running_job_heartbeats_until_it_ends_and_runs_once(workers, queue_service, redis_url):
    """Heartbeats are how a dead worker is noticed within seconds, so a live one must keep beating
    for as long as its job runs (every 0.5 s here), and a job that outlives the 2 s beat TTL must
    still run once."""
    workers.start("test_slow")
    redis = Redis.from_url(redis_url)
    thread, outcome, job_id = start_a_slow_job(queue_service, redis, "4", "abcd")
    first = Job.fetch(job_id, connection=redis).last_heartbeat
    time.sleep(2.5)
    later = Job.fetch(job_id, connection=redis).last_heartbeat
    thread.join()
    assert (later - first).total_seconds() >= 1.5, (first, later)
    assert outcome["results"][0].ok and outcome["results"][0].reward == 4.0
    assert ended_job_counts(redis, 1) == [(1, 0)]


def test_a_worker_idle_after_short_jobs_keeps_its_full_ttl(workers, queue_service, redis_url):
    """RQ's per-job heartbeat shortens the worker's key to the job's few-second TTL, and our worker
    sends RQ's plain heartbeats at most once a second. The one after each job must still go out,
    or a worker that idles after a run of short jobs would vanish from Redis seconds later."""
    from reward_service.worker.worker import IDLE_HEARTBEAT_S

    workers.start("arithmetic")
    for k in range(30):
        assert queue_service.score_blocking("arithmetic", arithmetic_items(1, prefix=f"r{k}-"), use_cache=False)[0].ok
    redis = Redis.from_url(redis_url)
    assert ended_job_counts(redis, 30) == [(30, 0)]
    time.sleep(0.1)
    [worker] = Worker.all(connection=redis)
    assert redis.ttl(worker.key) > IDLE_HEARTBEAT_S + 15, redis.ttl(worker.key)


def test_a_started_job_is_recorded_as_rq_records_it(workers, queue_service, redis_url):
    """The worker writes a job's start in one transaction instead of RQ's two; what RQ's two write
    must all be there while the job runs: the job started by this worker and kept (no TTL), in the
    started registry, off the intermediate list, with an execution record, and the worker busy."""
    workers.start("test_slow")
    redis = Redis.from_url(redis_url)
    queue = Queue("test_slow", connection=redis)
    thread, outcome, job_id = start_a_slow_job(queue_service, redis, "2")
    job = Job.fetch(job_id, connection=redis)
    [worker] = Worker.all(connection=redis)
    assert job.get_status() == "started" and job.worker_name == worker.name
    assert redis.ttl(job.key) == -1
    assert redis.llen(queue.intermediate_queue_key) == 0
    assert [e.job_id for e in job.get_executions()] == [job_id]
    assert worker.get_state() == "busy"
    thread.join()
    assert outcome["results"][0].ok
    # the reply goes out before RQ's own end-of-job bookkeeping, which trails it
    wait_for(lambda: Job.fetch(job_id, connection=redis).get_status() == "finished", 5, "the job to be finished")


def test_queue_loads_count_waiting_and_running_jobs_for_an_autoscaler(workers, queue_service, make_server, redis_url):
    """What KEDA's triggers read: jobs queued (the list's length) and jobs running, where a job whose
    worker died is not running any more."""
    victim = workers.start("test_slow", dead_after_s=2.0)
    server = make_server(queue_service)
    items = [RewardItem(str(k), "", "ab", {"sleep_s": "30"}) for k in range(3)]
    scorer = threading.Thread(target=lambda: queue_service.score_blocking("test_slow", items, deadline_s=8))
    scorer.start()
    redis = Redis.from_url(redis_url)
    wait_for(lambda: StartedJobRegistry("test_slow", connection=redis).count == 1, 10, "a job to start")
    load = httpx.get(server.rest_url + "/queues", params={"names": "test_slow,arithmetic"}, timeout=10).json()
    assert load == {"queued": 2, "running": 1, "queues": {"test_slow": {"queued": 2, "running": 1, "workers": 1},
                                                          "arithmetic": {"queued": 0, "running": 0, "workers": 0}}}
    os.killpg(victim.pid, signal.SIGKILL)
    # Once the worker is past --dead-after-s, its job goes back on the queue and is not running.
    wait_for(lambda: httpx.get(server.rest_url + "/queues?names=test_slow", timeout=10).json()["running"] == 0, 10,
             "the dead worker's job to stop counting as running")
    after = httpx.get(server.rest_url + "/queues?names=test_slow", timeout=10).json()
    assert (after["queued"], after["running"]) == (3, 0), after
    unknown = httpx.get(server.rest_url + "/queues?names=nope", timeout=10)
    assert unknown.status_code == 422 and "test_slow" in unknown.json()["error"]["message"]
    assert set(httpx.get(server.rest_url + "/queues", timeout=10).json()["queues"]) >= {"ludii", "arithmetic"}
    scorer.join(30)
