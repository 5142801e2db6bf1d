"""A discrete-event model of the reward service: N identical workers take jobs from one FIFO queue.

A trainer sends a batch of items every `period_s`; the API splits it into jobs of `chunk_size` items
and enqueues them at once; each free worker takes the next job, and a job occupies its worker for the
sum of its items' evaluation times plus the measured per-job overhead (queue hop, RQ's bookkeeping, the
reply). A batch's latency runs from its arrival to the end of its last job; a job's wait from its
batch's arrival to its start. Redis is not a queue here: its load is reported as a utilisation
(`redis_utilisation`), which stays far below 1 wherever the model is used, and says where it stops.

Everything is a pure function of its inputs: evaluation times are drawn (with a seeded generator) from
a measured sample, never from an assumed distribution.
"""
from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Workload:
    """What a trainer sends: `batch_items` items every `period_s` seconds, `batches` times."""

    batch_items: int
    period_s: float
    batches: int
    chunk_size: int = 1  # items per job (Ludii: 1)


@dataclass(frozen=True)
class Outcome:
    batch_latency_s: tuple[float, ...]  # per batch, arrival to last job's end
    job_wait_s: tuple[float, ...]  # per job, its batch's arrival to its start
    busy_s: float  # worker-seconds of work
    span_s: float  # first arrival to last job's end

    def latency(self, q: float) -> float:
        return percentile(self.batch_latency_s, q)

    def wait(self, q: float) -> float:
        return percentile(self.job_wait_s, q)

    def utilisation(self, workers: int) -> float:
        return self.busy_s / (workers * self.span_s) if self.span_s else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def simulate(workers: int, workload: Workload, batch_items: Sequence[Sequence[float]],
             overhead_s: float) -> Outcome:
    """Run the model. `batch_items[b]` are the evaluation times of batch b's items, in queue order;
    batch b arrives at b * period_s."""
    arrivals = [index * workload.period_s for index in range(len(batch_items))]
    return simulate_at(workers, arrivals, batch_items, overhead_s, workload.chunk_size)


def simulate_at(workers: int, arrivals: Sequence[float], batch_items: Sequence[Sequence[float]], overhead_s: float,
                chunk_size: int = 1) -> Outcome:
    """The model with each batch's arrival instant given (in increasing order)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    free_at = [0.0] * workers  # a heap of the instants each worker is next free
    latencies, waits, busy, end = [], [], 0.0, 0.0
    for arrival, items in zip(arrivals, batch_items):
        finished = arrival
        for start in range(0, len(items), chunk_size):
            service = overhead_s + sum(items[start:start + chunk_size])
            began = max(arrival, heapq.heappop(free_at))  # the worker free soonest takes the next job
            done = began + service
            heapq.heappush(free_at, done)
            waits.append(began - arrival)
            busy += service
            finished = max(finished, done)
        latencies.append(finished - arrival)
        end = max(end, finished)
    span = end - (arrivals[0] if arrivals else 0.0)
    return Outcome(tuple(latencies), tuple(waits), busy, span)


def draw_batches(sample: Sequence[float], workload: Workload, seed: int) -> list[list[float]]:
    """Each batch's items drawn with replacement from a measured sample of evaluation times."""
    rng = random.Random(seed)
    return [[rng.choice(sample) for _ in range(workload.batch_items)] for _ in range(workload.batches)]


def predict(workers: int, workload: Workload, sample: Sequence[float], overhead_s: float,
            repeats: int = 20, seed: int = 0) -> Outcome:
    """The model over `repeats` independent draws of the workload, pooled."""
    outcomes = [simulate(workers, workload, draw_batches(sample, workload, seed + r), overhead_s)
                for r in range(repeats)]
    return Outcome(tuple(x for o in outcomes for x in o.batch_latency_s), tuple(x for o in outcomes for x in o.job_wait_s),
                   sum(o.busy_s for o in outcomes), sum(o.span_s for o in outcomes))


def workers_for(step_s: float, workload: Workload, sample: Sequence[float], overhead_s: float, q: float = 95,
                most: int = 4096, seed: int = 0) -> int | None:
    """The fewest workers whose q-th percentile batch latency fits in `step_s` (None: not even `most`)."""
    low, high = 1, most
    if predict(high, workload, sample, overhead_s, seed=seed).latency(q) > step_s:
        return None
    while low < high:
        middle = (low + high) // 2
        if predict(middle, workload, sample, overhead_s, seed=seed).latency(q) <= step_s:
            high = middle
        else:
            low = middle + 1
    return low


def redis_utilisation(jobs_per_s: float, commands_per_job: float, background_per_s: float,
                      commands_per_s_capacity: float) -> float:
    """The share of one Redis's command rate that the service uses."""
    return (jobs_per_s * commands_per_job + background_per_s) / commands_per_s_capacity


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)
