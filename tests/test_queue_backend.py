"""Scoring through real Redis queues and real `rlpr worker` processes."""
import os
import signal
import threading
import time

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from reward_service.client import GrpcRewardClient
from reward_service.rewards import get_reward
from reward_service.types import ItemStatus, RewardItem


def arithmetic_items(n, prefix="i"):
    return [RewardItem(f"{prefix}{k}", "", f"{k % 30} + 4", {"previous": "1 + 2 + 4", "target": "7"}) for k in range(n)]


def test_batch_is_chunked_and_scored_by_workers(workers, queue_service, make_server, redis_url):
    workers.start("arithmetic")
    server = make_server(queue_service)
    results = GrpcRewardClient(server.grpc_target).score("arithmetic", arithmetic_items(600))
    assert len(results) == 600 and all(r.ok for r in results)
    assert results[3].components["value"] == 7.0 and results[3].reward == pytest.approx(1.0)
    finished = Queue("arithmetic", connection=Redis.from_url(redis_url)).finished_job_registry
    chunk = get_reward("arithmetic").chunk_size
    assert 1 < chunk < 600 and finished.count == -(-600 // chunk)  # chunked jobs, not one job per item


def test_two_workers_share_one_queue(workers, queue_service, redis_url):
    workers.start("test_slow")
    workers.start("test_slow")
    # Sleeps long enough that the margin between one worker (>= 4 s) and two (~2 s) survives a busy machine.
    items = [RewardItem(str(k), "", "abc", {"sleep_s": "0.5"}) for k in range(8)]
    started = time.monotonic()
    results = queue_service.score("test_slow", items)
    elapsed = time.monotonic() - started
    assert all(r.ok and r.reward == 3.0 for r in results)
    counts = [w.successful_job_count for w in Worker.all(connection=Redis.from_url(redis_url))]
    assert sorted(counts) != [0, 8] and sum(counts) == 8, counts
    assert elapsed < 8 * 0.5, elapsed  # faster than one worker alone could be


def test_cache_serves_repeats_and_can_be_skipped(workers, queue_service):
    workers.start("arithmetic")
    first = queue_service.score("arithmetic", arithmetic_items(5))
    again = queue_service.score("arithmetic", arithmetic_items(5, prefix="other"))
    assert not any(r.cached for r in first) and all(r.cached for r in again)
    assert [r.id for r in again] == [f"other{k}" for k in range(5)]
    assert [r.reward for r in again] == [r.reward for r in first]
    fresh = queue_service.score("arithmetic", arithmetic_items(5), use_cache=False)
    assert not any(r.cached for r in fresh)
    lenient = queue_service.score("arithmetic", arithmetic_items(5), options={"lenient": "true"})
    assert not any(r.cached for r in lenient)  # options are part of the cache key


def test_sigkilled_worker_loses_no_items(workers, queue_service, redis_url):
    victim = workers.start("test_slow")
    items = [RewardItem(str(k), "", "x" * k, {"sleep_s": "0.5"}) for k in range(10)]
    outcome = {}
    scorer = threading.Thread(target=lambda: outcome.update(results=queue_service.score("test_slow", items)))
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
    assert [r.status for r in results] == [ItemStatus.OK] * 10
    assert [r.reward for r in results] == [float(k) for k in range(10)]


def test_raising_reward_fails_one_item_and_the_worker_survives(workers, queue_service):
    proc = workers.start("test_explosive")
    items = [RewardItem(str(k), "", "boom" if k == 2 else "fine") for k in range(6)]
    results = queue_service.score("test_explosive", items)
    assert [r.status for r in results] == [ItemStatus.OK] * 2 + [ItemStatus.ERROR] + [ItemStatus.OK] * 3
    assert proc.poll() is None
    assert queue_service.score("test_explosive", items[:1])[0].ok


def test_deadline_gives_per_item_timeouts_promptly_and_late_results_do_not_leak(workers, queue_service):
    workers.start("test_slow")
    slow = [RewardItem(str(k), "", "slow", {"sleep_s": "1.0"}) for k in range(4)]
    started = time.monotonic()
    results = queue_service.score("test_slow", slow, deadline_s=1.5, use_cache=False)
    assert time.monotonic() - started < 3.0
    assert ItemStatus.TIMEOUT in {r.status for r in results}
    assert all(r.ok or r.status is ItemStatus.TIMEOUT for r in results)
    time.sleep(1.2)  # the job that was running finishes late
    fast = [RewardItem(str(k), "", "quick!", {"sleep_s": "0"}) for k in range(2)]
    later = queue_service.score("test_slow", fast, use_cache=False)
    assert [r.reward for r in later] == [6.0, 6.0]


def test_no_worker_means_timeouts_not_a_hang(queue_service):
    started = time.monotonic()
    results = queue_service.score("arithmetic", arithmetic_items(3), deadline_s=1.0)
    assert time.monotonic() - started < 2.5
    assert {r.status for r in results} == {ItemStatus.TIMEOUT}


def test_workers_score_in_their_own_process_and_never_fork(workers, queue_service):
    proc = workers.start("test_pid")
    results = queue_service.score("test_pid", [RewardItem(str(k), "", "x") for k in range(4)], use_cache=False)
    assert {r.components["pid"] for r in results} == {float(proc.pid)}


def test_ludii_cache_key_is_the_game_not_the_prompt():
    from reward_service.cache import cache_key

    a = RewardItem("1", "### PRE: (game ...", "(players 2)", {"prefix": "(game \"G\" ", "suffix": ")"})
    b = RewardItem("2", "another prompt", "\"G\" (players 2))", {"prefix": "(game "})
    c = RewardItem("3", "### PRE: (game ...", "(players 3)", {"prefix": "(game \"G\" ", "suffix": ")"})
    assert cache_key("ludii", {}, a) == cache_key("ludii", {}, b) != cache_key("ludii", {}, c)
    assert cache_key("ludii", {}, a) != cache_key("ludii", {"playouts": "10"}, a)
    assert cache_key("arithmetic", {}, a) != cache_key("arithmetic", {}, b)  # other rewards key on every field


def test_job_stranded_between_dequeue_and_start_is_requeued(workers, queue_service, redis_url):
    """A worker killed right after taking a job off the queue leaves it in RQ's intermediate list."""
    redis = Redis.from_url(redis_url)
    queue = Queue("test_slow", connection=redis)
    outcome = {}
    items = [RewardItem(str(k), "", "abc", {"sleep_s": "0"}) for k in range(2)]
    scorer = threading.Thread(target=lambda: outcome.update(results=queue_service.score("test_slow", items)))
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
    scorer = threading.Thread(target=lambda: outcome.update(results=queue_service.score("test_slow", items)))
    scorer.start()
    registry = StartedJobRegistry("test_slow", connection=redis)
    wait = time.monotonic() + 20
    while registry.count == 0 and time.monotonic() < wait:
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    workers.start("test_slow")
    scorer.join(timeout=40)
    assert [r.status for r in outcome["results"]] == [ItemStatus.OK] * 4
