"""Ludii reward speed, side by side in one run (needs LUDII_JAR):

- raw engine: 100 random playouts of Tic-Tac-Toe, Hex and Reversi by the worker's engine (our Java
  evaluator in a supervised JVM host process), called directly and warmed as the worker is
  (no API, no queue, no worker);
- the same evaluation through the service: gRPC -> API -> Redis -> a warm worker -> its supervised
  JVM child -> back (target: service / raw <= 1.10), raw and service calls alternating so that
  a load on the machine weighs on both alike;
- what that path costs with no work at all (bench/floor.py): a gRPC echo plus a bare Redis
  hand-off between two processes (the floor of any service over gRPC and a Redis queue), and a
  gRPC echo plus a no-op job through RQ as it ships; and so the service / raw each would give;
- a fresh JVM per evaluation, what keeping one JVM per worker avoids (target: fresh / warm >= 10);
- throughput of 1 and 2 workers on a batch of Reversi games, every worker warmed first
  (target: 2 workers / 1 >= 1.8 on 2 cores).

    LUDII_JAR=/path/Ludii.jar python bench/ludii.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from common import REPO, ludii_game_named, start_fronts, start_worker, stop_processes, wait_workers, write_results
from floor import grpc_echo_seconds, redis_handoff_seconds, rq_job_seconds

from reward_service.ludii.engine import HOW_TO_GET_THE_JAR

GAMES = ["Tic-Tac-Toe", "Hex", "Reversi"]
PLAYOUTS, TURNS = 100, 500
BATCH = 64  # evaluations per throughput measurement: seconds of work for each worker, so the last job matters little


def median_seconds(call, runs=7) -> float:
    return paired_median_seconds([call], runs)[0]


def paired_median_seconds(calls, runs=7) -> list[float]:
    """The median time of each call, the calls taking turns (a, b, a, b, ...), after one warm call each."""
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(runs):
        for call, spent in zip(calls, times):
            started = time.perf_counter()
            call()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def fresh_jvm_seconds(code: str) -> float:
    script = ("import sys; from reward_service.ludii.engine import get_engine; "
              f"get_engine().evaluate(sys.stdin.read(), {PLAYOUTS}, {TURNS}, 0, 120.0)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], input=code, text=True, cwd=REPO, check=True)
    return time.perf_counter() - started


def raw_engine():
    """The engine exactly as a worker runs it (a supervised JVM host process of its own, the same
    JVM options), to be called directly: the engine's own cost, with no API, queue or worker around it."""
    from reward_service.ludii.engine import LudiiEngine

    engine = LudiiEngine(os.environ["LUDII_JAR"])
    engine.start()
    return engine


# A JVM's JIT compiles for hundreds of games: measured per thread, a worker's C2 compiler thread took
# 0.45 s per 64 Reversi evaluations after 180 mixed ones, and under 0.1 s only after about 400. One
# worker borrows the second core for it; two fight over it, so a short warm-up understates scaling.
WARM_JOBS = 360  # evaluations per JVM; the first worker and the raw engine split them over the games


def warm_every_worker(client, redis, items, count: int) -> None:
    """Until each worker has run WARM_JOBS evaluations: a cold JVM's first game costs about a
    second, and the next tens still run partly interpreted while the JIT compiles on another core."""
    from rq import Worker

    while sum(1 for w in Worker.all(connection=redis) if w.successful_job_count >= WARM_JOBS) < count:
        client.score("ludii", items, deadline_s=300)


