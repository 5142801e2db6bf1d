"""What a request through the service's transports costs with no work at all, on this machine.

- gRPC: a unary echo served by grpc.aio in a thread of this process (where the benchmarks run the
  fronts), called by a blocking client, the payload the size of the real request.
- Redis, bare: this process pushes a payload onto a list; another process, blocked on it, pushes
  it back onto a reply list that this process waits on. The least any queue through Redis costs.
- RQ: a job through stock RQ as it ships. This process enqueues it; a stock `SimpleWorker` in
  another process (RQ's non-forking worker, as ours are) runs a job that only pushes a reply;
  this process waits for the reply with BLPOP, as the API does.

A service that takes requests over gRPC and hands them through Redis to workers cannot answer
faster than gRPC + bare Redis; with RQ's job protocol as it ships, gRPC + RQ. bench/ludii.py
uses both to say what service ÷ raw engine they allow on this machine.
Imported by the benchmark scripts; not one itself.
"""
from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import threading
import time
import uuid

from common import REPO, timed_runs

BENCH = f"{REPO}/bench"
QUEUE = "rlpr-bench-floor"
WARM_CALLS = 40


def push_reply(key: str) -> None:
    """The floor's RQ job: no work, one reply."""
    from rq import get_current_job

    get_current_job().connection.rpush(key, b"done")


def grpc_echo_seconds(payload: bytes, runs: int = 400) -> float:
    """Median seconds of one gRPC unary call whose handler returns its request."""
    import grpc
    from grpc import aio

    started = threading.Event()
    box: dict = {}

    async def echo(request: bytes, context) -> bytes:
        return request

    async def serve():
        server = aio.server()
        handler = grpc.method_handlers_generic_handler(
            "rlpr.bench.Floor", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
        server.add_generic_rpc_handlers((handler,))
        box["port"] = server.add_insecure_port("127.0.0.1:0")
        box["stop"] = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        await server.start()
        started.set()
        await box["stop"].wait()
        await server.stop(None)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="floor-grpc", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the gRPC echo server did not start")
    channel = grpc.insecure_channel(f"127.0.0.1:{box['port']}")
    try:
        call = channel.unary_unary("/rlpr.bench.Floor/Echo")
        return _median_seconds(lambda: call(payload, timeout=10), runs)
    finally:
        channel.close()
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("the gRPC echo server did not stop within 10 s")


def redis_handoff_seconds(redis_url: str, payload: bytes, runs: int = 400) -> float:
    """Median seconds for a payload to reach another process through a Redis list and come back."""
    from redis import Redis

    redis = Redis.from_url(redis_url)
    tag = uuid.uuid4().hex
    inbox, outbox = f"rlpr-bench-floor:in:{tag}", f"rlpr-bench-floor:out:{tag}"
    echo = subprocess.Popen(
        [sys.executable, "-c", "import sys; from redis import Redis; r = Redis.from_url(sys.argv[1])\n"
         "while (item := r.blpop([sys.argv[2]])[1]) != b'': r.rpush(sys.argv[3], item)", redis_url, inbox, outbox],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def one_handoff():
        redis.rpush(inbox, payload)
        if redis.blpop([outbox], timeout=30) is None:
            raise RuntimeError("the Redis echo process did not answer within 30 s")

    try:
        return _median_seconds(one_handoff, runs)
    finally:
        redis.rpush(inbox, b"")
        echo.wait(30)
        redis.delete(inbox, outbox)


def rq_job_seconds(redis_url: str, runs: int = 400) -> float:
    """Median seconds from enqueueing a no-op job on stock RQ to reading its reply."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    redis = Redis.from_url(redis_url)
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys; from redis import Redis; from rq import Queue, SimpleWorker; "
         "r = Redis.from_url(sys.argv[1]); SimpleWorker([Queue(sys.argv[2], connection=r)], connection=r)"
         ".work(with_scheduler=False, logging_level='WARNING')", redis_url, QUEUE],
        cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = Queue(QUEUE, connection=redis)
    reply = f"rlpr-bench-floor:{uuid.uuid4().hex}"

    def one_job():
        queue.enqueue("floor.push_reply", reply, result_ttl=60)
        if redis.blpop([reply], timeout=30) is None:
            raise RuntimeError("the stock RQ worker did not run the floor job within 30 s")

    try:
        deadline = time.monotonic() + 30
        while not any(w.queue_names() == [QUEUE] for w in SimpleWorker.all(connection=redis)):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stock RQ worker of the floor did not start")
            time.sleep(0.05)
        return _median_seconds(one_job, runs)
    finally:
        worker.terminate()
        worker.wait(30)
        queue.empty()
        redis.delete(reply)


def _median_seconds(call, runs: int) -> float:
    for _ in range(WARM_CALLS):  # connections, imports and caches first
        call()
    return statistics.median(timed_runs(call, min_seconds=0, min_runs=runs, max_runs=runs))
