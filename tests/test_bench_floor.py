"""bench/floor.py measures each transport for real, and leaves no process or key behind."""
import importlib.util
import pathlib
import sys

FLOOR = pathlib.Path(__file__).resolve().parents[1] / "bench" / "floor.py"


def load_floor():
    # floor.py imports bench/common.py; bench/ leaves the path at once (its trainer.py would shadow
    # the trainer package for every later test)
    sys.path.insert(0, str(FLOOR.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_floor", FLOOR)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(FLOOR.parent))
    return module


def test_each_transport_is_measured_end_to_end_and_cleaned_up(redis_url):
    from redis import Redis
    from rq import Worker

    floor = load_floor()
    redis = Redis.from_url(redis_url)
    payload = b"x" * 1000
    # Each call fails (after its 30 s wait) unless the payload or job really went round: the echo
    # process, and a stock RQ worker that imports and runs floor.push_reply.
    seconds = [floor.grpc_echo_seconds(payload, runs=5), floor.redis_handoff_seconds(redis_url, payload, runs=5),
               floor.rq_job_seconds(redis_url, runs=5)]
    assert all(0 < s < 5 for s in seconds), seconds
    assert redis.keys("rlpr-bench-floor*") == []
    assert [w.name for w in Worker.all(connection=redis)] == []  # the stock worker shut down and said so
