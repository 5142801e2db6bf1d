"""The capacity model (bench/capacity_model.py) against results known in closed form."""
import math
import random

import pytest

from tests.bench_scripts import load_bench_module

model = load_bench_module("capacity_model")


def test_one_batch_on_one_worker_takes_the_sum_of_its_jobs():
    workload = model.Workload(batch_items=4, period_s=100, batches=1)
    outcome = model.simulate(1, workload, [[1.0, 2.0, 3.0, 4.0]], overhead_s=0.5)
    assert outcome.batch_latency_s == (12.0,)
    assert outcome.job_wait_s == (0.0, 1.5, 4.0, 7.5)


def test_workers_take_jobs_in_queue_order_as_they_come_free():
    workload = model.Workload(batch_items=5, period_s=100, batches=1)
    # FIFO list scheduling: w1 takes 4, w2 takes 1, 1, 1 (free at 1, 2, 3), then w2 takes the last 4 at 3.
    outcome = model.simulate(2, workload, [[4.0, 1.0, 1.0, 1.0, 4.0]], overhead_s=0.0)
    assert outcome.batch_latency_s == (7.0,)
    assert outcome.job_wait_s == (0.0, 0.0, 1.0, 2.0, 3.0)


def test_chunks_group_items_into_jobs():
    workload = model.Workload(batch_items=6, period_s=100, batches=1, chunk_size=4)
    outcome = model.simulate(2, workload, [[1.0] * 6], overhead_s=0.25)
    assert len(outcome.job_wait_s) == 2 and outcome.batch_latency_s == (4.25,)


def test_a_batch_that_arrives_while_the_last_one_runs_waits_behind_it():
    workload = model.Workload(batch_items=2, period_s=1.0, batches=2)
    outcome = model.simulate(1, workload, [[2.0, 2.0], [2.0, 2.0]], overhead_s=0.0)
    assert outcome.batch_latency_s == (4.0, 7.0)  # the second arrives at 1 and ends at 8
    assert outcome.utilisation(1) == pytest.approx(1.0)


def erlang_c_wait(servers: int, arrival: float, service: float) -> float:
    """Mean queue wait of M/M/c (Erlang C)."""
    load = arrival * service
    rho = load / servers
    tail = load ** servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (sum(load ** k / math.factorial(k) for k in range(servers)) + tail)
    return p_wait * service / (servers * (1 - rho))


@pytest.mark.parametrize("servers", [1, 3])
def test_single_jobs_at_poisson_times_match_erlang_c(servers):
    """One-item batches at exponential gaps with exponential sizes make the model an M/M/c queue,
    whose mean wait is known exactly."""
    rng = random.Random(7)
    arrival, service, jobs = 0.8 * servers, 1.0, 60_000
    times, now = [], 0.0
    for _ in range(jobs):
        now += rng.expovariate(arrival)
        times.append(now)
    sizes = [[rng.expovariate(1 / service)] for _ in range(jobs)]
    outcome = model.simulate_at(servers, times, sizes, overhead_s=0.0)
    assert model.mean(outcome.job_wait_s) == pytest.approx(erlang_c_wait(servers, arrival, service), rel=0.08)
    assert outcome.busy_s == pytest.approx(sum(s[0] for s in sizes))
    assert outcome.utilisation(servers) == pytest.approx(0.8, abs=0.02)


def test_fewest_workers_for_a_step_is_the_smallest_that_fits():
    sample = [1.0, 2.0, 3.0]
    workload = model.Workload(batch_items=30, period_s=60, batches=5)
    needed = model.workers_for(20.0, workload, sample, overhead_s=0.0)
    assert model.predict(needed, workload, sample, 0.0).latency(95) <= 20.0
    assert model.predict(needed - 1, workload, sample, 0.0).latency(95) > 20.0
    assert model.workers_for(0.5, workload, sample, 0.0) is None  # no count fits below the longest item


def test_redis_utilisation_adds_job_and_background_commands():
    assert model.redis_utilisation(100, 50, 1000, 60_000) == pytest.approx(0.1)
