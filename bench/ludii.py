"""Ludii reward speed, side by side in one run (the engine parts need LUDII_JAR):

- JPype thread scaling: two Java-side loops on two threads vs one (no jar needed);
- raw engine time of 100 random playouts of Tic-Tac-Toe, Hex and Reversi in one warm JVM;
- the same evaluation through the in-process client (`rlpr score`'s path) and through gRPC + Redis + a worker;
- a fresh JVM per evaluation (the naive subprocess approach);
- throughput with 1 and 2 Ludii workers.
Targets: service ÷ raw <= 1.10; 2 workers ÷ 1 >= 1.8; fresh JVM ÷ warm >= 10.

    LUDII_JAR=/path/Ludii.jar python bench/ludii.py
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from common import stop_processes, REPO, start_worker, wait_workers, write_results

GAMES = ["Tic-Tac-Toe", "Hex", "Reversi"]


def thread_scaling() -> float:
    probe = subprocess.run([sys.executable, "-m", "tests.jvm_probe", "threads"], cwd=REPO, capture_output=True,
                           text=True, check=True)
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    return 2 * out["one"] / out["two_threads"]  # speed-up of two threads over one


def median_seconds(call, runs=5) -> float:
    call()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fresh_jvm_seconds(code: str) -> float:
    script = ("import sys; from reward_service.ludii.engine import get_engine; "
              "get_engine().evaluate(sys.stdin.read(), 100, 500, 0, 60.0)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], input=code, text=True, cwd=REPO, check=True)
    return time.perf_counter() - t0


def engine_figures(redis_url: str) -> list[dict]:
    from redis import Redis

    from reward_contract.client import GrpcRewardClient
from reward_service.core.local_client import LocalRewardClient
    from reward_service.config import ServeConfig
    from reward_service.grpc_server import create_server
    from reward_service.ludii.engine import get_engine
    from reward_service.core.service import RewardService
    from reward_contract.types import RewardItem
    from tests.ludii_games import game_named

    engine = get_engine()
    local = LocalRewardClient()
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    service = RewardService.from_config(ServeConfig(redis_url=redis_url, cache=False))
    server, port = create_server(service, "127.0.0.1:0")
    server.start()
    remote = GrpcRewardClient(f"127.0.0.1:{port}")
    workers = [start_worker("ludii", redis_url)]
    figures = []
    try:
        wait_workers(redis, 1, timeout=120)
        print(f"{'game':<14}{'raw s':>8}{'in-proc s':>11}{'gRPC s':>9}{'fresh JVM s':>13}{'svc÷raw':>9}{'fresh÷warm':>12}")
        for name in GAMES:
            code = game_named(name)
            item = [RewardItem("g", "", code)]
            raw = median_seconds(lambda: engine.evaluate(code, 100, 500, 0, 60.0))
            inproc = median_seconds(lambda: local.score("ludii", item))
            grpc_s = median_seconds(lambda: remote.score("ludii", item, deadline_s=120))
            fresh = fresh_jvm_seconds(code)
            print(f"{name:<14}{raw:8.3f}{inproc:11.3f}{grpc_s:9.3f}{fresh:13.2f}{grpc_s / raw:9.2f}{fresh / grpc_s:12.1f}")
            figures += [{"name": f"Ludii service ÷ raw engine, {name}", "value": grpc_s / raw, "unit": "ratio",
                         "target": "<= 1.10"},
                        {"name": f"Ludii fresh JVM ÷ warm, {name}", "value": fresh / grpc_s, "unit": "ratio",
                         "target": ">= 10"}]
        batch = [RewardItem(str(k), "", game_named("Reversi")) for k in range(8)]
        one = median_seconds(lambda: remote.score("ludii", batch, deadline_s=600), runs=2)
        workers.append(start_worker("ludii", redis_url))
        wait_workers(redis, 2, timeout=120)
        two = median_seconds(lambda: remote.score("ludii", batch, deadline_s=600), runs=2)
        print(f"8 Reversi evaluations: 1 worker {one:.2f} s, 2 workers {two:.2f} s, speed-up {one / two:.2f}")
        figures.append({"name": "Ludii 2 workers ÷ 1 worker throughput", "value": one / two, "unit": "ratio",
                        "target": ">= 1.8"})
    finally:
        stop_processes(workers)
        server.stop(0)
        redis.flushdb()
    return figures


def main() -> None:
    scaling = thread_scaling()
    print(f"JPype: two threads running Java loops are {scaling:.2f}x one thread (GIL released inside Java)")
    figures = [{"name": "JPype 2 threads ÷ 1 thread (Java-side loop)", "value": scaling, "unit": "ratio",
                "target": ""}]
    if not os.environ.get("LUDII_JAR"):
        print("skipped the engine figures: LUDII_JAR is not set (get the jar from https://ludii.games/download.php)")
        figures.append({"name": "Ludii engine figures", "value": None, "unit": "",
                        "target": "", "note": "skipped: no Ludii jar on this machine (LUDII_JAR unset)"})
    else:
        figures += engine_figures(os.environ.get("RLPR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    write_results("ludii", figures)


if __name__ == "__main__":
    main()
