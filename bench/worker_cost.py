"""A worker's own cost per job, with no API in the way, on one-item arithmetic jobs:

- latency: one job at a time, from the start of its enqueue (RQ building the job in this process,
  one transaction) to its reply in Redis: what a worker adds to every request (the queue hop, RQ's
  start bookkeeping, the job, the reply's push), plus the enqueue, the same on both trees;
- drain: one `rlpr worker --burst` empties a queue of jobs; its time from the first job's start to
  the last job's end, and its CPU, divided by the jobs.

With --base, the same on an older checkout, interleaved (old, new, old, new, ...) in this one run,
and the ratio of the medians.

    python bench/worker_cost.py [--base /tmp/base] [--jobs 3000] [--rounds 3]

Both trees run on this environment's packages and must share the job format (`WorkChunk`).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

from common import REPO, machine

REDIS_URL = "redis://127.0.0.1:6379/12"
# `python -m rlpr`, run from a tree's own directory: its packages shadow any installed ones
_CHILD = "import sys; from rlpr.cli import main; sys.argv[0] = 'rlpr'; sys.exit(main())"


def enqueue(redis, jobs: int, first: int = 0) -> list[str]:
    """What the API enqueues for a one-item arithmetic request, `jobs` times; replies go to
    rlpr:reply:drain<k>."""
    from rq import Queue

    from reward_contract.types import RewardItem
    from reward_service.core.backends import JOB_FUNCTION
    from reward_service.core.request import WorkChunk
    from reward_service.rewards import get_reward

    options = get_reward("arithmetic").options({})
    queue = Queue("arithmetic", connection=redis)
    datas = []
    for k in range(first, first + jobs):
        item = RewardItem(str(k), "", f"{k % 30} + 4", {"previous": "1 + 2 + 4", "target": "7"})
        chunk = WorkChunk(f"drain{k}", "arithmetic", options, (item,), time.time() + 600, f"rlpr:reply:drain{k}")
        datas.append(Queue.prepare_data(JOB_FUNCTION, args=(chunk,), timeout=60, ttl=600, result_ttl=600))
    with redis.pipeline() as pipe:
        ids = [job.id for job in queue.enqueue_many(datas, pipeline=pipe)]
        pipe.execute()
    return ids


def latency(tree: pathlib.Path, jobs: int) -> tuple[float, float]:
    """(median, p90) ms from a job's enqueue to its reply, one job at a time, after 200 unmeasured."""
    from redis import Redis
    from rq import Worker

    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    worker = subprocess.Popen([sys.executable, "-c", _CHILD, "worker", "--queues", "arithmetic",
                               "--redis-url", REDIS_URL], cwd=tree, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not Worker.all(connection=redis):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the worker from {tree} did not start")
            time.sleep(0.05)
        spent = []
        for k in range(200 + jobs):
            started = time.perf_counter()
            enqueue(redis, 1, first=k)
            if redis.blpop([f"rlpr:reply:drain{k}"], timeout=30) is None:
                raise SystemExit(f"the worker from {tree} did not reply")
            spent.append(time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait()
        redis.flushdb()
    spent = sorted(spent[200:])
    return 1000 * statistics.median(spent), 1000 * spent[int(0.9 * len(spent))]


def drain(tree: pathlib.Path, jobs: int) -> tuple[float, float]:
    """(ms a job from the first start to the last end, CPU ms a job beyond an idle worker's start-up)."""
    from redis import Redis
    from rq.job import Job

    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    startup_cpu = run_burst(tree)  # no jobs: what starting and stopping the worker costs
    ids = enqueue(redis, jobs)
    total_cpu = run_burst(tree)
    done = [job for job in Job.fetch_many(ids, connection=redis) if job is not None and job.ended_at]
    if len(done) != jobs:
        raise SystemExit(f"{tree}: only {len(done)} of {jobs} jobs ended")
    span = max(j.ended_at for j in done) - min(j.started_at for j in done)
    redis.flushdb()
    return 1000 * span.total_seconds() / (jobs - 1), 1000 * (total_cpu - startup_cpu) / jobs


def run_burst(tree: pathlib.Path) -> float:
    """Run `rlpr worker --burst` from `tree` until the queue is empty; its CPU seconds."""
    worker = subprocess.Popen([sys.executable, "-c", _CHILD, "worker", "--queues", "arithmetic", "--burst",
                               "--redis-url", REDIS_URL], cwd=tree, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(worker.pid, 0)  # wait4: the CPU of that one child
    worker.returncode = os.waitstatus_to_exitcode(status)
    if worker.returncode:
        raise SystemExit(f"the worker from {tree} exited with status {worker.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=pathlib.Path, default=None, help="a checkout of an older commit")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"new": pathlib.Path(REPO)}
    if args.base:
        trees = {"old": args.base.resolve(), **trees}
    columns = ["latency p50 ms", "latency p90 ms", "drain ms/job", "drain CPU ms/job"]
    samples = {side: [] for side in trees}
    print(f"{args.jobs} one-item arithmetic jobs a measurement, {args.rounds} rounds, on {machine()}")
    print(f"{'round':<7}{'tree':<6}" + "".join(f"{c:>18}" for c in columns))
    for round_ in range(args.rounds):
        for side, tree in trees.items():
            row = (*latency(tree, args.jobs), *drain(tree, args.jobs))
            samples[side].append(row)
            print(f"{round_ + 1:<7}{side:<6}" + "".join(f"{v:18.3f}" for v in row), flush=True)
    medians = {side: [statistics.median(row[i] for row in rows) for i in range(len(columns))]
               for side, rows in samples.items()}
    for side, values in medians.items():
        print(f"{'median':<7}{side:<6}" + "".join(f"{v:18.3f}" for v in values))
    if "old" in medians:
        print(f"{'old ÷ new (> 1: the new worker is cheaper)':<13}")
        print(f"{'':<13}" + "".join(f"{o / n:18.2f}" for o, n in zip(medians["old"], medians["new"])))


if __name__ == "__main__":
    main()
