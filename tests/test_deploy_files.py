"""The compose file and Dockerfiles: validated by docker-compose where installed, and structurally."""
import os
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = {"redis", "reward-api", "cpu-worker", "ludii-worker"}


def load_compose():
    with open(os.path.join(REPO, "docker-compose.yml")) as handle:
        return yaml.safe_load(handle)


def read(name: str) -> str:
    return open(os.path.join(REPO, name)).read()


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose (Debian package) is not installed")
@pytest.mark.parametrize("profile", [[], ["--profile", "train"]])
def test_docker_compose_config_accepts_the_file_for_the_default_and_the_train_profile(profile):
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", *profile, "config"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "LUDII_SHA256": ""})
    assert result.returncode == 0, result.stderr
    assert set(yaml.safe_load(result.stdout)["services"]) == STACK | {"trainer"}


def test_plain_up_starts_the_service_stack_and_the_gpu_trainer_needs_its_profile():
    services = load_compose()["services"]
    assert services["trainer"]["profiles"] == ["train"]
    assert all("profiles" not in services[name] for name in STACK)  # no GPU needed for `docker compose up`
    assert "devices" in str(services["trainer"]["deploy"])


def test_topology_is_private_scalable_and_restarts_itself():
    compose = load_compose()
    services = compose["services"]
    assert compose["networks"]["backend"]["internal"] is True
    assert "ports" not in services["redis"] and services["redis"]["networks"] == ["backend"]
    for name in ("cpu-worker", "ludii-worker"):
        assert services[name]["networks"] == ["backend"]
        assert "container_name" not in services[name] and "ports" not in services[name]  # --scale works
        assert services[name]["healthcheck"]["test"][-1] == "reward_service.worker.healthcheck"
    for name in STACK:
        assert services[name]["restart"] == "unless-stopped" and "healthcheck" in services[name], name
    assert all(port.startswith("127.0.0.1:") for port in services["reward-api"]["ports"])
    assert "/livez" in str(services["reward-api"]["healthcheck"]["test"])
    assert services["ludii-worker"]["build"]["target"] == "ludii"
    assert "grpc://reward-api:50051" in services["trainer"]["command"]


def test_redis_memory_is_bounded_with_an_lru_policy_on_expiring_keys():
    command = load_compose()["services"]["redis"]["command"]
    assert "--maxmemory" in command and command[command.index("--maxmemory-policy") + 1] == "volatile-lru"


def test_classifier_workers_read_models_from_a_mounted_cache():
    worker = load_compose()["services"]["cpu-worker"]
    assert worker["environment"]["HF_HOME"] == "/models" and worker["environment"]["HF_HUB_OFFLINE"] == "1"
    assert any(volume.endswith(":/models:ro") for volume in worker["volumes"])


def test_the_build_context_leaves_out_environments_and_runs():
    ignored = read(".dockerignore").split()
    for entry in (".venv/", "runs/", ".git/", "**/__pycache__/", "**/*.jar"):
        assert entry in ignored
    assert ignored[-1] == "!docker/ludii/Ludii.jar"  # the one jar that may enter, after every exclusion


def test_dockerfiles_pin_cpu_torch_and_check_the_ludii_jar():
    ludii = read("Dockerfile.ludii")
    # torch from the CPU index alone: no PyPI fallback that could pull the CUDA build, and a check that fails the build if it did
    assert 'ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"' in ludii
    assert "PIP_EXTRA_INDEX_URL" not in ludii and ludii.count("${NO_CUDA_TORCH}") == 2
    assert "ludii.games/downloads/Ludii-" in ludii and "LUDII_JAR=" in ludii
    assert 'sha256sum -c' in ludii and "ARG LUDII_SHA256=" in ludii and "build-ludii-jar.sh" in ludii
    assert "FROM service AS ludii-base" in ludii and "openjdk" in ludii and "FROM ludii-base AS ludii" in ludii
    gpu = read("Dockerfile.gpu")
    assert "nvidia/cuda" in gpu and "torch==" in gpu and 'ENTRYPOINT ["rlpr", "train"]' in gpu
    for dockerfile in (ludii, gpu):
        assert "COPY reward_contract ./reward_contract" in dockerfile


def test_worker_healthcheck_follows_a_real_worker(workers, redis_url):
    env = {**os.environ, "REDIS_URL": redis_url}
    check = [os.sys.executable, "-m", "reward_service.worker.healthcheck"]
    absent = subprocess.run(check, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert absent.returncode == 1 and "no worker on host" in absent.stderr
    workers.start("arithmetic")
    present = subprocess.run(check, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert present.returncode == 0, present.stderr
