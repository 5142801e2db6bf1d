"""The `rlpr` command: help, unknown commands, config from flags and environment."""
import os
import subprocess
import sys

from tests.conftest import REPO


def rlpr(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rlpr", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def test_usage_lists_every_command():
    result = rlpr("--help")
    assert result.returncode == 0
    for command in ("serve", "worker", "up", "score", "train", "sft", "ludii-data"):
        assert command in result.stdout
    unknown = rlpr("trian")
    assert unknown.returncode == 2 and "unknown command 'trian'" in unknown.stderr


def test_addresses_and_redis_come_from_the_environment():
    env = dict(os.environ, RLPR_REST_ADDR="127.0.0.1:18080", RLPR_GRPC_ADDR="127.0.0.1:15055",
               REDIS_URL="redis://127.0.0.1:6399/2")
    probe = ("from reward_service.config import ServeConfig; c = ServeConfig(); "
             "print(c.rest_addr, c.grpc_addr, c.redis_url)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["127.0.0.1:18080", "127.0.0.1:15055", "redis://127.0.0.1:6399/2"]
    defaults = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                              env={k: v for k, v in os.environ.items()
                                   if k not in ("RLPR_REST_ADDR", "RLPR_GRPC_ADDR", "REDIS_URL")})
    assert defaults.stdout.split() == ["127.0.0.1:8000", "127.0.0.1:50051", "redis://127.0.0.1:6379/0"]


def test_bad_service_config_says_how_to_fix_it():
    bad_addr = rlpr("serve", "--grpc-addr", "localhost")
    assert bad_addr.returncode != 0 and "is not HOST:PORT" in bad_addr.stderr
    bad_queue = rlpr("worker", "--queues", "arithmetc")
    assert bad_queue.returncode != 0 and "valid queues" in bad_queue.stderr
    bad_workers = rlpr("up", "--workers", "arithmetic")
    assert bad_workers.returncode != 0 and "QUEUE=COUNT" in bad_workers.stderr
    no_jar = rlpr("up", "--workers", "ludii=1", env={k: v for k, v in os.environ.items() if k != "LUDII_JAR"})
    assert no_jar.returncode != 0 and "ludii.games" in no_jar.stderr


def test_score_command_in_process():
    result = rlpr("score", "--reward", "arithmetic", "--completion", "23 + 4", "--reference", "previous=23 + 1 + 3")
    assert result.returncode == 0 and '"reward": 1.0' in result.stdout


def test_missing_data_or_model_is_a_config_error_not_a_traceback(tmp_path):
    prompts = rlpr("train", "--task", "sentiment", "--sentiment-prompts", str(tmp_path / "nope.txt"), "--steps", "1")
    assert prompts.returncode == 2 and "nope.txt" in prompts.stderr and "Traceback" not in prompts.stderr
    model = rlpr("sft", "--model", str(tmp_path / "no-model"), "--steps", "1")
    assert model.returncode == 2 and "no-model" in model.stderr and "Traceback" not in model.stderr
