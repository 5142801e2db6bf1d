"""`docker compose up`, for real: the project's own Dockerfiles and compose file on a real Docker engine.

The images build from a copy of this checkout (layers are cached, so only the first build is slow),
the stack starts with two Ludii workers, and it is scored over REST and gRPC, Ludii included. A
worker container's process is killed mid-job: its restart policy brings it back and the batch loses
nothing. `docker-compose down` must leave no container, network or volume behind.

What differs on a machine that cannot reach PyTorch's CPU index or the Ludii release enters as files
of the build context (a local CPU torch wheel from pip's find-links, the jar from LUDII_JAR) and one
build argument, never as edits to what users run. Skips, saying why, where no Docker engine answers.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import threading
import time

import httpx
import pytest

from reward_contract.client import GrpcRewardClient
from reward_contract.types import ItemStatus, RewardItem
from tests.conftest import REPO, free_port
from tests.ludii_games import game_named
from tests.system import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
BUILD_TIMEOUT_S = 1500
TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def _engine_problem() -> str:
    if not shutil.which("docker-compose"):
        return "docker-compose is not installed (Debian: apt-get install docker-compose)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine answers ({exc})"
    return "" if info.returncode == 0 else f"no Docker engine answers: {info.stderr.strip()[-200:]}"


def _local_torch_wheel() -> pathlib.Path | None:
    """The CPU torch wheel in one of pip's find-links folders, for a machine without the CPU index."""
    found = subprocess.run(["python3", "-m", "pip", "config", "get", "global.find-links"], capture_output=True,
                           text=True).stdout.split()
    return next((pathlib.Path(d, TORCH_WHEEL) for d in found if pathlib.Path(d, TORCH_WHEEL).is_file()), None)


def _local_jar() -> pathlib.Path | None:
    jar = os.environ.get("LUDII_JAR") or os.path.expanduser("~/.cache/rlpr/ludii/Ludii.jar")
    return pathlib.Path(jar) if os.path.isfile(jar) else None


def _reachable(host: str) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def _download_problem() -> str:
    """What the build would have to download and cannot, with no local file standing in for it."""
    if _local_torch_wheel() is None and not _reachable("download.pytorch.org"):
        return "PyTorch's CPU index is unreachable and pip's find-links hold no CPU torch wheel"
    if _local_jar() is None and not _reachable("github.com"):
        return "no Ludii jar (LUDII_JAR) and github.com is unreachable to build one from source"
    return ""


ENGINE_PROBLEM = _engine_problem() or _download_problem()
if ENGINE_PROBLEM:
    pytestmark.append(pytest.mark.skip(reason=ENGINE_PROBLEM))


def _build_context(into: pathlib.Path) -> list[str]:
    """A copy of this checkout as a user has it (tracked and untracked files, nothing git ignores), plus
    the local files for what this machine cannot download. Returns the build arguments they need."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = pathlib.Path(REPO, name)
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    build_args = []
    wheel = _local_torch_wheel()
    if wheel is not None:
        shutil.copy2(wheel, into / "docker" / "wheels" / wheel.name)
        build_args = ["--build-arg", "TORCH_PIP_ARGS=--find-links /tmp/wheels"]
    jar = _local_jar()
    if jar is not None:
        shutil.copy2(jar, into / "docker" / "ludii" / "Ludii.jar")
    return build_args


class Stack:
    def __init__(self, directory: pathlib.Path):
        self.directory = directory
        self.project = f"rlprtest{os.getpid()}"
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.env = {**os.environ, "RLPR_REST_PORT": str(self.rest_port), "RLPR_GRPC_PORT": str(self.grpc_port),
                    "RLPR_AUTH_TOKEN": "", "LUDII_SHA256": ""}

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker-compose", "-p", self.project, *args], cwd=self.directory, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def inspect(self, container: str) -> dict:
        return json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                                         check=True).stdout)[0]

    def redis_cli(self, *args: str) -> str:
        return self.compose("exec", "-T", "redis", "redis-cli", "--raw", *args).stdout

    def workers(self, queue: str) -> dict[str, int]:
        """Live RQ workers serving `queue`: name -> jobs done (read in the stack's own Redis)."""
        done = {}
        for key in self.redis_cli("smembers", "rq:workers").split():
            queues, count = self.redis_cli("hmget", key, "queues", "successful_job_count").splitlines()[:2]
            if queue in queues.split(","):
                done[key] = int(count or 0)
        return done

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def score_fresh(self, reward: str, completions: list[str], options: dict) -> list[dict]:
        """A batch over REST that the result cache may not answer: every item is evaluated."""
        body = {"reward": reward, "items": [{"id": str(k), "completion": c} for k, c in enumerate(completions)],
                "options": options, "deadline_ms": 600_000, "no_cache": True}
        response = httpx.post(self.rest_url + "/v1/score:batch", json=body, timeout=660)
        assert response.status_code == 200, response.text
        return response.json()["results"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("compose"))
    build_args = _build_context(stack.directory)
    stack.compose("build", *build_args, timeout=BUILD_TIMEOUT_S)
    try:
        stack.compose("up", "-d", "--scale", "ludii-worker=2", timeout=600)
        wait_for(lambda: httpx.get(stack.rest_url + "/readyz?reward=ludii", timeout=5).json()["workers"]["ludii"] == 2,
                 240, "the stack to serve ludii with 2 workers")
        wait_for(lambda: all(stack.inspect(c)["State"]["Health"]["Status"] == "healthy"
                             for c in stack.compose("ps", "-q").stdout.split()), 240, "every healthcheck to pass")
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=900, check=False)


