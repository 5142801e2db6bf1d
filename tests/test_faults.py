"""The reward service under real faults of its environment: a lost or evicted worker registration, a
retried job withdrawn at its deadline, a stalled Redis, a stopped worker, a full Redis. Real Redis,
real worker processes, real sockets. (A hostile client: tests/test_hostile_input.py.)"""
import os
import signal
import threading
import time

import httpx
import pytest
from redis import Redis
from rq import Queue, Worker

from reward_contract.types import RewardItem
from tests.system import service_on, wait_for

ARITHMETIC = [RewardItem("1", "", "23 + 4", {"previous": "23 + 1 + 3"})]



def post_in_background(server, body: dict) -> tuple[threading.Thread, dict]:
    """POST /v1/score from a thread; the response lands in the returned dict under "response"."""
    answer: dict = {}

    def call():
        answer["response"] = httpx.post(server.rest_url + "/v1/score", json=body, timeout=60)

    caller = threading.Thread(target=call)
    caller.start()
    return caller, answer


def served_within(server, seconds: float) -> float:
    """Seconds until the API (its health monitor running) scores arithmetic over REST; fails after `seconds`."""
    body = {"reward": "arithmetic", "item": {"id": "1", "completion": "23 + 4", "reference": {"previous": "23 + 1 + 3"}}}
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = httpx.post(server.rest_url + "/v1/score", json=body, timeout=30)
        if response.status_code == 200 and response.json()["status"] == "ok":
            return time.monotonic() - started
        assert response.status_code == 503, response.text  # "no worker serves queue arithmetic" meanwhile
        time.sleep(0.1)
    pytest.fail(f"arithmetic was not served again within {seconds} s")


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["whole hash", "queues field"])
def test_a_worker_whose_registration_redis_lost_restores_it_and_is_served_again(workers, redis_url, make_server, loss):
    """Eviction (RQ gives worker hashes a TTL) or expiry after a stall removes a live worker's hash; its
    next heartbeat recreates it with no `queues`, and on main the reward stayed unserved for good."""
    proc = workers.start("arithmetic")
    redis = Redis.from_url(redis_url)
    server = make_server(service_on(redis_url, cache=False))
    assert served_within(server, 10) < 5
    key = next(w.key for w in Worker.all(connection=redis) if w.pid == proc.pid)
    beat = redis.hget(key, "last_heartbeat")
    if loss == "whole hash":
        redis.delete(key)
    else:
        redis.hdel(key, "queues")
    # The end state: the worker's next heartbeat has written its hash again (on main, without `queues`).
    wait_for(lambda: redis.hget(key, "last_heartbeat") not in (None, beat), 15, "the worker's next heartbeat")
    time.sleep(1.5)  # the API's health monitor refreshes every second
    assert served_within(server, 10) < 5
    assert redis.hget(key, "queues") == b"arithmetic" and proc.poll() is None


@pytest.mark.slow
def test_a_live_worker_stays_served_while_its_evicted_hash_is_written_again(workers, redis_url, make_server):
    """Between an eviction and the worker's next heartbeat (up to 5 s when idle) the API once answered
    "no worker": the monitor must go on counting a worker it saw alive less than 20 s ago."""
    proc = workers.start("arithmetic")
    redis = Redis.from_url(redis_url)
    server = make_server(service_on(redis_url, cache=False))
    assert served_within(server, 10) < 5
    time.sleep(1.5)  # a monitor check that saw the worker whole
    redis.delete(next(w.key for w in Worker.all(connection=redis) if w.pid == proc.pid))
    time.sleep(1.5)  # a monitor check that finds no hash
    assert served_within(server, 10) < 0.5


@pytest.mark.slow
def test_withdrawing_a_retried_job_at_its_deadline_answers_timeout_not_a_crash(workers, redis_url, make_server):
    """A worker dies mid-job, RQ requeues the job for its retry, no worker is left to run it, and the
    deadline passes while it waits: RQ cannot delete such a job (its execution record died with the
    worker). The request must still end in a documented status."""

    proc = workers.start("test_slow")
    redis = Redis.from_url(redis_url)
    service = service_on(redis_url, cache=False, retries=2)
    server = make_server(service)
    caller, answer = post_in_background(server, {"reward": "test_slow", "deadline_ms": 15000, "item": {
        "id": "1", "completion": "abc", "reference": {"sleep_s": "60"}}})
    queue = Queue("test_slow", connection=redis)
    wait_for(lambda: queue.started_job_registry.count > 0, 10, "the job to start")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: queue.count > 0, 20, "RQ to requeue the dead worker's job for its retry")
    caller.join(timeout=40)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "timeout"
    assert queue.count == 0  # withdrawn: no worker that starts later runs it


