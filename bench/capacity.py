"""How many workers a trainer needs, and where one Redis stops scaling: bench/capacity_model.py fed
only with what this script measures, checked against real `rlpr up` workers, then extrapolated.

Phases (each keeps its raw results in runs/bench/capacity_<phase>.json; --reuse reads them):
  evals     every Ludii test game, evaluated one at a time by a warm engine (as a worker runs it)
            under the time limit a trainer with a 60 s step sets (LIMIT_S): the evaluation-time
            sample; arithmetic and VADER items timed the same way, in-process;
  overhead  what a job adds to its items' evaluation: a one-game request through the API, Redis and
            a warm worker, against the same evaluation called directly, interleaved;
  redis     Redis commands per Ludii job (INFO commandstats over real requests), the commands an idle
            and a busy worker and the API's monitor send each second, and one Redis's command rate
            for that mix (redis-benchmark);
  validate  the model's prediction first, then the measurement: a trainer sending BATCH games drawn
            from the corpus every PERIOD_S seconds to `rlpr up` with 1 and 2 Ludii workers; batch
            latency p50 and p95 side by side (target: within 15 %); the workers' and the API's peak
            memory on the way;
and then, from those, the extrapolation: 8 to 512 workers for the paper's batch of 128 games, the
workers a given step time needs, and Redis's utilisation: where the design stops scaling.

    LUDII_JAR=/path/Ludii.jar python bench/capacity.py [--reuse] [--phases validate,...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from common import REPO, machine, write_results

import capacity_model as model
from capacity_measure import (BATCH, BATCHES, LIMIT_S, RAW, measure_evals, measure_overhead, measure_redis,
                              measure_validation)

WORKERS = [1, 2, 8, 32, 128, 512]
PAPER = model.Workload(batch_items=128, period_s=60.0, batches=40)
PHASES = ["evals", "overhead", "redis", "validate"]  # measured and saved; the extrapolation is recomputed
STEP_LIMITS_S = [60.0, 30.0, 15.0]  # per-game time limits a trainer may set (the sample is measured at 60 s)


def cached(phase: str, reuse: bool, run):
    path = RAW / f"capacity_{phase}.json"
    if reuse and path.exists():
        print(f"== {phase}: reusing {path.relative_to(REPO)}", file=sys.stderr)
        return json.loads(path.read_text())
    print(f"== {phase}", file=sys.stderr, flush=True)
    result = run()
    RAW.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


# -- report -----------------------------------------------------------------------------------------
def extrapolate(evals: dict, overhead: dict, redis: dict) -> dict:
    """The model beyond this machine: the paper's workload on 1 to 512 workers, the workers a step time
    needs under a few time limits (a game stopped at the limit costs the limit), and one Redis's ceiling."""
    sample = [e["seconds"] for e in evals["ludii"]]
    per_worker_bg = redis["busy_total_per_s"] / 2  # a busy worker's beats and cancel checks, the API's monitor's share
    jobs_per_s = PAPER.batch_items / PAPER.period_s
    rows = []
    for workers in WORKERS:
        outcome = model.predict(workers, PAPER, sample, overhead["overhead_s"])
        load = model.redis_utilisation(jobs_per_s, redis["commands_per_job"], workers * per_worker_bg,
                                       redis["mix_capacity_per_s"])
        rows.append({"workers": workers, "p50_s": outcome.latency(50), "p95_s": outcome.latency(95),
                     "wait_p95_s": outcome.wait(95), "utilisation": outcome.utilisation(workers), "redis": load})
    needed = []
    for limit in STEP_LIMITS_S:
        capped = [min(t, limit) for t in sample]
        for step in (30, 60, 120, 300):
            workload = model.Workload(PAPER.batch_items, step, PAPER.batches)
            needed.append({"limit_s": limit, "step_s": step,
                           "workers": model.workers_for(step, workload, capped, overhead["overhead_s"])})
    ceilings = {}
    for name, per_item in (("ludii", statistics.fmean(sample)),
                           ("arithmetic", evals["cpu"]["arithmetic"]["seconds"]),
                           ("sentiment_vader", evals["cpu"]["sentiment_vader"]["seconds"])):
        chunk = 1 if name == "ludii" else evals["cpu"][name]["chunk_size"]
        job_s = overhead["overhead_s"] + per_item if name == "ludii" else overhead["drain_job_s"][name]
        per_worker = redis["commands_per_job"] / job_s + per_worker_bg  # the commands/s of one saturated worker
        ceilings[name] = {"job_s": job_s, "items_per_job": chunk, "commands_per_worker_s": per_worker,
                          "workers_at_ceiling": redis["mix_capacity_per_s"] / per_worker}
    return {"paper": rows, "workers_for_step": needed, "ceilings": ceilings}


