"""The `rlpr` command: help, unknown commands, config from flags and environment."""
import math
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
    for command in ("serve", "worker", "up", "score", "rewards", "train", "sft", "ludii-data"):
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


def test_the_token_is_read_from_the_environment_and_never_printed(make_server):
    from tests.conftest import inprocess_service

    env = dict(os.environ, RLPR_AUTH_TOKEN="supersecret-token")
    for command in ("train", "sft", "serve", "up", "score", "worker"):
        help_text = rlpr(command, "--help", env=env).stdout
        assert "supersecret-token" not in help_text, command
    server = make_server(inprocess_service(), token="supersecret-token")
    scored = rlpr("score", "--reward", "sentiment_vader", "--completion", "lovely", "--url",
                  f"grpc://{server.grpc_target}", env=env)
    assert scored.returncode == 0 and '"status": "ok"' in scored.stdout, scored.stderr
    refused = rlpr("score", "--reward", "sentiment_vader", "--completion", "lovely", "--url",
                   f"grpc://{server.grpc_target}", env={k: v for k, v in env.items() if k != "RLPR_AUTH_TOKEN"})
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr


def test_clients_on_the_command_line_never_hang_on_a_dead_address(tmp_path):
    import time

    from tests.conftest import free_port

    dead = f"grpc://127.0.0.1:{free_port()}"
    started = time.monotonic()
    score = rlpr("score", "--reward", "arithmetic", "--completion", "1", "--url", dead)
    assert score.returncode == 1 and f"no reward service answers at {dead[7:]}" in score.stderr
    sft = rlpr("sft", "--arithmetic-model-size", "1x32", "--steps", "2", "--eval-every", "2", "--eval-batches", "1",
               "--batch-size", "4", "--reward-url", dead, "--out", str(tmp_path))
    assert sft.returncode == 1 and dead[7:] in sft.stderr, sft.stderr[-2000:]
    assert time.monotonic() - started < 60


def test_repeated_key_value_flags_append():
    """tyro keeps only the last of a repeated list flag unless told otherwise; users expect all."""
    result = rlpr("score", "--reward", "arithmetic", "--completion", "25", "--reference", "previous=20 + 3 + 4",
                  "--reference", "target=27", "--option", "lenient=true", "--option", "scale=5")
    assert result.returncode == 0, result.stderr
    # lenient (a one-term answer to a three-term step is allowed) and scale 5 both apply: 2/(1+e^(2/5))
    assert '"reward": 0.802' in result.stdout


def test_training_checks_the_reward_service_at_start_up():
    from tests.conftest import free_port

    unknown = rlpr("train", "--arithmetic-model-size", "1x32", "--steps", "1", "--reward", "sentimant")
    assert unknown.returncode == 2 and "has no reward 'sentimant'" in unknown.stderr and "sentiment_vader" in unknown.stderr
    dead = f"127.0.0.1:{free_port()}"
    unreachable = rlpr("train", "--arithmetic-model-size", "1x32", "--steps", "1", "--reward-url", f"grpc://{dead}")
    assert unreachable.returncode == 1 and f"no reward service answers at {dead}" in unreachable.stderr


def test_rlpr_score_names_its_own_flag_for_a_bad_url():
    result = rlpr("score", "--reward", "arithmetic", "--completion", "1", "--url", "http://127.0.0.1:1",
                  env=dict(os.environ, COLUMNS="300"))  # the error box would wrap the message
    assert result.returncode != 0 and "--url 'http://127.0.0.1:1' must look like grpc://HOST:PORT" in result.stderr
    assert "--reward-url" not in result.stderr


def test_an_item_needs_only_an_id_and_its_completion():
    from reward_contract.client import make_client
    from reward_contract.types import RewardItem

    client = make_client()
    [result] = client.score("arithmetic", [RewardItem("1", completion="23 + 4", reference={"previous": "23 + 1 + 3"})])
    assert result.ok and result.reward == 2 / (1 + math.exp(0))