def engine_figures(redis_url: str) -> list[dict]:
    from redis import Redis

    from reward_contract import codec
    from reward_contract.client import GrpcRewardClient
    from reward_contract.types import RewardItem

    engine = raw_engine()

    def raw_evaluate(code: str):
        return engine.evaluate(code, PLAYOUTS, TURNS, 0, 120.0)

    redis = Redis.from_url(redis_url)
    redis.flushdb()
    fronts = start_fronts(redis_url)
    remote = GrpcRewardClient(f"127.0.0.1:{fronts.grpc_port}")
    workers = [start_worker("ludii", redis_url)]
    figures = []
    try:
        wait_workers(redis, 1, timeout=180)
        codes = [ludii_game_named(name) for name in GAMES]
        for _ in range(WARM_JOBS // len(GAMES)):  # both JVMs play every game before anything is timed
            for code in codes:
                remote.score("ludii", [RewardItem("w", "", code)], deadline_s=300)
                raw_evaluate(code)
        tic_tac_toe = [RewardItem("g", "", ludii_game_named("Tic-Tac-Toe"))]  # the shortest game: the floor weighs most
        request = codec.request_to_pb("ludii", tic_tac_toe, {}, 300).SerializeToString()
        grpc_s, bare_s, rq_s = (grpc_echo_seconds(request), redis_handoff_seconds(redis_url, request),
                                rq_job_seconds(redis_url))
        bare, stock = grpc_s + bare_s, grpc_s + rq_s
        print(f"no work: gRPC echo {grpc_s * 1000:.2f} ms; + bare Redis hand-off {bare_s * 1000:.2f} ms "
              f"= {bare * 1000:.2f} ms (the floor); + stock RQ no-op job {rq_s * 1000:.2f} ms = {stock * 1000:.2f} ms")
        figures += [{"name": "Service floor: gRPC echo + bare Redis hand-off", "value": bare * 1000, "unit": "ms",
                     "note": f"gRPC {grpc_s * 1000:.2f} + Redis {bare_s * 1000:.2f} ms, no work: the least a "
                             "request through gRPC and a Redis queue costs"},
                    {"name": "gRPC echo + stock RQ no-op job", "value": stock * 1000, "unit": "ms",
                     "note": f"gRPC {grpc_s * 1000:.2f} + RQ {rq_s * 1000:.2f} ms, no work: RQ's job protocol as "
                             "it ships (our worker trims it)"}]
        print(f"{'game':<14}{'raw s':>8}{'service s':>11}{'fresh JVM s':>13}{'svc÷raw':>9}{'floor':>7}"
              f"{'stock RQ':>10}{'fresh÷warm':>12}")
        for name in GAMES:
            code = ludii_game_named(name)
            item = [RewardItem("g", "", code)]
            raw, service = paired_median_seconds([lambda: raw_evaluate(code),
                                                  lambda: remote.score("ludii", item, deadline_s=300)], runs=11)
            fresh = fresh_jvm_seconds(code)
            best_bare, best_stock = (raw + bare) / raw, (raw + stock) / raw
            print(f"{name:<14}{raw:8.3f}{service:11.3f}{fresh:13.2f}{service / raw:9.2f}{best_bare:7.2f}"
                  f"{best_stock:10.2f}{fresh / service:12.1f}")
            figures += [{"name": f"Ludii service ÷ raw engine, {name}", "value": service / raw, "unit": "ratio",
                         "target": "<= 1.10", "note": f"raw {raw * 1000:.0f} ms, overhead "
                                                      f"{(service - raw) * 1000:.1f} ms a request; with no work "
                                                      f"of their own, gRPC + bare Redis give {best_bare:.2f}, "
                                                      f"gRPC + stock RQ {best_stock:.2f}"},
                        {"name": f"Ludii fresh JVM ÷ warm, {name}", "value": fresh / service, "unit": "ratio",
                         "target": ">= 10"}]
        batch = [RewardItem(str(k), "", ludii_game_named("Reversi")) for k in range(BATCH)]
        one = median_seconds(lambda: remote.score("ludii", batch, deadline_s=600), runs=3)
        workers.append(start_worker("ludii", redis_url))
        wait_workers(redis, 2, timeout=180)
        warm_every_worker(remote, redis, batch[:2], 2)
        two = median_seconds(lambda: remote.score("ludii", batch, deadline_s=600), runs=3)
        print(f"{BATCH} Reversi evaluations: 1 worker {one:.2f} s, 2 workers {two:.2f} s, speed-up {one / two:.2f}")
        figures.append({"name": "Ludii 2 workers ÷ 1 worker throughput", "value": one / two, "unit": "ratio",
                        "target": ">= 1.8", "note": f"{os.cpu_count()} cores; each JVM held to "
                                                    f"{os.environ.get('RLPR_JVM_PROCESSORS', '1')} core(s)"})
    finally:
        remote.close()
        stop_processes(workers)
        engine.close()
        fronts.join()
        redis.flushdb()
    return figures


def main() -> None:
    if not os.environ.get("LUDII_JAR"):
        print(f"skipped: LUDII_JAR is not set. {HOW_TO_GET_THE_JAR}")
        figures = [{"name": "Ludii engine figures", "value": None, "unit": "", "target": "",
                    "note": "skipped: no Ludii jar on this machine (LUDII_JAR unset)"}]
    else:
        figures = engine_figures(os.environ.get("RLPR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    write_results("ludii", figures)


if __name__ == "__main__":
    main()
