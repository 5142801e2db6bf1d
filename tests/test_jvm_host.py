"""The JPype host with a real JVM (no Ludii jar needed): start once, threads, timeout, no fork."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def probe(mode):
    result = subprocess.run([sys.executable, "-m", "tests.jvm_probe", mode], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_java_calls_from_several_threads_run_in_parallel():
    out = probe("threads")
    assert out["pid"] == out["me"]
    # JPype releases the GIL inside Java: two 0.4 s Java loops on two threads take far less than 0.8 s.
    if (os.cpu_count() or 1) >= 2:
        assert out["two_threads"] < 1.6 * out["one"], out


def test_deadline_stops_a_long_java_loop():
    out = probe("timeout")
    assert 5 <= out["steps"] < 1000 and out["elapsed"] < 1.5, out


def test_jvm_starts_once_per_process():
    out = probe("restart")
    assert out["refused"] and "cannot change" in out["message"]


def test_a_forked_child_refuses_to_touch_the_jvm():
    assert probe("fork")["child_exit"] == 3


def test_missing_jar_says_how_to_get_it(monkeypatch):
    from reward_service.ludii.engine import LudiiUnavailable, jar_path

    monkeypatch.delenv("LUDII_JAR", raising=False)
    with pytest.raises(LudiiUnavailable, match="ludii.games"):
        jar_path()
    monkeypatch.setenv("LUDII_JAR", "/nowhere/Ludii.jar")
    with pytest.raises(LudiiUnavailable, match="is not a file"):
        jar_path()


def test_ludii_worker_fails_fast_without_a_jar():
    env = {k: v for k, v in os.environ.items() if k != "LUDII_JAR"}
    result = subprocess.run([sys.executable, "-m", "rlpr", "worker", "--queues", "ludii", "--burst"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "LUDII_JAR is not set" in result.stderr


def test_a_ludii_worker_with_a_bad_heap_size_fails_fast_and_says_how_to_fix_it(tmp_path):
    from reward_service.ludii.jvm import heap_megabytes

    assert [heap_megabytes(size) for size in ("2g", "1536M", "2097152k")] == [2048, 1536, 2048]
    jar = tmp_path / "Ludii.jar"
    jar.write_bytes(b"")  # never opened: the heap size is checked before the JVM starts
    env = {**os.environ, "LUDII_JAR": str(jar), "RLPR_JVM_HEAP": "2gb"}
    result = subprocess.run([sys.executable, "-m", "rlpr", "worker", "--queues", "ludii", "--burst"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "RLPR_JVM_HEAP='2gb'" in result.stderr and "e.g. 2g" in result.stderr
