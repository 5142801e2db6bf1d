"""The whole topology under training load and faults: nothing is lost, nothing is made up.

Each test starts real processes: `rlpr up` (Redis, the API, workers), `rlpr train`.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
from rq import Worker
from rq.registry import StartedJobRegistry

from reward_contract.client import GrpcRewardClient
from reward_contract.types import ItemStatus, RewardItem
from tests.conftest import REPO, free_port
from tests.system import PrivateRedis, Topology, metrics, metrics_so_far, train, wait_for

pytestmark = pytest.mark.slow


def test_end_to_end_training_against_rlpr_up(tmp_path):
    workers = "arithmetic=1,sentiment_vader=1" + (",ludii=1" if os.environ.get("LUDII_JAR") else "")
    topology = Topology(workers, tmp=tmp_path)
    try:
        rows = train(tmp_path / "run", "--steps", "3", "--reward-url", topology.grpc_url)
        assert [r["step"] for r in rows] == [0, 1, 2]
        assert all(r["reward/failed_items"] == 0 and r["reward/unavailable"] == 0 for r in rows)
        counts = topology.items_counted()
        # every item sent was counted once: three batches and the probe item scored at start-up
        assert sum(counts.values()) == 3 * 16 + 1
        assert sum(v for (status, _), v in counts.items() if status == "ok") == 3 * 16 + 1
    finally:
        log = topology.close()
    assert "all stopped" in log


def test_sentiment_training_against_rlpr_up(tmp_path):
    topology = Topology("sentiment_vader=1", tmp=tmp_path)
    try:
        out = tmp_path / "sentiment"
        command = [sys.executable, "-m", "rlpr", "train", "--task", "sentiment", "--steps", "2", "--batch-size", "8",
                   "--mini-batch-size", "4", "--ppo-epochs", "1", "--reward-url", topology.grpc_url, "--out", str(out)]
        run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        rows = metrics(out)
        assert len(rows) == 2 and all(r["reward/failed_items"] == 0 for r in rows)
        assert all(-1 <= r["reward/mean"] <= 1 for r in rows)
        assert sum(topology.items_counted().values()) == 2 * 8 + 1  # and the start-up probe
    finally:
        topology.close()


def test_sigkilled_worker_mid_training_loses_no_item(tmp_path):
    topology = Topology("test_slow=2", tmp=tmp_path)
    try:
        run = train(tmp_path / "run", "--steps", "4", "--reward-url", topology.grpc_url, "--reward", "test_slow",
                    "--reward-option", "sleep_s=0.05", "--reward-deadline-s", "60", wait=False)
        registry = StartedJobRegistry("test_slow", connection=topology.redis)

        def a_worker_running_a_job():  # read together: a job may end between the registry and the worker
            started = {entry.split(":")[0] for entry in registry.get_job_ids()}
            return next((w for w in Worker.all(connection=topology.redis) if w.get_current_job_id() in started), None)

        holder = wait_for(a_worker_running_a_job, 120, "a worker running a started job")
        os.kill(holder.pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
        rows = metrics(tmp_path / "run")
        assert len(rows) == 4 and all(r["reward/failed_items"] == 0 for r in rows)
        assert sum(v for (s, _), v in topology.items_counted().items() if s == "ok") == 4 * 16 + 1  # and the start-up probe
    finally:
        log = topology.close()
    assert "restarting it" in log


def test_redis_outage_mid_training_is_reported_masked_and_recovered(tmp_path):
    redis = PrivateRedis()
    topology = Topology("test_slow=1", redis_url=redis.url, tmp=tmp_path)
    try:
        # Enough steps that recovery (Redis back, workers reconnected) fits however slow the machine is.
        run = train(tmp_path / "run", "--steps", "30", "--reward-url", topology.grpc_url, "--reward", "test_slow",
                    "--reward-option", "sleep_s=0.02", "--reward-deadline-s", "8", "--overlap-rewards", "off", wait=False)
        wait_for(lambda: len(metrics_so_far(tmp_path / "run")) >= 1, 120, "the first step")
        redis.stop()
        time.sleep(6.0)  # longer than the client's retries with backoff (~3 s)
        redis.start()
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
        rows = metrics(tmp_path / "run")
        assert len(rows) == 30
        assert rows[0]["reward/failed_items"] == 0
        hit = [r for r in rows if r["reward/unavailable"]]
        assert hit, "the outage never reached the trainer"
        assert all(r["reward/failed_items"] == 16 for r in hit)  # masked whole, no invented reward
        assert all(r["reward/failed_items"] == 0 and r["reward/unavailable"] == 0 for r in rows[-3:])  # recovered
        assert "UNAVAILABLE" in topology.error_codes()
    finally:
        topology.close()
        redis.stop()


def test_api_server_restart_is_survived_by_the_client(tmp_path, redis_url, workers):
    workers.start("arithmetic")
    port = free_port()

    def serve():
        return subprocess.Popen([sys.executable, "-m", "rlpr", "serve", "--grpc-addr", f"127.0.0.1:{port}",
                                 "--rest-addr", f"127.0.0.1:{free_port()}", "--redis-url", redis_url],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    server = serve()
    client = GrpcRewardClient(f"127.0.0.1:{port}")
    item = [RewardItem("1", "", "23 + 4", {"previous": "23 + 1 + 3"})]
    try:
        assert client.score("arithmetic", item, deadline_s=30)[0].ok
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        server = serve()  # comes back on the same port; the same client object reconnects
        assert client.score("arithmetic", item, deadline_s=30)[0].ok
    finally:
        client.close()
        server.kill()
        server.wait()


def test_short_deadline_returns_promptly_with_per_item_timeouts(tmp_path):
    topology = Topology("test_slow=1", tmp=tmp_path)
    try:
        client = GrpcRewardClient(f"127.0.0.1:{topology.grpc_port}")
        items = [RewardItem(str(k), "", "x", {"sleep_s": "1"}) for k in range(4)]
        started = time.monotonic()
        results = client.score("test_slow", items, deadline_s=1.5)
        assert time.monotonic() - started < 4
        assert {r.status for r in results} <= {ItemStatus.OK, ItemStatus.TIMEOUT}
        assert ItemStatus.TIMEOUT in {r.status for r in results}
        time.sleep(2.5)  # late results land on the expired request's reply list, not the next one
        fresh = client.score("test_slow", [RewardItem("a", "", "abcd", {"sleep_s": "0"})], deadline_s=10)
        assert fresh[0].ok and fresh[0].reward == 4.0
        client.close()
    finally:
        topology.close()
