"""Helpers shared by the benchmark scripts: timing, percentiles, a results file for bench/report.py."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def ludii_games(split: str) -> list[dict]:
    """The paper's Ludii games of `split`: from the folder $RLPR_LUDII_DATA names, else the paper's own
    files, downloaded once into rlpr's cache (as `rlpr ludii-data` does)."""
    from trainer.tasks.ludii_games import games

    return games(split, os.environ.get("RLPR_LUDII_DATA", ""))


def ludii_game_named(name: str) -> str:
    from trainer.tasks.ludii_games import game_named

    return game_named(name, os.environ.get("RLPR_LUDII_DATA", ""))


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def timed_runs(call, min_seconds=1.5, min_runs=5, max_runs=10_000):
    """Call repeatedly; return the list of per-call latencies in seconds."""
    latencies = []
    started = time.perf_counter()
    while len(latencies) < max_runs and (len(latencies) < min_runs or time.perf_counter() - started < min_seconds):
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return latencies


def summary(latencies, items_per_call):
    return {
        "items_per_s": items_per_call * len(latencies) / sum(latencies),
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer of `vocab_size` tokens (<pad>, <unk>, <eos>, w3, w4, ...) for models built
    from a config: a model hub's tokenizer at any vocabulary size, with nothing to download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<eos>", *(f"w{i}" for i in range(3, vocab_size))])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                                   padding_side="left")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    speed = f"{python_loop_seconds():.2f} s a 10⁷-step Python loop"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {speed}"


def python_loop_seconds() -> float:
    """A speed gauge: machines of one name ran the same benchmarks 2.4x apart, so each run says how
    fast its machine was (best of three `sum(range(10**7))`)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        sum(range(10**7))
        best = min(best, time.perf_counter() - started)
    return best


def write_results(name: str, figures: list[dict]) -> None:
    """Figures go to $RLPR_BENCH_OUT/<name>.json when report.py runs us."""
    out = os.environ.get("RLPR_BENCH_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{name}.json"), "w") as handle:
            json.dump({"machine": machine(), "figures": figures}, handle, indent=2)


def start_worker(queues: str, redis_url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlpr", "worker", "--queues", queues, "--redis-url", redis_url],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_fronts(redis_url: str, cache: bool = False):
    """Both fronts of a queue-backed service in this process (as the benchmarks always measured them);
    returns the running `Fronts` (grpc_port, rest_port; `.join()` to stop)."""
    from reward_service.config import ServeConfig
    from reward_service.core.service import RewardService
    from reward_service.fronts.server import Fronts

    service = RewardService.from_config(ServeConfig(redis_url=redis_url, cache=cache))
    return Fronts(service, "127.0.0.1:0", "127.0.0.1:0").start_in_thread()


def wait_workers(redis, count, timeout=30):
    from rq import Worker

    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=redis)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not start")
        time.sleep(0.1)


def stop_processes(procs) -> None:
    """SIGTERM each process group we started, then reap it."""
    import signal

    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
