"""Reproduce the paper's arithmetic and sentiment findings at small scale on CPU.

Runs `rlpr train` for each configuration below into runs/results/<name>, then draws the
comparison plots into docs/img/ and prints a summary table for docs/results.md.

    python experiments/arithmetic_and_sentiment.py [--steps 200] [--seeds 0,1] [--only ppo-plain,...]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
ARITH = ["--task", "arithmetic", "--arithmetic-step", "last", "--arithmetic-model-size", "2x64", "--lr", "3e-4",
         "--batch-size", "64", "--mini-batch-size", "16"]
RUNS = {
    "ppo-plain": ARITH,
    "ppo-ent-0.3": ARITH + ["--ent-coef", "0.3"],
    "ppo-bent-0.3": ARITH + ["--bent-coef", "0.3"],
    "ppo-bent-0.1": ARITH + ["--bent-coef", "0.1"],
    "ppo-bent-0.03": ARITH + ["--bent-coef", "0.03"],
    "grpo-plain": ARITH + ["--algo", "grpo", "--num-generations", "8"],
    "grpo-bent-0.3": ARITH + ["--algo", "grpo", "--num-generations", "8", "--bent-coef", "0.3"],
    "sentiment-ppo-vader": ["--task", "sentiment", "--lr", "1e-3", "--batch-size", "64", "--mini-batch-size", "16"],
}


def run(name: str, seed: int, steps: int) -> pathlib.Path:
    out = REPO / "runs" / "results" / f"{name}-s{seed}"
    command = [sys.executable, "-m", "rlpr", "train", *RUNS[name], "--steps", str(steps), "--seed", str(seed),
               "--out", str(out)]
    print(" ".join(command[2:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return out


def rows(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def tail_mean(data: list[dict], key: str, n: int = 20) -> float:
    values = [r[key] for r in data if key in r][-n:]
    return statistics.fmean(values) if values else float("nan")


def smooth(values, k=9):
    return [statistics.fmean(values[max(0, i - k + 1): i + 1]) for i in range(len(values))]


def plot(results: dict[str, list[pathlib.Path]], names: list[str], png: pathlib.Path, title: str,
         constant_line: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["reward/mean", "entropy/token", "entropy/batch", "response/distinct"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    for name in names:
        for i, out in enumerate(results.get(name, [])):
            data = rows(out)
            for ax, key in zip(axes, keys):
                points = [(r["step"], r[key]) for r in data if key in r]
                if points:
                    steps, values = zip(*points)
                    ax.plot(steps, smooth(list(values)), lw=1.3, label=name if i == 0 else None,
                            color=f"C{names.index(name)}", alpha=1.0 if i == 0 else 0.5)
    for ax, key in zip(axes, keys):
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if constant_line is not None:
        axes[0].axhline(constant_line, color="grey", ls="--", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default=",".join(RUNS))
    parser.add_argument("--skip-runs", action="store_true", help="only redraw plots from existing runs")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.only.split(",")
    results = {}
    for name in names if not args.skip_runs else RUNS:
        results[name] = [REPO / "runs" / "results" / f"{name}-s{seed}" if args.skip_runs else run(name, seed, args.steps)
                         for seed in seeds]
    names = list(results)
    img = REPO / "docs" / "img"
    plot(results, [n for n in names if n.startswith("ppo")], img / "arithmetic_ppo.png",
         "Arithmetic (final sum), PPO from scratch: dashed line = constant-23 policy (0.756)", 0.756)
    plot(results, [n for n in names if n.startswith("grpo")], img / "arithmetic_grpo.png",
         "Arithmetic (final sum), GRPO from scratch", 0.756)
    plot(results, [n for n in names if n.startswith("sentiment")], img / "sentiment_vader.png",
         "Sentiment, PPO with the VADER reward")
    print("| run | seed | reward, first 10 steps | reward, last 20 steps | token entropy, last 20 | distinct answers, last 20 | most common answer at the end (share) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, outs in results.items():
        for seed, out in zip(seeds, outs):
            data = rows(out)
            first = statistics.fmean([r["reward/mean"] for r in data[:10] if "reward/mean" in r])
            top = ""
            samples = out / "samples.jsonl"
            if samples.exists():
                last = json.loads(samples.read_text().splitlines()[-1])
                top = f"`{last['most_common']}` ({last['share']:.0%})"
            print(f"| {name} | {seed} | {first:.3f} | {tail_mean(data, 'reward/mean'):.3f} | "
                  f"{tail_mean(data, 'entropy/token'):.2f} | {tail_mean(data, 'response/distinct'):.2f} | {top} |")


if __name__ == "__main__":
    main()
