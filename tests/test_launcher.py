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
