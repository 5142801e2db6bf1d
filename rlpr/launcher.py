"""`rlpr up`: the docker-compose topology as plain local processes.

Redis (started on loopback if none answers, with a memory bound), the API server, and N
workers per queue. Every child's output goes to this console with a name prefix. Start-up
waits until each child is ready; a child that fails to start stops everything, and `rlpr up`
exits non-zero naming it. Once running, a worker that exits is restarted (with backoff); the
API or Redis exiting stops everything. SIGINT, SIGTERM and SIGHUP stop all children,
workers first, Redis last.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
from redis import Redis
from redis.exceptions import RedisError

from reward_contract.errors import ConfigError
from reward_contract.settings import auth_token
from reward_service.config import ApiConfig, WorkerConfig

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CONFIG_ERROR_EXIT = 2  # what `rlpr` exits with on a configuration error
READY_TIMEOUT_S = {"redis": 10.0, "api": 60.0, "worker": 180.0}  # a Ludii worker compiles and starts a JVM


class StartFailed(Exception):
    pass


@dataclass
class UpConfig(ApiConfig):
    """Start Redis (if needed; on loopback when nothing answers at --redis-url), the reward API and its
    workers as local processes."""

    workers: str = "arithmetic=1,sentiment_vader=1"
    """Workers per queue, e.g. `arithmetic=2,sentiment_vader=1,ludii=2`."""
    redis_maxmemory: str = "1gb"
    """Memory bound of a Redis that `up` starts; keys with a TTL (the result cache first) are evicted LRU."""
    restart_workers: bool = True
    """Restart a worker that exits on its own (a crash, say)."""

    def __post_init__(self):
        super().__post_init__()
        if self.worker_counts.get("ludii"):
            from reward_service.ludii.engine import LudiiUnavailable, jar_path

            try:
                jar_path()
            except LudiiUnavailable as exc:
                raise ConfigError(f"--workers asks for ludii workers: {exc}") from None

    @property
    def worker_counts(self) -> dict[str, int]:
        counts = {}
        for part in filter(None, (p.strip() for p in self.workers.split(","))):
            queue, sep, count = part.partition("=")
            if not sep or not count.isdigit():
                raise ConfigError(f"--workers entry {part!r} is not QUEUE=COUNT, e.g. arithmetic=2")
            WorkerConfig(queues=queue)
            counts[queue] = int(count)
        return counts


class Launcher:
    def __init__(self, config: UpConfig):
        self.config = config
        self.children: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}
        self.stopping = threading.Event()
        self.given_up: set[str] = set()
        self.print_lock = threading.Lock()
        self.redis = Redis.from_url(config.redis_url, socket_connect_timeout=1, socket_timeout=5)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            self._start_all()
            if self.stopping.is_set():
                return 0
            self._say("up", f"ready: REST http://{self.config.rest_addr}, gRPC {self.config.grpc_addr}, "
                            f"workers {self.config.workers}")
            return self._supervise()
        except StartFailed as exc:
            self._say("up", f"error: {exc}")
            return 1
        finally:
            self._stop_all()

    # -- start-up ---------------------------------------------------------------------------------
    def _start_all(self) -> None:
        self._ensure_redis()
        self._start("api", [*_rlpr(), "serve", "--rest-addr", self.config.rest_addr, "--grpc-addr",
                            self.config.grpc_addr, "--redis-url", self.config.redis_url,
                            "--cache" if self.config.cache else "--no-cache"], self._api_ready, "api")
        for queue, count in self.config.worker_counts.items():
            for index in range(1, count + 1):
                name = f"{queue}-{index}"
                self._start(name, [*_rlpr(), "worker", "--queues", queue, "--redis-url", self.config.redis_url],
                            lambda child: self._worker_ready(child), "worker")

    def _start(self, name: str, command: list[str], ready, kind: str) -> None:
        child = self._spawn(name, command)
        deadline = time.monotonic() + READY_TIMEOUT_S[kind]
        while not self.stopping.is_set():
            code = child.poll()
            if code is not None:
                raise StartFailed(f"{name} failed to start (exit code {code}); its output is above")
            if ready(child):
                return
            if time.monotonic() > deadline:
                raise StartFailed(f"{name} was not ready within {READY_TIMEOUT_S[kind]:g} s; its output is above")
            time.sleep(0.1)

    def _api_ready(self, child) -> bool:
        try:
            return httpx.get(f"http://{self.config.rest_addr}/livez", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _worker_ready(self, child) -> bool:
        from rq import Worker

        try:
            return any(worker.pid == child.pid for worker in Worker.all(connection=self.redis))
        except RedisError:
            return False

    def _ensure_redis(self) -> None:
        try:
            self.redis.ping()
            self._say("up", f"using redis at {self.config.redis_url}")
            if not int(self.redis.config_get("maxmemory").get("maxmemory", 0)):
                self._say("up", "warning: this redis has no maxmemory; the result cache can grow without bound")
            return
        except RedisError:
            pass
        parsed = urlparse(self.config.redis_url)
        if parsed.hostname not in _LOOPBACK or not shutil.which("redis-server"):
            raise StartFailed(f"no redis answers at {self.config.redis_url}, and one can only be started on "
                              "loopback with redis-server installed (apt-get install redis-server)")
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(parsed.port or 6379), "--save", "",
                   "--appendonly", "no", "--protected-mode", "yes", "--maxmemory", self.config.redis_maxmemory,
                   "--maxmemory-policy", "volatile-lru"]
        self._start("redis", command, lambda child: self._redis_answers(), "redis")

    def _redis_answers(self) -> bool:
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False

    # -- running ----------------------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        # The token travels in the environment, not on a command line that `ps` shows.
        env = dict(os.environ, PYTHONUNBUFFERED="1", RLPR_AUTH_TOKEN=auth_token(self.config.auth_token))
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True, text=True, errors="replace")
        self.children[name] = child
        self.commands[name] = command
        self._say("up", f"started {name} (pid {child.pid})")
        threading.Thread(target=self._pump, args=(name, child), daemon=True).start()
        return child

    def _pump(self, name: str, child: subprocess.Popen) -> None:
        for line in child.stdout:
            self._say(name, line.rstrip())

    def _say(self, name: str, line: str) -> None:
        with self.print_lock:
            print(f"{name:>18} | {line}", flush=True)

    def _supervise(self) -> int:
        restarts: dict[str, int] = {}
        while not self.stopping.wait(0.5):
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or name in self.given_up:
                    continue
                if name in ("api", "redis") or not self.config.restart_workers:
                    self._say("up", f"{name} exited with code {code}; stopping everything")
                    return 1
                if code == CONFIG_ERROR_EXIT:  # restarting cannot fix a bad configuration
                    self._say("up", f"{name} refused its configuration (see above); not restarting it")
                    self.given_up.add(name)
                    continue
                restarts[name] = restarts.get(name, 0) + 1
                delay = min(30.0, 0.5 * 2 ** (restarts[name] - 1))  # back off a crash loop
                self._say("up", f"{name} exited with code {code}; restarting it in {delay:.1f} s")
                if self.stopping.wait(delay):
                    return 0
                self._spawn(name, self.commands[name])
        return 0

    def _stop_all(self) -> None:
        # Workers and the API first, so none of them sees Redis vanish mid-job; Redis last.
        self._stop([name for name in self.children if name != "redis"])
        self._stop(["redis"])
        self._say("up", "all stopped")

    def _stop(self, names: list[str], grace_s: float = 10.0) -> None:
        running = [self.children[n] for n in names if n in self.children and self.children[n].poll() is None]
        for child in running:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in running:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _rlpr() -> list[str]:
    return [sys.executable, "-m", "rlpr"]


def run_up(config: UpConfig) -> int:
    return Launcher(config).run()
