"""bench/floor.py measures each transport for real, and leaves no process or key behind."""
from tests.bench_scripts import load_bench_module


def test_each_transport_is_measured_end_to_end_and_cleaned_up(redis_url):
    import threading

    from redis import Redis
    from rq import Worker

    floor = load_bench_module("floor")
    redis = Redis.from_url(redis_url)
    payload = b"x" * 1000
    # Each call raises unless the payload or job really went round: through the echo process, and
    # through a stock RQ worker that imports and runs floor.push_reply.
    seconds = [floor.grpc_echo_seconds(payload, runs=5), floor.redis_handoff_seconds(redis_url, payload, runs=5),
               floor.rq_job_seconds(redis_url, runs=5)]
    assert all(0 < s < 5 for s in seconds), seconds
    assert redis.keys("rlpr-bench-floor*") == []
    assert "floor-grpc" not in [t.name for t in threading.enumerate()]  # the echo server's thread ended
    assert [w.name for w in Worker.all(connection=redis)] == []  # the stock worker shut down and said so
