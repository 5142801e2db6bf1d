"""`rlpr up` end to end: starts its own Redis, the API and workers; restarts a dead worker; Ctrl-C stops all."""
import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest
from redis import Redis
from rq import Worker

from reward_contract.client import GrpcRewardClient
from reward_contract.types import RewardItem
from tests.conftest import REPO, free_port
from tests.system import wait_for


@pytest.mark.slow
def test_up_runs_the_topology_and_stops_cleanly_on_ctrl_c():
    redis_port, rest_port, grpc_port = free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"  # nothing listens there: `up` must start Redis
    launcher = subprocess.Popen(
        [sys.executable, "-m", "rlpr", "up", "--workers", "arithmetic=2,sentiment_vader=1",
         "--redis-url", redis_url, "--rest-addr", f"127.0.0.1:{rest_port}", "--grpc-addr", f"127.0.0.1:{grpc_port}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        redis = Redis.from_url(redis_url)
        wait_for(lambda: len(Worker.all(connection=redis)) == 3, 60, "three workers")
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{rest_port}/healthz").status_code == 200, 30, "the API")
        children = psutil.Process(launcher.pid).children(recursive=True)
        [redis_proc] = [c for c in children if "redis-server" in " ".join(c.cmdline())]
        listening = {c.laddr.ip for c in redis_proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}  # the Redis it starts listens on loopback only
        assert int(redis.config_get("maxmemory")["maxmemory"]) == 1 << 30  # and is bounded
        assert redis.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"

        client = GrpcRewardClient(f"127.0.0.1:{grpc_port}")
        items = [RewardItem(str(k), "", "23 + 4", {"previous": "23 + 1 + 3"}) for k in range(50)]
        assert all(r.ok and r.reward == 1.0 for r in client.score("arithmetic", items))
        assert client.score("sentiment_vader", [RewardItem("v", "", "lovely")])[0].reward > 0

        arithmetic_pids = {w.pid for w in Worker.all(connection=redis) if w.queue_names() == ["arithmetic"]}
        victim = min(arithmetic_pids)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: any(w.pid not in arithmetic_pids and w.queue_names() == ["arithmetic"]
                             for w in Worker.all(connection=redis)), 30,
                 "the killed worker to be replaced")
        assert all(r.ok for r in client.score("arithmetic", items))
        client.close()
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, output
    assert "restarting it in 0.5 s" in output and "all stopped" in output
    for child in children:
        assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE


def start_up(*args, env=None):
    redis_port, rest_port, grpc_port = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "rlpr", "up", "--redis-url", f"redis://127.0.0.1:{redis_port}/0",
               "--rest-addr", f"127.0.0.1:{rest_port}", "--grpc-addr", f"127.0.0.1:{grpc_port}", *args]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    return proc, redis_port, rest_port


@pytest.mark.slow
def test_up_exits_non_zero_naming_a_child_that_fails_to_start():
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        proc, _, _ = start_up("--workers", "arithmetic=1", "--rest-addr", f"127.0.0.1:{taken.getsockname()[1]}")
        output, _ = proc.communicate(timeout=60)
    finally:
        taken.close()
    assert proc.returncode == 1, output
    assert "api failed to start (exit code 2)" in output and "cannot be used" in output
    assert "all stopped" in output


@pytest.mark.slow
def test_a_worker_that_cannot_start_fails_up_and_names_it(tmp_path):
    broken = tmp_path / "Ludii.jar"
    broken.write_bytes(b"not a jar")
    proc, _, _ = start_up("--workers", "ludii=1", env={**os.environ, "LUDII_JAR": str(broken)})
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, output
    assert "ludii-1 failed to start (exit code 2)" in output


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hangup_and_terminate_stop_every_child(sig):
    proc, redis_port, rest_port = start_up("--workers", "arithmetic=1")
    redis = Redis(port=redis_port)
    wait_for(lambda: len(Worker.all(connection=redis)) == 1, 60, "the worker")
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{rest_port}/readyz").status_code == 200, 30, "the API")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3  # redis, the API, the worker
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0 and "all stopped" in output, output
    for child in children:
        assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE


def test_a_second_server_on_a_taken_grpc_port_fails_clearly(make_server):
    from tests.conftest import inprocess_service

    server = make_server(inprocess_service())
    result = subprocess.run([sys.executable, "-m", "rlpr", "serve", "--backend", "inprocess", "--grpc-addr",
                             server.grpc_target, "--rest-addr", f"127.0.0.1:{free_port()}"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"--grpc-addr: cannot listen for gRPC on {server.grpc_target}" in result.stderr