@pytest.mark.slow
def test_readyz_for_a_reward_names_it_and_says_why_it_is_not_served(workers, redis_url, make_server):
    workers.start("arithmetic")
    server = make_server(service_on(redis_url, cache=False))
    wait_for(lambda: httpx.get(server.rest_url + "/readyz?reward=arithmetic").status_code == 200, 10,
             "arithmetic to be served")
    served = httpx.get(server.rest_url + "/readyz?reward=arithmetic").json()
    assert served["reward"] == "arithmetic" and served["served"] is True
    missing = httpx.get(server.rest_url + "/readyz?reward=sentiment_vader")
    assert missing.status_code == 503
    body = missing.json()
    assert body["reward"] == "sentiment_vader" and body["served"] is False
    assert "reward 'sentiment_vader' is not served: no live worker serves its queue" in body["reason"]


@pytest.fixture
def stoppable_redis():
    """A Redis of the test's own, which it may freeze (SIGSTOP) and thaw."""
    from tests.system import PrivateRedis

    redis = PrivateRedis()
    yield redis
    redis.proc.send_signal(signal.SIGCONT)
    redis.stop()


@pytest.mark.slow
def test_a_stalled_redis_makes_readiness_false_and_requests_keep_their_deadline(workers, stoppable_redis,
                                                                                make_server):
    redis = stoppable_redis
    workers.start("test_slow", redis_url=redis.url)
    server = make_server(service_on(redis.url, cache=False))
    wait_for(lambda: httpx.get(server.rest_url + "/readyz").status_code == 200, 10, "readiness")
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: httpx.get(server.rest_url + "/readyz", timeout=10).status_code == 503, 6,
                 "readiness to turn false while Redis does not answer")
        assert httpx.get(server.rest_url + "/readyz", timeout=10).json()["redis"] == "unreachable"
        started = time.monotonic()
        body = {"reward": "test_slow", "deadline_ms": 5000, "item": {"id": "1", "completion": "ab"}}
        response = httpx.post(server.rest_url + "/v1/score", json=body, timeout=60)
        took = time.monotonic() - started
        assert took <= 5 + 4, took  # its deadline, and at most the stall bound and a withdrawal's wait more
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            message = response.json()["error"]["message"]
            assert "retry later" in message and "127.0.0.1" not in message  # no Redis address leaks
        else:
            assert response.json()["status"] == "timeout"
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: httpx.get(server.rest_url + "/readyz").status_code == 200, 10, "readiness after the stall")


@pytest.mark.slow
def test_work_finished_during_a_short_redis_stall_reaches_the_caller(workers, stoppable_redis, make_server):
    redis = stoppable_redis
    workers.start("test_slow", redis_url=redis.url)
    server = make_server(service_on(redis.url, cache=False))
    wait_for(lambda: httpx.get(server.rest_url + "/readyz").status_code == 200, 10, "readiness")
    caller, answer = post_in_background(server, {"reward": "test_slow", "deadline_ms": 30000, "item": {
        "id": "1", "completion": "abcd", "reference": {"sleep_s": "2"}}})
    queue = Queue("test_slow", connection=Redis.from_url(redis.url))
    wait_for(lambda: queue.started_job_registry.count > 0, 10, "the job to start")
    redis.proc.send_signal(signal.SIGSTOP)
    time.sleep(6)  # the item finishes meanwhile; its reply waits for Redis, and so does the API
    redis.proc.send_signal(signal.SIGCONT)
    caller.join(timeout=40)
    response = answer["response"]
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text
    assert response.json()["reward"] == 4.0


@pytest.mark.slow
@pytest.mark.parametrize("stopped_s, dead_after_s, runs", [(8, 20, 1), (6, 3, 2)])
def test_a_stopped_worker_is_declared_dead_only_after_dead_after_s(workers, redis_url, make_server,
                                                                   stopped_s, dead_after_s, runs):
    """SIGSTOP a busy worker while a second one waits. A stop shorter than `--dead-after-s` (the default,
    20 s) runs the chunk once; on main a 6 s stop already ran it twice. A longer stop runs it again on
    the other worker (at least once), and the caller gets one answer either way."""
    server = make_server(service_on(redis_url, cache=False, retries=2))
    from tests.plugins.fake_rewards import SCORED_COUNTER  # after the registry has loaded it as a plugin

    redis = Redis.from_url(redis_url)
    redis.delete(SCORED_COUNTER)
    stopped = workers.start("test_slow", dead_after_s=dead_after_s)
    caller, answer = post_in_background(server, {"reward": "test_slow", "deadline_ms": 40000, "item": {
        "id": "1", "completion": "abc", "reference": {"sleep_s": "2"}}})
    queue = Queue("test_slow", connection=redis)
    wait_for(lambda: queue.started_job_registry.count > 0, 10, "the job to start")
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        workers.start("test_slow")
        time.sleep(stopped_s)
        assert httpx.get(server.rest_url + "/readyz?reward=test_slow").status_code == 200  # still served
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    caller.join(timeout=40)
    response = answer["response"]
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text
    wait_for(lambda: int(redis.get(SCORED_COUNTER) or 0) >= runs, 10, f"{runs} run(s) of the chunk")
    time.sleep(3)  # a run it should not have made would finish meanwhile
    assert int(redis.get(SCORED_COUNTER)) == runs


