"""OpenRLHF's remote reward calls, as OpenRLHF makes them: one sample per POST to /openrlhf/<reward>
(its `--reward.remote_url`), many in flight at once (its rollout executors send each sample's request
as soon as the sample is generated, up to their concurrency limit).

Starts `rlpr up` (Redis, the API, 2 arithmetic workers), then for each concurrency C runs C clients
that each post single arithmetic samples back to back for --seconds, and reports the latency of one
sample (p50, p99) and the samples scored per second.

    python bench/openrlhf.py [--seconds 10] [--concurrency 1,8,32,128]
"""
from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import threading
import time

import httpx
from common import REPO, free_port, percentile, write_results


def start_service() -> tuple[subprocess.Popen, str]:
    rest, grpc_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rlpr", "up", "--workers", "arithmetic=2", "--no-cache",
                             "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--rest-addr", f"127.0.0.1:{rest}",
                             "--grpc-addr", f"127.0.0.1:{grpc_port}"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{rest}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz?reward=arithmetic", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("rlpr up did not become ready")


def sample(rng: random.Random) -> dict:
    """One sample as OpenRLHF posts it: the query is the prompt followed by the response."""
    prompt = f"{rng.randint(0, 9)} + {rng.randint(0, 9)} + {rng.randint(0, 9)} ="
    response = f" {rng.randint(0, 18)} + {rng.randint(0, 9)}<|endoftext|>"
    return {"query": [prompt + response], "prompts": [prompt], "labels": [prompt.rstrip(" =")]}


def run(url: str, clients: int, seconds: float) -> tuple[list[float], int]:
    latencies, errors, lock = [], [0], threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=180) as http:  # OpenRLHF's timeout
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    ok = http.post("/openrlhf/arithmetic", json=sample(rng)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,8,32,128")
    args = parser.parse_args()
    proc, url = start_service()
    figures = []
    try:
        run(url, 4, 2.0)  # warm the connections and the workers
        print(f"{'in flight':>9} {'samples/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for clients in (int(c) for c in args.concurrency.split(",")):
            latencies, errors = run(url, clients, args.seconds)
            rate = len(latencies) / args.seconds
            p50, p99 = 1000 * percentile(latencies, 50), 1000 * percentile(latencies, 99)
            print(f"{clients:>9} {rate:>10.0f} {p50:>8.1f} {p99:>8.1f} {errors:>7}", flush=True)
            figures += [
                {"name": f"OpenRLHF single-sample latency p50, {clients} in flight", "value": p50, "unit": "ms",
                 "target": "", "note": f"p99 {p99:.1f} ms, {rate:.0f} samples/s, {errors} errors"},
            ]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    write_results("openrlhf", figures)


if __name__ == "__main__":
    main()
