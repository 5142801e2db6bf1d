"""Shared fixtures: a real Redis database, real servers on port 0, real worker processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

PLUGINS = ",".join(f"tests.plugins.fake_rewards:{name}" for name in ("SLOW", "SLOW_TOO", "LIMITED", "OVERTIME", "EXPLOSIVE", "PID"))
# Test processes and the workers they spawn must know the same plugin rewards.
os.environ.setdefault("RLPR_REWARD_PLUGINS", PLUGINS)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_REDIS_URL = os.environ.get("RLPR_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url():
    from redis import Redis

    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        redis.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"tests need a real Redis at {TEST_REDIS_URL} ({exc}); start one with redis-server --daemonize yes")
    redis.flushdb()
    yield TEST_REDIS_URL
    redis.flushdb()


class WorkerProcs:
    """Starts `rlpr worker` processes and makes sure they are gone afterwards."""

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self.procs: list[subprocess.Popen] = []

    def start(self, queues: str, heartbeat_s: float = 0.5, redis_url: str | None = None,
              dead_after_s: float = 2.0, stop_grace_s: float = 25.0) -> subprocess.Popen:
        """A worker on the fixture's Redis, or on `redis_url` (a private Redis a test may stop). It is
        declared dead after `dead_after_s`, so tests of a killed worker's retry run in seconds."""
        redis_url = redis_url or self.redis_url
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlpr", "worker", "--queues", queues, "--redis-url", redis_url,
             "--heartbeat-s", str(heartbeat_s), "--dead-after-s", str(dead_after_s),
             "--stop-grace-s", str(stop_grace_s)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.procs.append(proc)
        self.wait_registered(proc, redis_url)
        return proc

    def wait_registered(self, proc: subprocess.Popen, redis_url: str, timeout: float = 60) -> None:
        from redis import Redis
        from rq import Worker

        redis = Redis.from_url(redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(worker.pid == proc.pid for worker in Worker.all(connection=redis)):
                return
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with code {proc.returncode} before registering")
            time.sleep(0.1)
        raise TimeoutError(f"the worker did not register within {timeout} s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def workers(redis_url):
    procs = WorkerProcs(redis_url)
    yield procs
    procs.stop()


class RunningServer:
    """gRPC and REST fronts of one RewardService, on real sockets with free ports, in a thread."""

    def __init__(self, service, token: str = "", max_request_bytes: int = 32 << 20):
        from reward_service.fronts.server import Fronts

        self.service = service
        self.fronts = Fronts(service, "127.0.0.1:0", "127.0.0.1:0", token, max_request_bytes).start_in_thread()
        self.grpc_port = self.fronts.grpc_port
        self.rest_port = self.fronts.rest_port

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.grpc_target}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def close(self) -> None:
        self.fronts.join()


@pytest.fixture
def make_server():
    servers = []

    def make(service, **kwargs) -> RunningServer:
        server = RunningServer(service, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def inprocess_service():
    """What `rlpr serve --backend inprocess` runs: rewards on a thread pool, never on the event loop."""
    from reward_service.config import ServeConfig
    from reward_service.core.service import RewardService

    return RewardService.from_config(ServeConfig(backend="inprocess"))


@pytest.fixture
def embedded_server(make_server):
    return make_server(inprocess_service())


@pytest.fixture
def queue_service(redis_url):
    from reward_service.config import ServeConfig
    from reward_service.core.service import RewardService

    return RewardService.from_config(ServeConfig(redis_url=redis_url, deadline_s=60))
