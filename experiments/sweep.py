"""The seed sweep behind docs/results.md: every configuration over >= 5 seeds, one table, band plots.

    python experiments/sweep.py                 # run what is missing, then write the table and plots
    python experiments/sweep.py --only ppo-plain,sft --seeds 0,1,2,3,4
    python experiments/sweep.py --report-only   # redraw from runs/sweep/ without training

Each run is `rlpr train` (or `rlpr sft`) into runs/sweep/<config>/s<seed>/, one at a time and
single-threaded, with its wall time in time.json. The table replaces the part of
docs/results.md between the sweep markers; plots go to docs/img/sweep_*.png.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RUNS = REPO / "runs" / "sweep"
RESULTS = REPO / "docs" / "results.md"
PER_RUN = REPO / "docs" / "data" / "sweep_runs.csv"
MARK_BEGIN, MARK_END = "<!-- sweep:begin -->", "<!-- sweep:end -->"
SEEDS = (0, 1, 2, 3, 4)
TAIL = 20  # "final" means the mean over the last TAIL logged steps
DEMO = ["--task", "arithmetic", "--arithmetic-step", "last", "--arithmetic-model-size", "2x64", "--lr", "3e-4",
        "--batch-size", "64", "--mini-batch-size", "16"]


@dataclass(frozen=True)
class Config:
    name: str
    command: str  # train or sft
    args: list[str]
    steps: int
    group: str  # the plot it belongs to
    seeds: tuple[int, ...] = SEEDS
    what: str = ""
    extra: dict = field(default_factory=dict)


CONFIGS = [
    Config("ppo-plain", "train", DEMO, 300, "ppo", what="PPO, no regulariser"),
    Config("ppo-ent-0.03", "train", DEMO + ["--ent-coef", "0.03"], 300, "ppo", what="PPO, b_ENT 0.03"),
    Config("ppo-ent-0.3", "train", DEMO + ["--ent-coef", "0.3"], 300, "ppo", what="PPO, b_ENT 0.3"),
    Config("ppo-bent-0.03", "train", DEMO + ["--bent-coef", "0.03"], 300, "ppo", what="PPO, b_BENT 0.03"),
    Config("ppo-bent-0.3", "train", DEMO + ["--bent-coef", "0.3"], 300, "ppo", what="PPO, b_BENT 0.3"),
    Config("ppo-plain-overlap", "train", DEMO + ["--overlap-rewards", "on"], 300, "ppo",
           what="PPO, no regulariser, rewards overlapped (staleness 1)"),
    Config("grpo-plain", "train", DEMO + ["--algo", "grpo", "--num-generations", "8"], 600, "trl", what="GRPO"),
    Config("grpo-bent-0.3", "train", DEMO + ["--algo", "grpo", "--num-generations", "8", "--bent-coef", "0.3"], 600,
           "trl", what="GRPO, b_BENT 0.3"),
    Config("rloo-plain", "train", DEMO + ["--algo", "rloo", "--num-generations", "8"], 600, "trl", what="RLOO"),
    Config("rloo-bent-0.3", "train", DEMO + ["--algo", "rloo", "--num-generations", "8", "--bent-coef", "0.3"], 600,
           "trl", what="RLOO, b_BENT 0.3"),
    Config("sft", "sft", ["--task", "arithmetic", "--arithmetic-step", "last", "--arithmetic-model-size", "2x64",
                          "--eval-every", "100"], 1500, "sft", what="supervised baseline"),
    Config("sentiment-ppo-vader", "train", ["--task", "sentiment", "--lr", "1e-3", "--batch-size", "64",
                                            "--mini-batch-size", "16"], 200, "sentiment", what="sentiment, VADER"),
    Config("ppo-demo-1000", "train", DEMO, 1000, "long", what="`make demo`'s settings, 1,000 steps"),
]
BY_NAME = {c.name: c for c in CONFIGS}


def out_dir(config: Config, seed: int) -> pathlib.Path:
    return RUNS / config.name / f"s{seed}"


def run(config: Config, seed: int) -> None:
    out = out_dir(config, seed)
    if (out / "time.json").exists():
        return
    command = [sys.executable, "-m", "rlpr", config.command, *config.args, "--steps", str(config.steps),
               "--seed", str(seed), "--out", str(out)]
    print(" ".join(command[2:]), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # one core per run, comparable times
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
    (out / "time.json").write_text(json.dumps({"seconds": seconds, "returncode": done.returncode}))


def rows(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def tail_mean(data: list[dict], key: str) -> float:
    values = [r[key] for r in data if key in r and math.isfinite(r[key])][-TAIL:]
    return statistics.fmean(values) if values else float("nan")


def first_nan(data: list[dict]) -> int | None:
    for row in data:
        if any(k.startswith("loss/") and not math.isfinite(v) for k, v in row.items()):
            return row["step"]
    return None


def summarise(config: Config, constant: float) -> dict | None:
    outs = [out_dir(config, s) for s in config.seeds if (out_dir(config, s) / "metrics.jsonl").exists()]
    if not outs:
        return None
    datas = [rows(out) for out in outs]
    if config.command == "sft":  # its evaluations sample, but it logs no batch composition
        finals = [[r["reward/mean"] for r in d if "reward/mean" in r][-1] for d in datas]
        collapsed = None
    else:
        finals = [tail_mean(d, "reward/mean") for d in datas]
        collapsed = [tail_mean(d, "response/top_share") >= 0.5 for d in datas]
    nans = [first_nan(d) for d in datas]
    times = [json.loads((out / "time.json").read_text())["seconds"] for out in outs if (out / "time.json").exists()]
    return {
        "config": config, "seeds": len(datas), "seed_ids": [int(out.name[1:]) for out in outs], "final": finals,
        "collapsed": f"{sum(collapsed)}/{len(datas)}" if collapsed is not None else "—",
        "beat": sum(f > constant for f in finals), "nans": [n for n in nans if n is not None],
        "skipped": sum(r.get("train/skipped_updates", 0) for d in datas for r in d),
        "entropy": [tail_mean(d, "entropy/token") for d in datas],
        "distinct": [tail_mean(d, "response/distinct") for d in datas],
        "kl": [tail_mean(d, "policy/approx_kl") for d in datas],
        "minutes": statistics.fmean(times) / 60 if times else float("nan"),
    }


def mean_std(values) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "—"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def table(summaries: list[dict], constant: float) -> str:
    lines = [f"| configuration | seeds | steps | final reward (mean ± std) | collapsed | beat {constant:.3f} | "
             "token entropy | distinct answers | approx KL | first NaN | skipped updates | minutes per run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in summaries:
        c = s["config"]
        kl = mean_std(s["kl"]) if c.command == "train" and c.group in ("ppo", "long") else "—"
        lines.append(
            f"| `{c.name}` ({c.what}) | {s['seeds']} | {c.steps} | {mean_std(s['final'])} | "
            f"{s['collapsed']} | {s['beat']}/{s['seeds']} | {mean_std(s['entropy'])} | "
            f"{mean_std(s['distinct'])} | {kl} | {', '.join(map(str, s['nans'])) or 'none'} | {s['skipped']:.0f} | "
            f"{s['minutes']:.1f} |")
    return "\n".join(lines)


def smooth(values: list[float], k: int = 9) -> list[float]:
    return [statistics.fmean(values[max(0, i - k + 1): i + 1]) for i in range(len(values))]


def plot(group: str, constant: float) -> pathlib.Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in CONFIGS if c.group == group]
    keys = ["reward/mean", "entropy/token", "entropy/batch", "response/distinct"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.4))
    drawn = False
    for colour, config in enumerate(configs):
        datas = [rows(out_dir(config, s)) for s in config.seeds if (out_dir(config, s) / "metrics.jsonl").exists()]
        if not datas:
            continue
        for ax, key in zip(axes, keys):
            curves = [{r["step"]: r[key] for r in d if key in r and math.isfinite(r[key])} for d in datas]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if not steps:
                continue
            series = [smooth([c[s] for s in steps]) for c in curves]
            mean = [statistics.fmean(v) for v in zip(*series)]
            std = [statistics.pstdev(v) for v in zip(*series)]
            ax.plot(steps, mean, color=f"C{colour}", lw=1.4, label=f"{config.name} (n={len(datas)})")
            ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=f"C{colour}", alpha=0.2)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    for ax, key in zip(axes, keys):
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if group not in ("sentiment",):
        axes[0].axhline(constant, color="grey", ls="--", lw=0.8)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{group}: mean ± 1 std over seeds (9-step moving average); dashed: best constant answer "
                 f"({constant:.3f})" if group != "sentiment" else "sentiment: mean ± 1 std over seeds", fontsize=10)
    fig.tight_layout()
    png = REPO / "docs" / "img" / f"sweep_{group}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def write_per_run(summaries: list[dict]) -> None:
    """Every run's final figures in git: runs/ is not committed, and a machine that is recycled takes it along."""
    lines = ["config,seed,final_reward,token_entropy,distinct_answers,approx_kl"]
    for s in summaries:
        for seed, *values in zip(s["seed_ids"], s["final"], s["entropy"], s["distinct"], s["kl"]):
            lines.append(",".join([s["config"].name, str(seed)] + [f"{v:.4f}" for v in values]))
    PER_RUN.parent.mkdir(parents=True, exist_ok=True)
    PER_RUN.write_text("\n".join(lines) + "\n")


