"""Reward service throughput: in-process vs gRPC + Redis + 1 and 2 workers, side by side in one run.

    python bench/service.py [--seconds 1.5] [--redis-url redis://127.0.0.1:6379/12]

Target: at batch 256 the service reaches at least half of in-process throughput.
The result cache is off, so every item is really scored.
"""
from __future__ import annotations

import argparse
import os
import uuid

from common import start_fronts, start_worker, stop_processes, summary, timed_runs, wait_workers, write_results

from reward_contract.client import GrpcRewardClient
from reward_contract.types import RewardItem
from reward_service.core.local_client import LocalRewardClient

TEXTS = ["I loved every minute of this film, wonderful acting", "Dull, slow and far too long. Awful.",
         "An ok movie with a few good scenes", "The plot was confusing but the music was great!"]


def make_items(reward: str, n: int) -> list[RewardItem]:
    tag = uuid.uuid4().hex[:6]
    if reward == "arithmetic":
        return [RewardItem(f"{tag}{k}", "", f"{k % 40} + 4 + 1", {"previous": "5 + 9 + 4 + 1"}) for k in range(n)]
    return [RewardItem(f"{tag}{k}", "", TEXTS[k % len(TEXTS)] + f" #{k}", {}) for k in range(n)]


def measure(client, reward, batch, seconds):
    return summary(timed_runs(lambda: client.score(reward, make_items(reward, batch)), min_seconds=seconds), batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--redis-url", default=os.environ.get("RLPR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--batches", default="1,32,256")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    rewards = ["sentiment_vader", "arithmetic"]

    from redis import Redis

    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    fronts = start_fronts(args.redis_url)
    remote = GrpcRewardClient(f"127.0.0.1:{fronts.grpc_port}")
    local = LocalRewardClient()
    rows, workers = {}, []
    try:
        for reward in rewards:  # in-process baseline
            for batch in batches:
                rows[(reward, batch, "in-process")] = measure(local, reward, batch, args.seconds)
        for count in (1, 2):
            while len(workers) < count:
                workers.append(start_worker(",".join(rewards), args.redis_url))
            wait_workers(redis, count)
            for reward in rewards:
                remote.score(reward, make_items(reward, 8))  # warm the workers' imports
                for batch in batches:
                    rows[(reward, batch, f"service, {count} worker{'s' * (count > 1)}")] = measure(
                        remote, reward, batch, args.seconds)
    finally:
        remote.close()
        stop_processes(workers)
        fronts.join()
        redis.flushdb()
    report(rows, rewards, batches)


def report(rows, rewards, batches) -> None:
    print(f"{'reward':<16}{'batch':>6}  {'path':<20}{'items/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'÷ in-proc':>11}")
    figures = []
    for reward in rewards:
        for batch in batches:
            base = rows[(reward, batch, "in-process")]["items_per_s"]
            for (r, b, path), row in rows.items():
                if (r, b) != (reward, batch):
                    continue
                ratio = row["items_per_s"] / base
                print(f"{reward:<16}{batch:>6}  {path:<20}{row['items_per_s']:>10.0f}{row['p50_ms']:>9.2f}"
                      f"{row['p99_ms']:>9.2f}{ratio:>11.2f}")
                if path.startswith("service"):
                    figures.append({"name": f"service ÷ in-process, {reward}, batch {batch}, {path[9:]}",
                                    "value": ratio, "unit": "ratio",
                                    "target": ">= 0.5" if batch == 256 else "", "p99_ms": row["p99_ms"]})
    write_results("service", figures)


if __name__ == "__main__":
    main()
