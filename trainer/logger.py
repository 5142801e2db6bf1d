"""Per-step metrics to JSONL and TensorBoard, and a PNG of the curves at the end."""
from __future__ import annotations

import json
import math
import pathlib

CURVES = ["reward/mean", "val/loss", "loss/lm", "entropy/token", "entropy/batch", "loss/total", "loss/policy", "loss/value",
          "loss/entropy", "loss/batch_entropy", "kl/mean", "policy/approx_kl", "response/distinct", "response/top_share",
          "reward/failed_items", "train/skipped_updates"]


class MetricsLogger:
    def __init__(self, out: pathlib.Path, resume: bool = False):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "metrics.jsonl"
        self._file = self.path.open("a" if resume else "w", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # tensorboard is optional; JSONL and the plot still work
            self._tb = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """One JSON line per step. NaN and inf are written as they are (JSON NaN / Infinity): a
        metric that went non-finite must show, not vanish."""
        values = {k: float(v) for k, v in metrics.items() if v is not None}
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)

    def close(self, title: str = "", baseline=None) -> pathlib.Path | None:
        """Close the files and draw curves.png, with `baseline` (trainer.summary.Baseline) on the reward."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        return plot_metrics(self.path, self.out / "curves.png", title, baseline=baseline)


def read_metrics(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(path: pathlib.Path, png: pathlib.Path, title: str = "", keys=CURVES,
                 baseline=None) -> pathlib.Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(path)
    present = [k for k in keys if any(k in r for r in rows)]
    if not present:
        return None
    cols = 3
    nrows = math.ceil(len(present) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, present):
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*points), lw=1.2)  # NaN leaves a gap
        values = sorted(abs(v) for _, v in points if math.isfinite(v))
        if values and values[-1] > 100 * max(values[len(values) // 2], 1e-9):
            ax.set_yscale("symlog", linthresh=max(values[len(values) // 2], 1e-6))  # rare spikes stay readable
        if key == "reward/mean" and baseline is not None:
            ax.axhline(baseline.reward, color="grey", ls="--", lw=0.9, label=f"{baseline.label}: {baseline.reward:.3f}")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
