"""rlpr_verifiers (integrations/rlpr-verifiers) against the real verifiers package from PyPI, in its own venv
(`make verifiers-env`), with a real `rlpr up` serving: the environment builds, hand-written rollouts are
scored through its tasks' rewards with no model, and each reward equals `rlpr score` on the same item."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.ludii_games import SHARED
from tests.system import Topology

REPO = pathlib.Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO / ".venv-verifiers" / "bin" / "python"

pytestmark = pytest.mark.skipif(not (REPO / ".venv-verifiers" / ".installed").exists(),
                                reason="no verifiers venv: `make verifiers-env` builds it (`make test` does)")


def rlpr_score(row: dict) -> dict:
    args = [sys.executable, "-m", "rlpr", "score", "--reward", row["reward_name"], "--prompt", row["prompt"],
            "--completion", row["reply"]]
    args += [f"--reference={k}={v}" for k, v in row["reference"].items()]
    args += [f"--option={k}={v}" for k, v in row["options"].items()]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_verifiers_scores_hand_written_rollouts_as_rlpr_score_does(tmp_path):
    tasks, workers, games = ["arithmetic", "sentiment"], "arithmetic=1,sentiment_vader=1", ""
    if os.environ.get("LUDII_JAR"):
        tasks, workers, games = tasks + ["ludii"], workers + ",ludii=1", str(SHARED / "games_train.json")
    topology = Topology(workers, tmp=tmp_path)
    try:
        done = subprocess.run([str(VENV_PYTHON), str(REPO / "tests" / "verifiers_rollouts.py"), topology.grpc_url,
                               ",".join(tasks), games], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    finally:
        log = topology.close()
    assert done.returncode == 0, done.stderr[-3000:] + log[-2000:]
    rows = json.loads(done.stdout)
    assert sorted({row["task"] for row in rows}) == sorted(tasks) and len(rows) >= 6
    for row in rows:
        assert row["errors"] == [], row
        expected = rlpr_score(row)
        assert expected["status"] == "ok", expected
        assert row["rewards"] == {"rlpr": pytest.approx(expected["reward"], abs=1e-12)}, (row, expected)
    arithmetic = [row["rewards"]["rlpr"] for row in rows if row["task"] == "arithmetic"]
    assert arithmetic[0] == pytest.approx(1.0) and arithmetic[2] == 0.0  # the right answer; not a sum
    sentiment = [row["rewards"]["rlpr"] for row in rows if row["task"] == "sentiment"]
    assert sentiment[0] > 0 > sentiment[1]
    # the rubric's timeout is the request's deadline: Ludii's is the service's 30 minutes
    assert {row["task"]: row["scoring_timeout_s"] for row in rows}["arithmetic"] == 60.0
