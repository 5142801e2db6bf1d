"""Helpers for whole-system tests: `rlpr up`, a private Redis, `rlpr train` runs, Prometheus scrapes."""
from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import httpx
from redis import Redis
from rq import Worker

from tests.conftest import REPO, free_port


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def service_on(redis_url: str, **config):
    """A queue-backed RewardService over `redis_url`, configured as `rlpr serve` would be by `config`."""
    from reward_service.config import ServeConfig
    from reward_service.core.service import RewardService

    return RewardService.from_config(ServeConfig(redis_url=redis_url, **config))


class PrivateRedis:
    """A redis-server of our own on a free loopback port, so a test may stop and restart it."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = args  # more redis-server options, e.g. --maxmemory 8mb
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", *self.args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: Redis.from_url(self.url).ping(), 10, "redis")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


class ServeProcess:
    """`rlpr serve` in a process of its own (what a test measures, or configures by environment)."""

    def __init__(self, *args: str, env: dict | None = None):
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlpr", "serve", "--rest-addr", f"127.0.0.1:{self.rest_port}",
             "--grpc-addr", f"127.0.0.1:{self.grpc_port}", *args],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: httpx.get(f"{self.rest_url}/livez").status_code == 200, 60, "rlpr serve")
        except TimeoutError:
            self.close()
            raise

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def rss_mb(self) -> float:
        status = pathlib.Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Topology:
    """`rlpr up` on free ports; its output is kept in a log file for failure messages."""

    def __init__(self, workers: str, redis_url: str | None = None, token: str = "", tmp: pathlib.Path = None,
                 env: dict | None = None):
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.redis_url = redis_url or f"redis://127.0.0.1:{free_port()}/0"
        self.log = (tmp or pathlib.Path("/tmp")) / f"up-{self.grpc_port}.log"
        expected = sum(int(part.split("=")[1]) for part in workers.split(","))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlpr", "up", "--workers", workers, "--redis-url", self.redis_url,
             "--rest-addr", f"127.0.0.1:{self.rest_port}", "--grpc-addr", f"127.0.0.1:{self.grpc_port}",
             "--auth-token", token],
            cwd=REPO, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        self.redis = Redis.from_url(self.redis_url)
        wait_for(lambda: len(Worker.all(connection=self.redis)) >= expected, 90, f"{expected} workers")
        wait_for(lambda: httpx.get(f"{self.rest_url}/healthz").status_code == 200, 60, "the API")

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def items_counted(self, token: str = "") -> dict[tuple[str, str], float]:
        """(status, cached) -> count, summed over rewards, from the API's Prometheus endpoint."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        text = httpx.get(f"{self.rest_url}/metrics", headers=headers).text
        counts: dict[tuple[str, str], float] = {}
        for cached, status, value in re.findall(
                r'rlpr_items_total\{cached="(\w+)",reward="\w+",status="(\w+)"\} ([\d.e+]+)', text):
            counts[(status, cached)] = counts.get((status, cached), 0.0) + float(value)
        return counts

    def error_codes(self) -> set[str]:
        """gRPC codes of requests the API rejected or failed, from its Prometheus endpoint."""
        text = httpx.get(f"{self.rest_url}/metrics").text
        return set(re.findall(r'rlpr_request_errors_total\{code="(\w+)",front="\w+"\} [1-9]', text))

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text()


def train(out: pathlib.Path, *extra: str, wait: bool = True, timeout: float = 400):
    command = [sys.executable, "-m", "rlpr", "train", "--task", "arithmetic", "--arithmetic-model-size", "1x32",
               "--batch-size", "16", "--mini-batch-size", "8", "--ppo-epochs", "1", "--out", str(out), *extra]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-4000:]
    return metrics(out)


def metrics(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def metrics_so_far(out: pathlib.Path) -> list[dict]:
    """The rows a running trainer has written: none before the file exists, and never a half-written line."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # the text after the last newline may still be being written
    return [json.loads(line) for line in lines]