def test_every_service_runs_as_a_non_root_user_on_a_read_only_root(stack):
    for service in ("redis", "reward-api", "cpu-worker", "ludii-worker"):
        for container in stack.containers(service):
            config = stack.inspect(container)
            assert config["HostConfig"]["ReadonlyRootfs"] is True, service
    for service in ("reward-api", "cpu-worker", "ludii-worker"):  # our images; redis's own drops root itself
        user = stack.inspect(stack.containers(service)[0])["Config"]["User"]
        assert user not in ("", "0", "root"), (service, user)


def test_the_stack_scores_over_rest_and_grpc_with_a_ludii_game(stack):
    body = {"reward": "arithmetic", "item": {"id": "1", "completion": "23 + 4", "reference": {"previous": "23 + 1 + 3"}}}
    answer = httpx.post(stack.rest_url + "/v1/score", json=body, timeout=60).json()
    assert answer["status"] == "ok" and answer["reward"] == 1.0
    client = GrpcRewardClient(f"127.0.0.1:{stack.grpc_port}")
    try:
        [game] = client.score("ludii", [RewardItem("ttt", "", game_named("Tic-Tac-Toe"))], deadline_s=300)
        [vader] = client.score("sentiment_vader", [RewardItem("v", "", "What a wonderful, moving film.")])
    finally:
        client.close()
    assert game.status is ItemStatus.OK and game.components["compiles"] == 1.0 and 0 < game.reward <= 1
    assert vader.ok and vader.reward > 0.5


def test_both_scaled_ludii_workers_serve(stack):
    before = stack.workers("ludii")
    assert len(before) == 2
    # Eight jobs enqueued at once: each worker blocked on the queue takes one as they arrive.
    results = stack.score_fresh("ludii", [game_named("Tic-Tac-Toe")] * 8, {"playouts": 100})
    assert [r["status"] for r in results] == ["ok"] * 8
    wait_for(lambda: sum(stack.workers("ludii").values()) >= sum(before.values()) + 8, 10, "RQ's job counts")
    after = stack.workers("ludii")
    assert all(after[name] > before.get(name, 0) for name in after), (before, after)


def test_a_killed_worker_is_restarted_and_its_batch_loses_nothing(stack):
    victim = stack.containers("ludii-worker")[0]
    restarts = stack.inspect(victim)["RestartCount"]
    names_before = set(stack.workers("ludii"))
    outcome = {}
    scorer = threading.Thread(target=lambda: outcome.update(results=stack.score_fresh(
        "ludii", [game_named("Backgammon")] * 4, {"playouts": 20, "time_limit_s": 120})))
    scorer.start()
    wait_for(lambda: int(stack.redis_cli("zcard", "rq:wip:ludii")) == 2, 60, "both ludii workers to start a game")
    time.sleep(1.0)
    os.kill(stack.inspect(victim)["State"]["Pid"], 9)  # the worker's main process, as a crash or the OOM killer would
    scorer.join(660)
    results = outcome["results"]
    assert [r["status"] for r in results] == ["ok"] * 4, [r["error"] for r in results]
    assert [r["components"]["playouts"] for r in results] == [20.0] * 4
    state = stack.inspect(victim)
    assert state["RestartCount"] > restarts and state["State"]["Running"]
    wait_for(lambda: set(stack.workers("ludii")) - names_before, 180, "the restarted worker to register again")


def test_down_leaves_no_container_network_or_volume(stack):
    stack.compose("down", "-v", "--remove-orphans", timeout=900)
    label = f"label=com.docker.compose.project={stack.project}"
    for kind in ("ps -a", "network ls", "volume ls"):
        left = subprocess.run(["docker", *kind.split(), "--filter", label, "-q"], capture_output=True, text=True,
                              check=True).stdout.split()
        assert left == [], (kind, left)