def figures_of(evals, overhead, redis, validations, projection) -> list[dict]:
    sample = [e["seconds"] for e in evals["ludii"]]
    figures = [
        {"name": f"Ludii evaluation time under a {LIMIT_S:g} s limit, mean", "value": statistics.fmean(sample),
         "unit": "s", "target": "", "note": f"{len(sample)} test games, one warm engine"},
        {"name": "Ludii evaluation time, p95", "value": model.percentile(sample, 95), "unit": "s", "target": ""},
        {"name": "per-job overhead (one game through API, Redis and a worker, minus the evaluation)",
         "value": overhead["overhead_s"] * 1000, "unit": "ms", "target": ""},
        {"name": "Redis commands per Ludii job (API and worker)", "value": redis["commands_per_job"], "unit": "count",
         "target": ""},
        {"name": "one Redis's rate for that command mix (redis-benchmark, 50 clients)",
         "value": redis["mix_capacity_per_s"], "unit": "commands/s", "target": ""},
    ]
    for v in validations:
        for q in ("mean", "p50", "p95"):
            error = v[f"predicted_{q}"] / v[f"measured_{q}"] - 1
            figures.append({"name": f"capacity model vs rlpr up, {v['workers']} Ludii worker(s): batch latency {q}, "
                                    f"|predicted ÷ measured − 1|", "value": abs(error) * 100, "unit": "%",
                            "target": "<= 15", "note": f"predicted {v[f'predicted_{q}']:.1f} s, measured "
                                                       f"{v[f'measured_{q}']:.1f} s ({error:+.1%}); {v['batch']} games "
                                                       f"every {v['period_s']:g} s, {len(v['measured_s'])} batches"})
        for name, peak in sorted(v["peak_rss_bytes"].items()):
            figures.append({"name": f"peak resident memory, {name} ({v['workers']} Ludii worker(s))",
                            "value": peak / 2**20, "unit": "MiB", "target": "",
                            "note": "a worker with its JVM child" if name != "api" else "the API process"})
    for name, c in projection["ceilings"].items():
        figures.append({"name": f"workers one Redis serves flat out, {name} (chunk {c['items_per_job']})",
                        "value": c["workers_at_ceiling"], "unit": "workers", "target": ""})
    return figures


def with_means(validation: dict) -> dict:
    return {**validation, "predicted_mean": model.mean(validation["predicted_s"]),
            "measured_mean": model.mean(validation["measured_s"])}


