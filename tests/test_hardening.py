"""The reward service under hostile input, slow rewards, a lost Redis and absent workers.

Real servers on real sockets, real Redis (a private one where a test stops it), real workers.
"""
import asyncio
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis import Redis

from reward_contract.client import GrpcRewardClient
from reward_contract.errors import NoWorker, Unavailable
from reward_contract.types import ItemStatus, RewardItem
from tests.conftest import free_port
from tests.system import PrivateRedis, wait_for

ARITHMETIC = {"id": "1", "completion": "23 + 4", "reference": {"previous": "23 + 1 + 3"}}


def post(server, body, path="/v1/score", raw=None):
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(server.rest_url + path, content=content, headers={"content-type": "application/json"},
                      timeout=30)


@pytest.mark.parametrize("raw, field", [
    (b'{"reward":"arithmetic","item":{"id":"1","completion":"1"},"deadline_ms":1e400}', "deadline_ms"),
    (b'{"reward":"arithmetic","item":{"id":"1","completion":"1"},"deadline_ms":99999999999999999999}', "deadline_ms"),
    (b'{"reward":"arithmetic","item":{"id":"1","completion":"1"},"deadline_ms":-1}', "deadline_ms"),
    (b'{"reward":"arithmetic","item":{"id":"1","completion":"1"},"options":{"scale":1e400}}', "options"),
    (b'{"reward":"arithmetic","item":{"id":"1","completion":"1","reference":{"target":-1e400}}}', "reference"),
    (b'{"reward":"ludii","item":{"id":"1","completion":"1"},"options":{"playouts":1000000000}}', "playouts"),
    (b'{"reward":"ludii","item":{"id":"1","completion":"1"},"options":{"time_limit_s":1e308}}', "time_limit_s"),
])
def test_out_of_range_numbers_are_a_4xx_naming_the_field(embedded_server, raw, field):
    response = post(embedded_server, None, raw=raw)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.json()["error"]["message"]
    assert post(embedded_server, {"reward": "arithmetic", "item": ARITHMETIC}).status_code == 200


def test_options_are_json_scalars_typed_by_the_reward(embedded_server):
    lenient = post(embedded_server, {"reward": "arithmetic", "options": {"lenient": True, "scale": 10},
                                     "item": {"id": "1", "completion": "27", "reference": {"previous": "23 + 4"}}})
    assert lenient.status_code == 200 and lenient.json()["reward"] == pytest.approx(1.0)
    wrong = post(embedded_server, {"reward": "arithmetic", "options": {"lenient": 1}, "item": ARITHMETIC})
    assert wrong.status_code == 422 and "'lenient'" in wrong.json()["error"]["message"]


