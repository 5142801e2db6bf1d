"""GRPO and RLOO (TRL) with the batch-entropy term, and the supervised baseline, on tiny models."""
import json

import pytest

from tests.test_ppo import run_cli

TINY = ["--task", "arithmetic", "--arithmetic-model-size", "1x32", "--steps", "2", "--batch-size", "8",
        "--mini-batch-size", "8", "--num-generations", "4", "--lr", "3e-4"]


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_trl_algorithms_run_with_batch_entropy(tmp_path, algo):
    result = run_cli("train", *TINY, "--algo", algo, "--bent-coef", "0.3", "--ent-coef", "0.1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "entropy/batch" in r]
    assert logged, rows
    for row in logged:
        assert row["loss/batch_entropy"] == pytest.approx(-0.3 * row["entropy/batch"], rel=1e-4)
        assert "reward/mean" in row and row["reward/failed_items"] == 0
    assert (tmp_path / "checkpoint" / "config.json").exists() and (tmp_path / "curves.png").exists()


def test_supervised_baseline_logs_validation_loss_and_reward(tmp_path):
    result = run_cli("sft", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--steps", "40",
                     "--batch-size", "16", "--eval-every", "20", "--eval-batches", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    evals = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "val/loss" in line]
    assert [e["step"] for e in evals] == [19, 39]
    assert evals[-1]["val/loss"] < evals[0]["val/loss"]
    assert all(0 <= e["reward/mean"] <= 1 for e in evals)
