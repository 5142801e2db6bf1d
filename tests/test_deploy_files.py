"""The compose file and Dockerfiles: validated by docker-compose where installed, and structurally."""
import os
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_compose():
    with open(os.path.join(REPO, "docker-compose.yml")) as handle:
        return yaml.safe_load(handle)


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose (Debian package) is not installed")
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "--services"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"redis", "reward-api", "cpu-worker", "ludii-worker", "trainer"}


def test_topology_is_private_and_scalable():
    compose = load_compose()
    services = compose["services"]
    assert compose["networks"]["backend"]["internal"] is True
    assert "ports" not in services["redis"] and services["redis"]["networks"] == ["backend"]
    for name in ("cpu-worker", "ludii-worker"):
        assert services[name]["networks"] == ["backend"]
        assert "container_name" not in services[name] and "ports" not in services[name]  # --scale works
    assert all(port.startswith("127.0.0.1:") for port in services["reward-api"]["ports"])
    ludii = services["ludii-worker"]
    assert ludii["build"] == {"context": ".", "dockerfile": "Dockerfile.ludii", "target": "ludii"}
    assert services["trainer"]["build"]["dockerfile"] == "Dockerfile.gpu"
    assert "grpc://reward-api:50051" in services["trainer"]["command"]


def test_dockerfiles_fetch_ludii_and_pin_torch():
    ludii = open(os.path.join(REPO, "Dockerfile.ludii")).read()
    assert "ludii.games/downloads/Ludii-" in ludii and "LUDII_JAR=" in ludii
    assert "FROM service AS ludii" in ludii and "openjdk" in ludii
    gpu = open(os.path.join(REPO, "Dockerfile.gpu")).read()
    assert "nvidia/cuda" in gpu and "torch==" in gpu and 'ENTRYPOINT ["rlpr", "train"]' in gpu
