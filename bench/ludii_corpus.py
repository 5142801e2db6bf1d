"""The paper's 275 Ludii test games through `rlpr up`, with 1 and 2 Ludii workers.

- 1 worker: the games one at a time under the largest time limit the service allows, so each
  request's time is that game's evaluation time: the distribution (p50, p95, max) the default
  time limit is chosen from, and the throughput of one worker.
- 2 workers: the whole corpus as one batch under the default time limit: throughput, and how
  many games time out (the goal: none).
Each phase keeps its raw results in runs/bench/ludii_corpus_<workers>.jsonl; `--reuse` reads them
instead of running a phase again (a phase takes tens of minutes on two cores).

    LUDII_JAR=/path/Ludii.jar python bench/ludii_corpus.py [--reuse] [--phases 1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time

from common import REPO, free_port, ludii_games, percentile, write_results

RAW = pathlib.Path(REPO) / "runs" / "bench"


def start_up(workers: int, redis_port: int):
    import httpx

    rest, grpc_port = free_port(), free_port()
    log = (RAW / f"up-{workers}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "rlpr", "up", "--workers", f"ludii={workers}", "--no-cache",
                             "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--rest-addr", f"127.0.0.1:{rest}",
                             "--grpc-addr", f"127.0.0.1:{grpc_port}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        try:
            ready = httpx.get(f"http://127.0.0.1:{rest}/readyz?reward=ludii", timeout=2).json()
            if ready["status"] == "ready" and ready["workers"].get("ludii", 0) >= workers:
                return proc, grpc_port
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"rlpr up did not become ready; see {log.name}")
        time.sleep(0.5)


def run_phase(workers: int, games: list[dict]) -> list[dict]:
    from reward_contract.client import GrpcRewardClient
    from reward_contract.types import RewardItem
    from reward_service.rewards.ludii import DEFAULT_TIME_LIMIT_S, MAX_TIME_LIMIT_S

    proc, grpc_port = start_up(workers, free_port())
    client = GrpcRewardClient(f"127.0.0.1:{grpc_port}")
    rows = []
    try:
        warm = [RewardItem(str(k), "", games[0]["code"]) for k in range(2 * workers)]
        client.score("ludii", warm, deadline_s=600)  # each worker's JVM loads Ludii's compiler once
        if workers == 1:  # one at a time: a request's time is its game's evaluation time
            for index, game in enumerate(games):
                started = time.perf_counter()
                [result] = client.score("ludii", [RewardItem(str(index), "", game["code"])],
                                        {"time_limit_s": MAX_TIME_LIMIT_S}, deadline_s=MAX_TIME_LIMIT_S + 60)
                rows.append(row(index, game, result, time.perf_counter() - started))
                print(f"{index + 1:>4}/{len(games)} {rows[-1]['seconds']:7.2f} s {result.status.value:<10} "
                      f"{result.reward:.3f} {game['code'][7:40]}", file=sys.stderr, flush=True)  # progress
        else:  # the whole corpus as one batch, under the default limit
            items = [RewardItem(str(k), "", g["code"]) for k, g in enumerate(games)]
            started = time.perf_counter()
            results = client.score("ludii", items, {"time_limit_s": DEFAULT_TIME_LIMIT_S}, deadline_s=3600)
            wall = time.perf_counter() - started
            rows = [row(k, g, r, None) for k, (g, r) in enumerate(zip(games, results))]
            rows.append({"wall_s": wall})
    finally:
        client.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    return rows


def row(index, game, result, seconds) -> dict:
    return {"index": index, "name": game["code"][7:game["code"].find('"', 7)], "seconds": seconds,
            "status": result.status.value, "reward": result.reward, "components": dict(result.components),
            "error": result.error}


def load_or_run(workers: int, games, reuse: bool) -> list[dict]:
    path = RAW / f"ludii_corpus_{workers}.jsonl"
    if reuse and path.exists():
        return [json.loads(line) for line in path.read_text().splitlines()]
    rows = run_phase(workers, games)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def report(one: list[dict] | None, two: list[dict] | None) -> list[dict]:
    from reward_service.rewards.ludii import DEFAULT_TIME_LIMIT_S

    figures = []
    if one:
        times = [r["seconds"] for r in one]
        ok = [r for r in one if r["status"] == "ok"]
        rewards = sorted(r["reward"] for r in ok)
        compiles = sum(r["components"].get("compiles", 0) == 1.0 for r in one)
        playable = sum(r["components"].get("playable", 0) == 1.0 for r in one)
        rate1 = len(one) / sum(times)
        print(f"1 worker, {len(one)} games one at a time: {rate1:.3f} games/s; evaluation time p50 "
              f"{percentile(times, 50):.2f} s, p95 {percentile(times, 95):.2f} s, max {max(times):.2f} s "
              f"({max(one, key=lambda r: r['seconds'])['name']})")
        print(f"compiles {compiles}/{len(one)}, playable {playable}/{len(one)}, statuses "
              f"{ {s: sum(r['status'] == s for r in one) for s in {r['status'] for r in one}} }")
        print(f"reward: min {rewards[0]:.3f}, p25 {percentile(rewards, 25):.3f}, median {percentile(rewards, 50):.3f}, "
              f"p75 {percentile(rewards, 75):.3f}, max {rewards[-1]:.3f}, mean {statistics.fmean(rewards):.3f}")
        slowest = sorted(one, key=lambda r: -r["seconds"])[:5]
        print("slowest: " + ", ".join(f"{r['name']} {r['seconds']:.1f} s" for r in slowest))
        figures += [
            {"name": "Ludii corpus, 1 worker: games/s", "value": rate1, "unit": "games/s", "target": ""},
            {"name": "Ludii corpus: evaluation time p50", "value": percentile(times, 50), "unit": "s", "target": ""},
            {"name": "Ludii corpus: evaluation time p95", "value": percentile(times, 95), "unit": "s", "target": ""},
            {"name": "Ludii corpus: evaluation time max", "value": max(times), "unit": "s",
             "target": f"<= {DEFAULT_TIME_LIMIT_S:g}", "note": f"the default time limit is {DEFAULT_TIME_LIMIT_S:g} s"},
            {"name": "Ludii corpus: compiles / playable", "value": compiles, "unit": "count", "target": "",
             "note": f"{compiles} compile, {playable} playable of {len(one)}"},
            {"name": "Ludii corpus: median reward", "value": percentile(rewards, 50), "unit": "", "target": "",
             "note": f"mean {statistics.fmean(rewards):.3f}, p25 {percentile(rewards, 25):.3f}, "
                     f"p75 {percentile(rewards, 75):.3f}"},
        ]
    if two:
        wall = two[-1]["wall_s"]
        results = two[:-1]
        timeouts = sum(r["status"] == "time_limit" for r in results)
        rate2 = len(results) / wall
        print(f"2 workers, {len(results)} games as one batch under the default {DEFAULT_TIME_LIMIT_S:g} s limit: "
              f"{rate2:.3f} games/s, {timeouts} timed out, statuses "
              f"{ {s: sum(r['status'] == s for r in results) for s in {r['status'] for r in results}} }")
        figures += [{"name": "Ludii corpus, 2 workers: games/s", "value": rate2, "unit": "games/s", "target": ""},
                    {"name": "Ludii corpus: games over the default time limit", "value": timeouts, "unit": "count",
                     "target": "== 0"}]
        if one:
            figures.append({"name": "Ludii corpus, 2 workers ÷ 1 worker games/s", "value": rate2 / rate1,
                            "unit": "ratio", "target": ">= 1.8"})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="use saved phase results where present")
    parser.add_argument("--phases", default="1,2", help="worker counts to run, e.g. 1 or 1,2")
    parser.add_argument("--first", type=int, default=0, help="only the first N games (a quick try; not saved)")
    args = parser.parse_args()
    if not os.environ.get("LUDII_JAR"):
        print("skipped: LUDII_JAR is not set")
        write_results("ludii_corpus", [{"name": "Ludii corpus figures", "value": None, "unit": "", "target": "",
                                        "note": "skipped: no Ludii jar on this machine (LUDII_JAR unset)"}])
        return
    RAW.mkdir(parents=True, exist_ok=True)
    corpus = ludii_games("test")[: args.first or None]
    phases = {int(p) for p in args.phases.split(",")}
    if args.first:
        report(*(run_phase(n, corpus) if n in phases else None for n in (1, 2)))
        return
    one = load_or_run(1, corpus, args.reuse) if 1 in phases else None
    two = load_or_run(2, corpus, args.reuse) if 2 in phases else None
    write_results("ludii_corpus", report(one, two))


if __name__ == "__main__":
    main()
