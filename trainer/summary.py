"""What a finished run says: where the reward started and ended, against the task's baseline (a reward
reached without using the prompt, e.g. the best constant answer), and how varied the answers were.
Printed by every algorithm at the end, and the baseline drawn on the reward curve."""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

LAST_STEPS = 20  # "final" is the mean over this many last steps, as in docs/results.md


@dataclass(frozen=True)
class Baseline:
    label: str  # e.g. "the best constant answer (22)"
    reward: float


def baseline_for(config, task) -> Baseline | None:
    """The task's baseline, when the run is scored by the task's own reward with its own options
    (another reward has another baseline, which rlpr does not know)."""
    if (config.reward and tuple(config.reward) != (task.reward,)) or config.reward_options:
        return None
    return task.baseline()


def summary(rows: list[dict], baseline: Baseline | None) -> list[str]:
    rewards = [(r["step"], r["reward/mean"]) for r in rows if math.isfinite(r.get("reward/mean", math.nan))]
    if not rewards:
        return ["no step was scored: see reward/failed_items in metrics.jsonl"]
    last = [value for _, value in rewards[-LAST_STEPS:]]
    final = sum(last) / len(last)
    lines = [f"reward {rewards[0][1]:.3f} at step {rewards[0][0]}, {final:.3f} over the last {len(last)} steps"]
    if baseline is not None:
        verdict = "above" if final > baseline.reward else "not above"
        lines.append(f"{baseline.label} scores {baseline.reward:.3f}: this run ends {verdict} it "
                     f"({final - baseline.reward:+.3f})")
    shares = [r for r in rows if "response/distinct" in r]
    if shares:
        end = shares[-1]
        lines.append(f"answers at the last step: {end['response/distinct']:.0%} distinct; the most common is "
                     f"{end['response/top_share']:.0%} of the batch")
    return lines


def closing(metrics: pathlib.Path, png: pathlib.Path | None, model: pathlib.Path, baseline: Baseline | None) -> str:
    from trainer.logger import read_metrics

    lines = summary(read_metrics(metrics), baseline)
    lines += [f"metrics: {metrics}", f"curves:  {png}", f"model:   {model}"]
    return "\n".join(lines)