def _arithmetic_batch(request: int, size: int = 64) -> list[dict]:
    return [{"id": f"{request}-{i}", "completion": f"{request} + {i}",
             "reference": {"previous": f"{request} + {i} + 0"}}
            for i in range(size)]


@pytest.mark.slow
def test_a_full_redis_under_volatile_lru_loses_no_work_silently(workers, make_server):
    """The supported policy (`rlpr up`, compose): Redis at its maxmemory, kept there by cache-like keys
    with a TTL that keep arriving. Every item of every request is scored, or ends in a status that
    says what happened; the worker's registration and the queues survive."""
    from tests.system import PrivateRedis

    redis_server = PrivateRedis("--maxmemory", "6mb", "--maxmemory-policy", "volatile-lru")
    try:
        redis = Redis.from_url(redis_server.url)
        filler = "f" * 4096
        for i in range(3000):  # 12 MB of expiring keys into 6 MB: eviction is running from here on
            redis.set(f"filler:{i}", filler, ex=3600)
        assert redis.info("stats")["evicted_keys"] > 0
        proc = workers.start("arithmetic", redis_url=redis_server.url)
        server = make_server(service_on(redis_server.url))
        statuses: dict[str, int] = {}
        for request in range(30):
            for i in range(100):
                redis.set(f"filler:{request}:{i}", filler, ex=3600)
            response = httpx.post(server.rest_url + "/v1/score:batch", timeout=60, json={
                "reward": "arithmetic", "deadline_ms": 20000, "items": _arithmetic_batch(request)})
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert [r["id"] for r in results] == [item["id"] for item in _arithmetic_batch(request)]
            for result in results:
                statuses[result["status"]] = statuses.get(result["status"], 0) + 1
                assert result["status"] == "ok" or result["error"], result  # a failure says why
        assert set(statuses) <= {"ok", "lost"} and statuses["ok"] >= 0.9 * sum(statuses.values()), statuses
        # Its hash may be evicted at any moment; it is whole again within a heartbeat (5 s when idle).
        wait_for(lambda: [w.queue_names() for w in Worker.all(connection=redis) if w.pid == proc.pid] == [
            ["arithmetic"]], 10, "the worker's whole registration")
    finally:
        redis_server.stop()


@pytest.mark.slow
def test_a_full_redis_under_noeviction_says_the_queue_store_is_full_and_recovers(workers, make_server):
    from tests.system import PrivateRedis

    redis_server = PrivateRedis("--maxmemory", "6mb", "--maxmemory-policy", "noeviction")
    try:
        redis = Redis.from_url(redis_server.url)
        workers.start("arithmetic", redis_url=redis_server.url)
        server = make_server(service_on(redis_server.url, cache=False))
        body = {"reward": "arithmetic", "items": _arithmetic_batch(0)}
        assert httpx.post(server.rest_url + "/v1/score:batch", json=body, timeout=30).status_code == 200
        from redis.exceptions import ResponseError

        with pytest.raises(ResponseError, match="maxmemory"):
            for i in range(3000):
                redis.set(f"filler:{i}", "f" * 4096)
        # Full for good, not at the edge where a freed client buffer lets the next write through.
        redis.config_set("maxmemory", redis.info("memory")["used_memory"] - (1 << 20))
        response = httpx.post(server.rest_url + "/v1/score:batch", json=body, timeout=30)
        assert response.status_code == 503, response.text
        message = response.json()["error"]["message"]
        assert message.startswith("the queue store is full; retry later (request ") and "maxmemory" not in message
        redis.delete(*[f"filler:{i}" for i in range(3000)])
        redis.config_set("maxmemory", 6 << 20)
        served = httpx.post(server.rest_url + "/v1/score:batch", json=body, timeout=30)
        assert served.status_code == 200 and {r["status"] for r in served.json()["results"]} == {"ok"}
    finally:
        redis_server.stop()


def test_dead_after_must_leave_room_for_a_late_heartbeat():
    from reward_contract.errors import ConfigError
    from reward_service.config import WorkerConfig

    assert WorkerConfig().dead_after_s == 20.0
    with pytest.raises(ConfigError, match="--dead-after-s must be at least twice --heartbeat-s"):
        WorkerConfig(heartbeat_s=1.0, dead_after_s=1.5)