def write_results(text: str) -> None:
    page = RESULTS.read_text() if RESULTS.exists() else f"{MARK_BEGIN}\n{MARK_END}\n"
    if MARK_BEGIN not in page:
        page += f"\n{MARK_BEGIN}\n{MARK_END}\n"
    head, rest = page.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    RESULTS.write_text(f"{head}{MARK_BEGIN}\n{text}\n{MARK_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated configurations (default: all)")
    parser.add_argument("--seeds", default="", help="override the seeds, e.g. 0,1,2,3,4")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table and plots")
    args = parser.parse_args()
    from trainer.tasks.arithmetic import best_constant_answer

    answer, constant = best_constant_answer()
    chosen = [BY_NAME[name] for name in args.only.split(",")] if args.only else CONFIGS
    if not args.report_only:
        for config in chosen:
            seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else config.seeds
            for seed in seeds:
                run(config, seed)
    summaries = [s for s in (summarise(c, constant) for c in CONFIGS) if s]
    text = (f"Best constant answer, computed from the generator: **{answer}**, expected reward **{constant:.4f}** "
            f"(22 and 23 tie: the sum of five digits is symmetric about 22.5). \"Final\" is the mean over the last "
            f"{TAIL} steps (SFT: the last evaluation, sampled). A seed \"collapsed\" when, over its last {TAIL} steps, "
            "one answer made up at least half of each batch on average.\n\n" + table(summaries, constant))
    print(text)
    write_results(text)
    write_per_run(summaries)
    for group in dict.fromkeys(c.group for c in CONFIGS):
        plot(group, constant)


if __name__ == "__main__":
    main()
