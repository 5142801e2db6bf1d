"""The same benchmarks on an older checkout and on this one, interleaved, and the ratio of each figure.

    git worktree add /tmp/base <commit>
    python bench/before_after.py --base /tmp/base [--rounds 2] [--out docs/before_after.md]

Each round runs every benchmark on the old tree, then on this one (old, new, old, new, ...), so a
load on the machine that drifts over the run weighs on both sides alike. A figure is the median over
rounds; "new ÷ old" is oriented so that > 1 is always better for the new code. Both trees run on
this environment's packages: only our code differs.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys

from common import REPO, machine

# script and arguments; the same on both trees (their command lines have not changed)
BENCHES = [
    ("service.py", ["--seconds", "1.0"]),
    ("trainer.py", ["--task", "arithmetic", "--rounds", "2"]),
    ("load.py", ["--seconds", "20"]),
]
SERVICE_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(in-process|service, \d workers?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)")
TRAINER_ROW = re.compile(r"^(PPO step, no batch entropy|PPO step, batch entropy 0.3|step, rewards sequential|"
                         r"step, rewards overlapped)\s+([\d.]+)")
LOAD_ROW = re.compile(r"^all\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)")


def figures(script: str, stdout: str) -> dict[str, tuple[float, bool]]:
    """name -> (value, higher_is_better), read from a benchmark's printed table."""
    found = {}
    for line in stdout.splitlines():
        if script == "service.py" and (m := SERVICE_ROW.match(line)):
            found[f"{m[1]}, batch {m[2]}, {m[3]}: items/s"] = (float(m[4]), True)
            found[f"{m[1]}, batch {m[2]}, {m[3]}: p99 ms"] = (float(m[6]), False)
        elif script == "trainer.py" and (m := TRAINER_ROW.match(line)):
            found[f"arithmetic {m[1]}: s/step"] = (float(m[2]), False)
        elif script == "load.py" and (m := LOAD_ROW.match(line)):
            found["load, REST + gRPC: req/s"] = (float(m[2]), True)
            found["load, REST + gRPC: p99 ms"] = (float(m[5]), False)
            found["load: errors"] = (float(m[6]), False)
    if not found:
        raise SystemExit(f"{script} printed no figures:\n{stdout[-2000:]}")
    return found


def run(tree: pathlib.Path, script: str, extra: list[str]) -> dict[str, tuple[float, bool]]:
    env = dict(os.environ, PYTHONPATH=str(tree))  # the tree's own packages shadow the installed ones
    env.pop("RLPR_BENCH_OUT", None)
    done = subprocess.run([sys.executable, script, *extra], cwd=tree / "bench", env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"{script} failed in {tree}:\n{done.stderr[-3000:]}")
    return figures(script, done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, type=pathlib.Path, help="a checkout of the older commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the table here (markdown)")
    parser.add_argument("--only", default="", help="comma-separated scripts (default: all)")
    args = parser.parse_args()
    benches = [(script, extra) for script, extra in BENCHES if not args.only or script in args.only.split(",")]
    trees = {"old": args.base.resolve(), "new": pathlib.Path(REPO)}
    base_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=trees["old"], capture_output=True,
                                 text=True).stdout.strip()
    samples: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    better: dict[str, bool] = {}
    for round_ in range(args.rounds):
        for script, extra in benches:
            for side in ("old", "new"):
                print(f"round {round_ + 1}/{args.rounds}: {script} on {side}", flush=True)
                for name, (value, higher) in run(trees[side], script, extra).items():
                    samples[side].setdefault(name, []).append(value)
                    better[name] = higher
    lines = [f"{args.rounds} interleaved rounds on {machine()}; old = {base_commit}; median per figure.", "",
             "| figure | old | new | new ÷ old, > 1 is better |", "| --- | --- | --- | --- |"]
    for name in samples["new"]:
        if name not in samples["old"]:
            continue
        old, new = statistics.median(samples["old"][name]), statistics.median(samples["new"][name])
        if old == new:
            gain = 1.0
        else:
            gain = (new / old if better[name] else old / new) if old and new else float("nan")
        lines.append(f"| {name} | {old:.4g} | {new:.4g} | {gain:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
