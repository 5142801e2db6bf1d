"""The Ludii task end to end on the real engine: FIM pre-training, then PPO with the `ludii` reward
through `rlpr up` (the paper's Fig. 9 at CPU scale).

    LUDII_JAR=/path/Ludii.jar python experiments/ludii_loop.py [--sft-steps 1500] [--ppo-steps 60] [--seed 0]
    python experiments/ludii_loop.py --report-only

1. `rlpr sft --task ludii --ludii-ludeme-tokens`: a small GPT-2 over a BPE trained on the training
   games, with every ludeme as one token, learns to fill in the middle;
2. `rlpr up --workers ludii=1` serves the reward (one supervised JVM);
3. `rlpr train --task ludii --reward-url grpc://...` from the pre-trained checkpoint.
Writes runs/ludii/{sft,ppo}/, docs/img/ludii_loop.png, and prints the table for docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RUNS = REPO / "runs" / "ludii"
# The paper's training games: from the folder $RLPR_LUDII_DATA names, else downloaded once by rlpr.
GAMES = (["--ludii-games", str(pathlib.Path(os.environ["RLPR_LUDII_DATA"]) / "games_train.json")]
         if os.environ.get("RLPR_LUDII_DATA") else [])
COMPONENTS = ["compiles", "playable", "balance", "completion", "decisiveness"]


def rlpr(*args: str) -> None:
    print("rlpr " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "rlpr", *args], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ludii():
    import httpx

    rest, grpc_port, redis = free_port(), free_port(), free_port()
    log = (RUNS / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "rlpr", "up", "--workers", "ludii=1", "--redis-url",
                             f"redis://127.0.0.1:{redis}/0", "--rest-addr", f"127.0.0.1:{rest}", "--grpc-addr",
                             f"127.0.0.1:{grpc_port}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{rest}/readyz?reward=ludii", timeout=2).status_code == 200:
                return proc, f"grpc://127.0.0.1:{grpc_port}"
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("rlpr up did not become ready; see runs/ludii/up.log")


def run(args) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    seed = ["--seed", str(args.seed)]
    if not (RUNS / "sft" / "checkpoint").exists():
        rlpr("sft", "--task", "ludii", *GAMES, "--ludii-ludeme-tokens", "--ludii-model-size", args.model_size,
             "--steps", str(args.sft_steps), "--batch-size", "8", "--lr", "5e-4", "--eval-every", "250",
             "--eval-batches", "2", *seed, "--out", str(RUNS / "sft"))
    up, url = serve_ludii()
    try:
        rlpr("train", "--task", "ludii", *GAMES, "--model", str(RUNS / "sft" / "checkpoint"), "--ludii-ludeme-tokens",
             "--reward-url", url, "--steps", str(args.ppo_steps), "--batch-size", "16", "--mini-batch-size", "8",
             "--ppo-epochs", "2", "--lr", "2e-5", "--reward-deadline-s", "900", *seed,
             "--out", str(RUNS / "ppo"))
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)


def rows(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = rows(RUNS / "ppo")
    keys = ["reward/mean"] + [f"reward_components/{c}" for c in COMPONENTS]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in data if key in r]
        if points:
            ax.plot(*zip(*points), lw=1.2, marker=".")
        ax.set_title(key.replace("reward_components/", "") + (" rate" if key.endswith(("compiles", "playable"))
                                                               else ""), fontsize=10)
        ax.set_xlabel("PPO step")
        ax.grid(alpha=0.3)
    fig.suptitle("Ludii game synthesis, PPO after FIM pre-training (one seed; cf. the paper's Fig. 9)", fontsize=11)
    fig.tight_layout()
    png = REPO / "docs" / "img" / "ludii_loop.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"wrote {png}")
    sft = [r for r in rows(RUNS / "sft") if "val/loss" in r]
    print(f"SFT validation loss: {sft[0]['val/loss']:.3f} -> {sft[-1]['val/loss']:.3f} over {sft[-1]['step'] + 1} steps")
    print("| PPO steps | reward | compiles | playable | balance | completion | decisiveness | time-limited items |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    third = max(1, len(data) // 3)
    for name, part in (("first third", data[:third]), ("last third", data[-third:])):
        cells = [statistics.fmean([r[k] for r in part if k in r]) if any(k in r for r in part) else float("nan")
                 for k in keys]
        limited = sum(r.get("reward/time_limit_items", 0) for r in part)
        print(f"| {name} ({part[0]['step']}-{part[-1]['step']}) | " + " | ".join(f"{c:.3f}" for c in cells)
              + f" | {limited:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft-steps", type=int, default=1500)
    parser.add_argument("--ppo-steps", type=int, default=60)
    parser.add_argument("--model-size", default="4x256")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        if not os.environ.get("LUDII_JAR"):
            from reward_service.ludii.engine import HOW_TO_GET_THE_JAR

            raise SystemExit(f"LUDII_JAR is not set. {HOW_TO_GET_THE_JAR}")
        run(args)
    report()


if __name__ == "__main__":
    main()
