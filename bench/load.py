"""Bounded load test on loopback: REST and gRPC fronts driven at once with mixed reward kinds.

Starts Redis-backed service (API server process + 2 workers), then for --seconds runs
--clients threads per front, each sending batches of 1-32 items of arithmetic or VADER.
Reports requests/s, p50/p95/p99 latency and errors (target: 0 errors).

    python bench/load.py [--seconds 60] [--clients 4]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time

import httpx
from common import REPO, free_port, percentile, start_worker, stop_processes, wait_workers, write_results

from reward_contract.client import GrpcRewardClient
from reward_contract.types import RewardItem


def random_batch(rng: random.Random) -> tuple[str, list[dict]]:
    n = rng.choice([1, 4, 32])
    if rng.random() < 0.5:
        return "arithmetic", [{"id": str(k), "completion": f"{rng.randint(0, 45)} + {rng.randint(0, 9)}",
                               "reference": {"previous": "1 + 2 + 3"}} for k in range(n)]
    words = ["great", "awful", "fine", "boring", "wonderful", "plot", "acting"]
    return "sentiment_vader", [{"id": str(k), "completion": " ".join(rng.choices(words, k=6))} for k in range(n)]


def rest_client(url, stop, record, seed):
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            reward, items = random_batch(rng)
            t0 = time.perf_counter()
            try:
                response = http.post("/v1/score:batch", json={"reward": reward, "items": items, "no_cache": True})
                ok = response.status_code == 200 and all(r["status"] == "ok" for r in response.json()["results"])
            except httpx.HTTPError:
                ok = False
            record("rest", time.perf_counter() - t0, ok)


def grpc_client(target, stop, record, seed):
    rng = random.Random(seed)
    client = GrpcRewardClient(target)
    while not stop.is_set():
        reward, items = random_batch(rng)
        batch = [RewardItem(i["id"], "", i["completion"], i.get("reference", {})) for i in items]
        t0 = time.perf_counter()
        try:
            ok = all(r.ok for r in client.score(reward, batch, deadline_s=30))
        except Exception:  # noqa: BLE001 - every failure counts as an error in the report
            ok = False
        record("grpc", time.perf_counter() - t0, ok)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("RLPR_LOAD_SECONDS", 60)))
    parser.add_argument("--clients", type=int, default=4, help="client threads per front")
    parser.add_argument("--redis-url", default=os.environ.get("RLPR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    args = parser.parse_args()
    from redis import Redis

    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    rest_port, grpc_port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "rlpr", "serve", "--rest-addr", f"127.0.0.1:{rest_port}",
                            "--grpc-addr", f"127.0.0.1:{grpc_port}", "--redis-url", args.redis_url, "--no-cache"],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = [start_worker("arithmetic,sentiment_vader", args.redis_url) for _ in range(2)]
    samples: list[tuple[str, float, bool]] = []
    lock = threading.Lock()

    def record(front, seconds, ok):
        with lock:
            samples.append((front, seconds, ok))

    try:
        wait_workers(redis, 2)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{rest_port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        stop = threading.Event()
        threads = [threading.Thread(target=rest_client, args=(f"http://127.0.0.1:{rest_port}", stop, record, i))
                   for i in range(args.clients)]
        threads += [threading.Thread(target=grpc_client, args=(f"127.0.0.1:{grpc_port}", stop, record, 100 + i))
                    for i in range(args.clients)]
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        stop_processes([api, *workers])
        redis.flushdb()
    report(samples, args)


def report(samples, args) -> None:
    figures = []
    print(f"{args.seconds:.0f} s, {args.clients} clients per front, batches of 1/4/32 items, arithmetic + VADER")
    print(f"{'front':<8}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for front in ("rest", "grpc", "all"):
        rows = [s for s in samples if front in ("all", s[0])]
        latencies = [s[1] for s in rows]
        errors = sum(1 for s in rows if not s[2])
        p50, p95, p99 = (1000 * percentile(latencies, q) for q in (50, 95, 99))
        print(f"{front:<8}{len(rows):>10}{len(rows) / args.seconds:>9.1f}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}{errors:>8}")
        if front == "all":
            figures += [{"name": "load: requests/s (REST + gRPC)", "value": len(rows) / args.seconds, "unit": "req/s",
                         "target": ""},
                        {"name": "load: p99 latency", "value": p99, "unit": "ms", "target": "",
                         "note": f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"},
                        {"name": "load: errors", "value": errors, "unit": "count", "target": "== 0"}]
    write_results("load", figures)


if __name__ == "__main__":
    main()
