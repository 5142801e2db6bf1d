"""The service under faults: how long until it serves again, and how much work it does twice.

A Redis of its own, `rlpr serve` and two workers for a slow reward (3 s an item, like a Ludii
evaluation) run as processes with their default settings. Each fault is injected `--repeats`
times while one request (one item) is in flight, and measured from the moment the fault ends:

- evicted worker hash: Redis drops a live worker's hash (as `volatile-lru` may);
- redis stall 5 s: Redis frozen (SIGSTOP), then thawed;
- redis restart: Redis killed and started empty;
- worker killed mid-item: SIGKILL, the other worker takes the retry after `--dead-after-s` (20 s);
- worker stopped 5 s / 30 s mid-item: SIGSTOP then SIGCONT, shorter and longer than `--dead-after-s`.

"serve again" is the time from the fault's end until a new request is scored; "answer" the time
until the request in flight got its answer; "duplicate work" the item-seconds run twice.

    python bench/faults.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import httpx
from common import REPO, free_port, stop_processes, write_results

PLUGIN = "tests.plugins.fake_rewards:SLOW"
SCORED_COUNTER = "rlpr:test:scored"  # tests/plugins/fake_rewards.py counts finished items here
ITEM_S = 3.0


class Stack:
    def __init__(self):
        self.redis_port, self.rest_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = dict(os.environ, RLPR_REWARD_PLUGINS=PLUGIN)
        self.redis_proc = self._redis()
        self.api = subprocess.Popen(
            [sys.executable, "-m", "rlpr", "serve", "--rest-addr", f"127.0.0.1:{self.rest_port}", "--grpc-addr",
             "127.0.0.1:0", "--redis-url", self.redis_url, "--no-cache"], cwd=REPO, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.workers = [self._worker(), self._worker()]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.rest_port}", timeout=120)
        until(lambda: self.http.get("/readyz?reward=test_slow").status_code == 200, 60)

    def _redis(self):
        from redis import Redis

        proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.redis = Redis.from_url(self.redis_url)
        until(self.redis.ping, 10)
        return proc

    def _worker(self):
        return subprocess.Popen([sys.executable, "-m", "rlpr", "worker", "--queues", "test_slow", "--redis-url",
                                 self.redis_url], cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def score(self, sleep_s: float) -> dict:
        response = self.http.post("/v1/score", json={"reward": "test_slow", "deadline_ms": 90000, "item": {
            "id": "1", "completion": "abc", "reference": {"sleep_s": str(sleep_s)}}})
        return response.json() if response.status_code == 200 else {"status": f"http {response.status_code}"}

    def serve_again_s(self) -> float:
        started = time.monotonic()
        until(lambda: self.score(0.0).get("status") == "ok", 120, pause=0.05)
        return time.monotonic() - started

    def busy_worker(self):
        """The worker process running the item in flight."""
        from rq import Worker

        until(lambda: any(w.get_current_job_id() for w in Worker.all(connection=self.redis)), 10)
        busy = next(w for w in Worker.all(connection=self.redis) if w.get_current_job_id())
        return next(p for p in self.workers if p.pid == busy.pid)

    def close(self):
        stop_processes([self.api, *self.workers])
        self.redis_proc.terminate()
        self.redis_proc.wait()


def until(predicate, timeout: float, pause: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the service did not recover")
        time.sleep(pause)


def in_flight(stack: Stack) -> tuple[threading.Thread, dict]:
    answer: dict = {}

    def call():
        answer["result"] = stack.score(ITEM_S)
        answer["at"] = time.monotonic()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, answer


def evict_hash(stack: Stack) -> None:
    from rq import Worker

    stack.redis.delete(Worker.all(connection=stack.redis)[0].key)


def stall_redis(stack: Stack) -> None:
    stack.redis_proc.send_signal(signal.SIGSTOP)
    time.sleep(5)
    stack.redis_proc.send_signal(signal.SIGCONT)


def restart_redis(stack: Stack) -> None:
    stack.redis_proc.kill()
    stack.redis_proc.wait()
    stack.redis_proc = stack._redis()


def kill_worker(stack: Stack) -> None:
    victim = stack.busy_worker()
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    stack.workers[stack.workers.index(victim)] = stack._worker()


def stop_worker(seconds: float):
    def fault(stack: Stack) -> None:
        victim = stack.busy_worker()
        os.kill(victim.pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(victim.pid, signal.SIGCONT)
    return fault


# (name, fault, runs the item at most once): only a worker stopped past --dead-after-s (20 s) is
# taken for dead while alive, and then its item runs twice (delivery is at least once).
FAULTS = [("evicted worker hash", evict_hash, True), ("redis stall 5 s", stall_redis, True),
          ("redis restart", restart_redis, True), ("worker killed mid-item", kill_worker, True),
          ("worker stopped 5 s mid-item", stop_worker(5), True),
          ("worker stopped 30 s mid-item", stop_worker(30), False)]


def measure(stack: Stack, fault) -> dict:
    stack.redis.set(SCORED_COUNTER, 0)
    caller, answer = in_flight(stack)
    time.sleep(1.0)  # the item is running
    fault(stack)
    ended = time.monotonic()
    serve_again = stack.serve_again_s()
    caller.join(timeout=120)
    time.sleep(ITEM_S + 1)  # a second run of the item, if there is one, finishes meanwhile
    runs = int(stack.redis.get(SCORED_COUNTER) or 0) - 1  # minus serve_again's probe
    return {"serve_again_s": serve_again, "answer_s": answer["at"] - ended, "status": answer["result"]["status"],
            "duplicate_item_s": max(0, runs - 1) * ITEM_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    stack = Stack()
    rows, figures = [], []
    try:
        for name, fault, once in FAULTS:
            runs = [measure(stack, fault) for _ in range(args.repeats)]
            rows.append((name, runs))
            print(f"{name:<30} serve again median {statistics.median(r['serve_again_s'] for r in runs):6.2f} s "
                  f"max {max(r['serve_again_s'] for r in runs):6.2f} s | answer median "
                  f"{statistics.median(r['answer_s'] for r in runs):6.2f} s | duplicate work "
                  f"{sum(r['duplicate_item_s'] for r in runs) / len(runs):5.1f} item-s a fault | statuses "
                  f"{sorted({r['status'] for r in runs})}", flush=True)
            figures.append({"name": f"faults: serve again after {name} (max of {args.repeats})",
                            "value": max(r["serve_again_s"] for r in runs), "unit": "s", "target": "<= 5",
                            "note": f"median {statistics.median(r['serve_again_s'] for r in runs):.2f} s; the "
                                    f"request in flight answered "
                                    f"{statistics.median(r['answer_s'] for r in runs):.1f} s "
                                    f"after the fault ended (median), statuses {sorted({r['status'] for r in runs})}"})
            figures.append({"name": f"faults: duplicate work per fault, {name}", "unit": "item-s",
                            "value": sum(r["duplicate_item_s"] for r in runs) / len(runs),
                            "target": "<= 0" if once else "", "note": "" if once else "at least once: run again"})
    finally:
        stack.close()
    write_results("faults", figures)


if __name__ == "__main__":
    main()