def test_grpc_options_and_deadlines_out_of_range_are_invalid_argument(embedded_server):
    from reward_contract.wire.v1 import reward_pb2 as pb
    from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(embedded_server.grpc_target)
    stub = pb_grpc.RewardServiceStub(channel)
    for request, fragment in [
        (pb.ScoreRequest(reward="ludii", items=[pb.Item(id="1")], options={"playouts": "1000000000"}), "playouts"),
        (pb.ScoreRequest(reward="ludii", items=[pb.Item(id="1")], options={"max_turns": "1e9"}), "max_turns"),
        (pb.ScoreRequest(reward="arithmetic", items=[pb.Item(id="1")], deadline_ms=4_000_000_000), "deadline_ms"),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            stub.Score(request, timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in error.value.details()
    channel.close()


@pytest.mark.slow
def test_health_and_cheap_rewards_answer_in_milliseconds_while_slow_requests_fill_the_queue(
        workers, queue_service, make_server):
    """100 slow (Ludii-sized) requests in flight hold no thread: waiting is asynchronous."""
    workers.start("test_slow")
    workers.start("arithmetic")
    server = make_server(queue_service)
    slow = {"reward": "test_slow", "no_cache": True, "deadline_ms": 8000,
            "items": [{"id": "s", "completion": "x", "reference": {"sleep_s": 5.0}}]}
    with ThreadPoolExecutor(100) as pool:
        pending = [pool.submit(post, server, slow, "/v1/score:batch") for _ in range(100)]
        time.sleep(1.5)  # all 100 are waiting on the one slow worker now
        assert sum(f.done() for f in pending) == 0
        health, cheap = [], []
        with httpx.Client(base_url=server.rest_url, timeout=30) as http:
            for _ in range(20):
                started = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                health.append(time.perf_counter() - started)
                started = time.perf_counter()
                answer = http.post("/v1/score", json={"reward": "arithmetic", "item": ARITHMETIC})
                assert answer.status_code == 200, answer.text
                cheap.append(time.perf_counter() - started)
        statuses = [f.result().status_code for f in pending]
    assert max(health) < 0.25 and max(cheap) < 0.5, (statistics.median(health), max(health), max(cheap))
    assert statuses == [200] * 100  # each answered (with a per-item timeout), none refused or failed


def test_too_much_work_of_one_kind_is_refused_with_a_retry_hint(workers, queue_service, make_server):
    workers.start("test_slow")
    server = make_server(queue_service)
    body = {"reward": "test_limited", "no_cache": True, "deadline_ms": 5000,
            "items": [{"id": "a", "completion": "x", "reference": {"sleep_s": 2.0}},
                      {"id": "b", "completion": "y", "reference": {"sleep_s": 2.0}}]}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, server, body, "/v1/score:batch")
        time.sleep(0.5)
        refused = post(server, {**body, "items": body["items"][:1]}, "/v1/score:batch")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        client = GrpcRewardClient(server.grpc_target)
        with pytest.raises(Exception) as error:
            client.score("test_limited", [RewardItem("c", "", "z", {"sleep_s": "0"})])
        assert "RESOURCE_EXHAUSTED" in str(error.value)
        client.close()
        assert first.result().status_code == 200


def test_no_worker_for_a_reward_is_said_at_once_on_both_fronts(queue_service, make_server):
    server = make_server(queue_service)
    started = time.monotonic()
    response = post(server, {"reward": "arithmetic", "item": ARITHMETIC})
    assert response.status_code == 503 and "no worker serves queue 'arithmetic'" in response.json()["error"]["message"]
    with pytest.raises(NoWorker, match="no worker serves queue 'arithmetic'"):
        GrpcRewardClient(server.grpc_target).score("arithmetic", [RewardItem("1", "", "1", {"previous": "1 + 0"})])
    assert time.monotonic() - started < 3.0


@pytest.fixture
def private_redis():
    """A Redis of the test's own, which it may stop and start again."""
    redis = PrivateRedis()
    yield redis
    redis.stop()


def service_on(redis_url: str, **config):
    from reward_service.config import ServeConfig
    from reward_service.core.service import RewardService

    return RewardService.from_config(ServeConfig(redis_url=redis_url, **config))


def health_of(server, service=""):
    channel = grpc.insecure_channel(server.grpc_target)
    try:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    finally:
        channel.close()


@pytest.mark.slow
def test_health_follows_redis_and_the_workers(workers, make_server, private_redis):
    redis = private_redis
    server = make_server(service_on(redis.url))
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    arithmetic = "rlpr.reward.v1.RewardService/arithmetic"
    wait_for(lambda: health_of(server) == serving and health_of(server, arithmetic) == not_serving, 5, "no worker")
    assert httpx.get(server.rest_url + "/readyz").status_code == 503  # Redis, but no worker at all
    workers.start("arithmetic", redis_url=redis.url)
    wait_for(lambda: health_of(server, arithmetic) == serving, 5, "the worker to be seen")
    assert httpx.get(server.rest_url + "/readyz?reward=arithmetic").json()["status"] == "ready"
    redis.stop()
    wait_for(lambda: health_of(server) == not_serving, 5, "health to follow Redis down")
    assert httpx.get(server.rest_url + "/readyz").json()["redis"] == "unreachable"
    assert httpx.get(server.rest_url + "/livez").status_code == 200  # alive, though not ready
    redis.start()
    wait_for(lambda: health_of(server) == serving and health_of(server, arithmetic) == serving, 10,
             "health to follow Redis and the worker back")


@pytest.mark.slow
def test_workers_are_back_within_two_seconds_of_a_redis_restart(workers, private_redis):
    redis = private_redis
    worker = workers.start("arithmetic", redis_url=redis.url)
    service = service_on(redis.url, cache=False)
    item = [RewardItem("1", "", "23 + 4", {"previous": "23 + 1 + 3"})]
    assert service.score_blocking("arithmetic", item)[0].ok
    redis.stop()
    time.sleep(8)  # long enough for RQ's own backoff to have grown to 8 s
    redis.start()  # empty: Redis keeps nothing on disk here
    started = time.monotonic()
    served = None
    while served is None and time.monotonic() - started < 10:
        try:
            served = service.score_blocking("arithmetic", item, deadline_s=5)
        except (NoWorker, Unavailable):
            time.sleep(0.05)
    assert served and served[0].ok and worker.poll() is None
    assert time.monotonic() - started <= 2.0


@pytest.mark.slow
def test_a_worker_waits_out_a_redis_death_mid_job_and_goes_on(workers, private_redis):
    redis = private_redis
    worker = workers.start("test_slow", redis_url=redis.url)
    service = service_on(redis.url, cache=False)
    outcome = {}

    def score():
        try:
            outcome["results"] = service.score_blocking("test_slow", [RewardItem("1", "", "ab", {"sleep_s": "2"})],
                                                        deadline_s=30)
        except Unavailable as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=score)
    thread.start()
    wait_for(lambda: Redis.from_url(redis.url).llen("rq:queue:test_slow") == 0, 5, "the job to start")
    time.sleep(0.5)
    redis.stop()  # mid-job: the job's reply and RQ's bookkeeping both need Redis
    time.sleep(3)
    assert worker.poll() is None, "the worker exited when Redis died"
    redis.start()
    thread.join(30)
    later = wait_for(lambda: service.score_blocking("test_slow", [RewardItem("2", "", "abc")], deadline_s=5), 15,
                     "the worker to serve again")
    assert later[0].ok and later[0].reward == 3.0 and worker.poll() is None


