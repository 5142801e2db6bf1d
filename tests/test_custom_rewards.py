"""A reward of one's own, as docs/custom_rewards.md writes it: a RewardSpec with a name and a function,
packaged (examples/rlpr-length-reward), installed with pip, listed, scored in-process and through a
real `rlpr up`."""
import json
import os
import subprocess
import sys

import pytest

from reward_contract.types import RewardItem
from reward_service.rewards.base import NoOptions, RewardResult, RewardSpec
from tests.conftest import REPO

EXAMPLE = os.path.join(REPO, "examples", "rlpr-length-reward")


def shout(item: RewardItem, options: NoOptions) -> RewardResult:
    """1 if the completion is all capitals."""
    return RewardResult(float(item.completion.isupper()))


def test_a_reward_needs_only_a_name_and_a_function():
    spec = RewardSpec("shout", shout)
    assert (spec.description, spec.queue, spec.options_type, spec.reference_fields) == (
        "1 if the completion is all capitals.", "shout", NoOptions, ())
    assert (spec.chunk_size, spec.job_timeout_s, spec.label_field) == (64, 60, "")
    for bad, message in ((dict(name="Shout!"), "must be lower case"), (dict(options_type=dict), "must be a dataclass"),
                         (dict(score="shout"), "must be a function"), (dict(chunk_size=0), "must be >= 1")):
        with pytest.raises(ValueError, match=message):
            RewardSpec(**{"name": "shout", "score": shout, **bad})


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example package, installed by pip into a directory of its own (the test venv stays as it is)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, timeout=300)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(REPO)]))


def rlpr(env, *args):
    return subprocess.run([sys.executable, "-m", "rlpr", *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_an_installed_reward_package_is_listed_and_scores_in_process(installed):
    listed = {r["name"]: r for r in json.loads(rlpr(installed, "rewards", "--json").stdout)}
    assert {"arithmetic", "ludii", "length_penalty"} <= set(listed)
    assert listed["length_penalty"]["options"]["budget"] == {"type": "int (default: 20)",
                                                              "doc": "Longest completion without a penalty."}
    text = rlpr(installed, "rewards").stdout
    assert "length_penalty  (queue length_penalty)" in text and "-(length - budget) / budget" in text
    scored = rlpr(installed, "score", "--reward", "length_penalty", "--completion", "one two three four",
                  "--option", "budget=2")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["reward"] == -1.0
    bad = rlpr(installed, "score", "--reward", "length_penalty", "--completion", "x", "--option", "unit=lines")
    assert bad.returncode != 0 and "unit must be 'words' or 'chars'" in bad.stderr


@pytest.mark.slow
def test_an_installed_reward_is_served_by_rlpr_up(installed, tmp_path):
    from reward_contract.client import make_client
    from tests.system import Topology

    topology = Topology("length_penalty=1,arithmetic=1", tmp=tmp_path, env=installed)
    try:
        client = make_client(topology.grpc_url)
        try:
            results = client.score("length_penalty", [RewardItem("a", "", "a b c d e f"), RewardItem("b", "", "ok")],
                                   {"budget": 3})
        finally:
            client.close()
        assert [(r.reward, r.components["length"]) for r in results] == [(-1.0, 6.0), (0.0, 1.0)]
    finally:
        topology.close()


def test_a_plugin_may_not_replace_a_registered_reward(tmp_path):
    (tmp_path / "clash.py").write_text("from reward_service.rewards.base import RewardSpec, RewardResult\n"
                                       "ARITHMETIC = RewardSpec('arithmetic', lambda item, options: RewardResult(1.0))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
               RLPR_REWARD_PLUGINS="clash:ARITHMETIC")
    result = rlpr(env, "rewards")
    assert result.returncode != 0 and "names reward 'arithmetic', which is already registered" in result.stderr


@pytest.mark.slow
def test_the_trainer_trains_on_an_installed_reward(installed, tmp_path):
    run = subprocess.run([sys.executable, "-m", "rlpr", "train", "--task", "arithmetic", "--arithmetic-model-size",
                          "1x32", "--batch-size", "8", "--mini-batch-size", "8", "--ppo-epochs", "1", "--steps", "2",
                          "--reward", "length_penalty", "--reward-option", "budget=1", "--reward-option", "unit=chars",
                          "--out", str(tmp_path / "run")], env=installed, cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row["reward/mean"] <= 0 for row in rows)
