"""Health and a cheap reward while a slow reward's queue is full, side by side with an idle service.

`rlpr serve` runs in its own process with one worker for a slow reward (5 s an item, the size of a
Ludii evaluation) and one for arithmetic. /healthz and single arithmetic requests are timed with
the service idle, then with 100 slow requests in flight (REST and gRPC, half each).

    python bench/starvation.py [--inflight 100] [--samples 200]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time

import httpx
from common import REPO, free_port, percentile, stop_processes, wait_workers, write_results

PLUGIN = "tests.plugins.fake_rewards:SLOW"
ARITHMETIC = {"reward": "arithmetic", "no_cache": True,
              "item": {"id": "1", "completion": "23 + 4", "reference": {"previous": "23 + 1 + 3"}}}


def start(redis_url: str):
    env = dict(os.environ, RLPR_REWARD_PLUGINS=PLUGIN)
    rest, grpc_port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "rlpr", "serve", "--rest-addr", f"127.0.0.1:{rest}", "--grpc-addr",
                            f"127.0.0.1:{grpc_port}", "--redis-url", redis_url, "--no-cache"], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = [subprocess.Popen([sys.executable, "-m", "rlpr", "worker", "--queues", queue, "--redis-url", redis_url],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True) for queue in ("test_slow", "arithmetic")]
    return api, workers, f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc_port}"


def sample(base: str, count: int) -> tuple[list[float], list[float]]:
    health, cheap = [], []
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(count):
            started = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            health.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert http.post("/v1/score", json=ARITHMETIC).status_code == 200
            cheap.append(time.perf_counter() - started)
    return health, cheap


def flood(base: str, grpc_target: str, count: int, stop: threading.Event) -> None:
    """`count` slow requests in flight until `stop`: each asks for 5 s of work, with a 30 s deadline."""
    from reward_contract.client import GrpcRewardClient
    from reward_contract.errors import RlprError
    from reward_contract.types import RewardItem

    async def rest_one(http):
        body = {"reward": "test_slow", "no_cache": True, "deadline_ms": 30000,
                "items": [{"id": "s", "completion": "x", "reference": {"sleep_s": 5.0}}]}
        while not stop.is_set():
            await http.post("/v1/score:batch", json=body)

    def grpc_one():
        client = GrpcRewardClient(grpc_target)
        while not stop.is_set():
            try:
                client.score("test_slow", [RewardItem("s", "", "x", {"sleep_s": "5"})], deadline_s=30)
            except RlprError:
                pass  # a timeout at the deadline is expected: the queue holds far more work than it can do
        client.close()

    threads = [threading.Thread(target=grpc_one, daemon=True) for _ in range(count // 2)]
    for thread in threads:
        thread.start()

    async def rest_all():
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            await asyncio.gather(*(rest_one(http) for _ in range(count - count // 2)))

    asyncio.run(rest_all())
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--redis-url", default=os.environ.get("RLPR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    args = parser.parse_args()
    from redis import Redis

    sys.path.insert(0, REPO)
    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    api, workers, base, grpc_target = start(args.redis_url)
    stop = threading.Event()
    try:
        wait_workers(redis, 2)
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz?reward=test_slow").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        sample(base, 20)  # warm
        idle_health, idle_cheap = sample(base, args.samples)
        flooding = threading.Thread(target=flood, args=(base, grpc_target, args.inflight, stop), daemon=True)
        flooding.start()
        time.sleep(3)  # every slow request is waiting on the one slow worker now
        loaded_health, loaded_cheap = sample(base, args.samples)
    finally:
        stop.set()
        stop_processes([api, *workers])
        redis.flushdb()
    rows = [("/healthz", idle_health, loaded_health), ("arithmetic, 1 item (REST)", idle_cheap, loaded_cheap)]
    print(f"{args.inflight} slow (5 s) requests in flight, {args.samples} samples each, API in its own process")
    print(f"{'':<28}{'idle p50 ms':>12}{'idle p99 ms':>12}{'loaded p50':>12}{'loaded p99':>12}")
    figures = []
    for name, idle, loaded in rows:
        p99 = 1000 * percentile(loaded, 99)
        print(f"{name:<28}{1000 * percentile(idle, 50):>12.2f}{1000 * percentile(idle, 99):>12.2f}"
              f"{1000 * percentile(loaded, 50):>12.2f}{p99:>12.2f}")
        figures.append({"name": f"starvation: {name} p99 with {args.inflight} slow requests in flight",
                        "value": p99, "unit": "ms", "target": "<= 100",
                        "note": f"idle p99 {1000 * percentile(idle, 99):.1f} ms"})
    write_results("starvation", figures)


if __name__ == "__main__":
    main()