def test_scored_results_come_back_when_the_cache_cannot_be_written(workers, redis_url, make_server):
    """The API's Redis user may read the cache but not write it: the write fails, the results
    are still returned (and counted), and nothing is cached."""
    admin = Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "readonlycache", "reset", "on", ">pw", "+@all", "~rq:*", "~rlpr:reply:*",
                          "~rlpr:cancel:*", "~rlpr:reap:*", "%R~rlpr:cache:*")
    try:
        workers.start("arithmetic")
        url = redis_url.replace("redis://", "redis://readonlycache:pw@")
        service = service_on(url)
        items = [RewardItem(str(k), "", f"{k} + 4", {"previous": "1 + 2 + 4"}) for k in range(5)]
        first = service.score_blocking("arithmetic", items)
        assert [r.status for r in first] == [ItemStatus.OK] * 5
        again = service.score_blocking("arithmetic", items)
        assert not any(r.cached for r in again)
        assert b'rlpr_cache_write_failures_total{reward="arithmetic"} 2.0' in service.metrics.render()
    finally:
        admin.execute_command("ACL", "DELUSER", "readonlycache")


def test_a_client_never_hangs_on_a_dead_address():
    target = f"127.0.0.1:{free_port()}"
    client = GrpcRewardClient(target, connect_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=f"no reward service answers at {target}"):
        client.score("arithmetic", [RewardItem("1", "", "1")])
    with pytest.raises(Unavailable, match=target):
        client.kinds()
    assert time.monotonic() - started < 4.0
    client.close()