def print_report(evals, overhead, redis, validations, projection) -> None:
    sample = [e["seconds"] for e in evals["ludii"]]
    stopped = sum(1 for e in evals["ludii"] if e["stopped"])
    print(f"machine: {machine()}")
    print(f"Ludii: {len(sample)} games under a {LIMIT_S:g} s limit, mean {statistics.fmean(sample):.2f} s, "
          f"p50 {model.percentile(sample, 50):.2f} s, p95 {model.percentile(sample, 95):.2f} s, "
          f"max {max(sample):.1f} s ({stopped} stopped at the limit)")
    for name, c in evals["cpu"].items():
        print(f"{name}: {c['seconds'] * 1e6:.0f} µs an item, {c['chunk_size']} items a job")
    print(f"per-job overhead: {overhead['overhead_s'] * 1000:.1f} ms (service {overhead['service_s'] * 1000:.1f} ms, "
          f"raw {overhead['raw_s'] * 1000:.1f} ms, Tic-Tac-Toe)")
    print(f"Redis: {redis['commands_per_job']:.1f} commands a job; idle service {redis['idle_total_per_s']:.0f}/s, "
          f"two busy workers {redis['busy_total_per_s']:.0f}/s; one Redis serves {redis['mix_capacity_per_s']:,.0f} "
          f"commands/s of that mix")
    print("\nmodel vs measured (rlpr up, real workers; batch of "
          f"{BATCH} corpus games every PERIOD_S s, {BATCHES} batches)")
    print(f"{'workers':>7} {'period':>7}" + "".join(f" {'pred ' + q:>10} {'meas ' + q:>10} {'error':>7}"
                                                   for q in ("mean", "p50", "p95")))
    for v in validations:
        print(f"{v['workers']:>7} {v['period_s']:>6.0f}s" + "".join(
            f" {v[f'predicted_{q}']:>9.1f}s {v[f'measured_{q}']:>9.1f}s {v[f'predicted_{q}'] / v[f'measured_{q}'] - 1:>+7.1%}"
            for q in ("mean", "p50", "p95")))
        print(f"        per batch, predicted: {' '.join(f'{x:.1f}' for x in v['predicted_s'])}")
        print(f"        per batch, measured:  {' '.join(f'{x:.1f}' for x in v['measured_s'])}")
        for name, peak in sorted(v["peak_rss_bytes"].items()):
            print(f"        peak RSS {name}: {peak / 2**20:.0f} MiB")
    print(f"\nthe paper's batch ({PAPER.batch_items} games every {PAPER.period_s:g} s), modelled:")
    print(f"{'workers':>7} {'p50':>8} {'p95':>8} {'wait p95':>9} {'busy':>6} {'redis':>7}")
    for r in projection["paper"]:
        print(f"{r['workers']:>7} {r['p50_s']:>7.1f}s {r['p95_s']:>7.1f}s {r['wait_p95_s']:>8.1f}s "
              f"{r['utilisation']:>6.0%} {r['redis']:>7.1%}")
    print(f"\nworkers for a p95 batch latency within a step ({PAPER.batch_items} games a step):")
    for row in projection["workers_for_step"]:
        print(f"  time limit {row['limit_s']:>4.0f} s, step {row['step_s']:>4.0f} s: "
              f"{row['workers'] if row['workers'] else 'none: the limit does not fit the step'}")
    for name, c in projection["ceilings"].items():
        print(f"ceiling, {name}: a job {c['job_s'] * 1000:.1f} ms ({c['items_per_job']} items), a saturated worker "
              f"sends {c['commands_per_worker_s']:.0f} commands/s: one Redis serves {c['workers_at_ceiling']:,.0f} "
              f"such workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="use every saved phase (and run those not saved)")
    parser.add_argument("--phases", default="", help=f"phases to run anew, comma-separated, from {', '.join(PHASES)} "
                                                     "(default: all; with --reuse, none)")
    args = parser.parse_args()
    if not os.environ.get("LUDII_JAR"):
        print("skipped: LUDII_JAR is not set")
        write_results("capacity", [{"name": "capacity model", "value": None, "unit": "", "target": "",
                                    "note": "skipped: no Ludii jar on this machine (LUDII_JAR unset)"}])
        return
    fresh = set(filter(None, args.phases.split(","))) or (set() if args.reuse else set(PHASES))
    if fresh - set(PHASES):
        raise SystemExit(f"--phases names no phase: {', '.join(sorted(fresh - set(PHASES)))}; choose from "
                         f"{', '.join(PHASES)}")
    reuse = lambda phase: phase not in fresh
    evals = cached("evals", reuse("evals"), measure_evals)
    overhead = cached("overhead", reuse("overhead"), measure_overhead)
    redis = cached("redis", reuse("redis"), measure_redis)
    samples = {1: evals["ludii"], 2: evals["ludii_paired"]}  # two workers share this machine's two cores
    validations = [cached(f"validate_{n}", reuse("validate"),
                          lambda n=n: measure_validation(n, samples[n], overhead["overhead_s"])) for n in (1, 2)]
    validations = [with_means(v) for v in validations]
    projection = extrapolate(evals, overhead, redis)
    print_report(evals, overhead, redis, validations, projection)
    write_results("capacity", figures_of(evals, overhead, redis, validations, projection))


if __name__ == "__main__":
    main()