def test_a_time_limit_is_its_own_status_on_both_fronts_and_is_never_cached(workers, queue_service, make_server):
    from reward_contract.wire.v1 import reward_pb2 as pb
    from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

    workers.start("test_overtime")
    server = make_server(queue_service)
    body = {"reward": "test_overtime", "items": [{"id": "a", "completion": "slow"}, {"id": "b", "completion": "ok"}]}
    for attempt in range(2):
        slow, fast = post(server, body, "/v1/score:batch").json()["results"]
        assert slow["status"] == "time_limit" and slow["components"] == {"playouts": 3.0} and not slow["cached"]
        assert fast["status"] == "ok" and fast["cached"] == (attempt == 1)  # ok results are cached, time limits not
    channel = grpc.insecure_channel(server.grpc_target)
    answer = pb_grpc.RewardServiceStub(channel).Score(pb.ScoreRequest(reward="test_overtime", items=[
        pb.Item(id="a", completion="slow")]), timeout=30)
    assert answer.results[0].status == pb.TIME_LIMIT and answer.results[0].components["playouts"] == 3.0
    channel.close()


def test_cache_entries_live_shorter_the_bigger_they_are(workers, queue_service, redis_url):
    from reward_service.core.cache import entry_ttl_s

    assert entry_ttl_s(300, 86400, 600) == 86400 and entry_ttl_s(4096, 86400, 600) == 21600
    assert entry_ttl_s(10**7, 86400, 600) == 600  # never below the floor
    workers.start("arithmetic")
    queue_service.score_blocking("arithmetic", [RewardItem("1", "", "23 + 4", {"previous": "23 + 1 + 3"})])
    redis = Redis.from_url(redis_url)
    [key] = redis.keys("rlpr:cache:*")
    assert 86400 - 5 <= redis.ttl(key) <= 86400


def test_queued_jobs_expire_with_their_request(workers, queue_service, redis_url):
    """A job nobody started by its request's deadline (plus a minute) is dropped by RQ itself,
    even if the API that queued it died and never withdrew it."""
    from rq import Queue, Worker
    from rq.job import Job

    redis = Redis.from_url(redis_url)
    Worker([Queue("test_slow", connection=redis)], connection=redis, name="never-works").register_birth()
    thread = threading.Thread(target=lambda: queue_service.score_blocking(
        "test_slow", [RewardItem("1", "", "x")], deadline_s=20))
    thread.start()
    wait_for(lambda: Queue("test_slow", connection=redis).count == 1, 5, "the job to be queued")
    [job] = Job.fetch_many(Queue("test_slow", connection=redis).get_job_ids(), connection=redis)
    assert 70 <= redis.ttl(job.key) <= 80  # the request's 20 s deadline plus a minute
    thread.join(30)


def test_a_request_while_redis_is_down_is_unavailable_not_no_worker(workers, private_redis):
    """UNAVAILABLE is what clients retry with backoff; "no worker" would send them away at once."""
    redis = private_redis
    workers.start("arithmetic", redis_url=redis.url)
    service = service_on(redis.url, cache=False)
    item = [RewardItem("1", "", "23 + 4", {"previous": "23 + 1 + 3"})]
    assert service.score_blocking("arithmetic", item)[0].ok
    redis.stop()
    assert not asyncio.run(service.monitor.refresh()).redis  # what `rlpr serve`'s monitor sees within a second
    with pytest.raises(Unavailable, match="redis is unreachable"):
        service.score_blocking("arithmetic", item, deadline_s=5)


def test_after_a_redis_outage_the_monitor_gives_workers_time_to_register_again(private_redis):
    """An empty Redis has forgotten every worker; for a few seconds after it comes back, "no worker"
    is not known yet (requests get UNAVAILABLE, which clients retry). A service that merely starts
    is not coming back from anything."""
    from redis import Redis as SyncRedis

    from reward_service.core.health import HealthMonitor

    redis = private_redis
    monitor = HealthMonitor(SyncRedis.from_url(redis.url, socket_connect_timeout=2))
    assert asyncio.run(monitor.refresh()).redis and not monitor.rejoining()
    redis.stop()
    assert not asyncio.run(monitor.refresh()).redis and not monitor.rejoining()
    redis.start()
    assert asyncio.run(monitor.refresh()).redis and monitor.rejoining()
