"""PPO on tiny models: an update learns, rewards rise, failed rewards are masked, runs resume."""
import json
import math
import random
import subprocess
import sys

import pytest
import torch

from reward_service.core.local_client import LocalRewardClient
from reward_contract.errors import Unavailable
from reward_contract.types import ItemStatus, ScoredItem
from trainer.config import TrainConfig
from trainer.ppo import PPOTrainer, train_steps
from trainer.scorer import RewardScorer, Scores
from trainer.tasks.arithmetic_task import ArithmeticTask
from tests.conftest import REPO


def make_trainer(seed=0, **hyper):
    torch.manual_seed(seed)
    task = ArithmeticTask(model_size="2x64", seed=seed)
    tokenizer, lm = task.load()
    defaults = dict(batch_size=32, mini_batch_size=16, lr=3e-4)
    return PPOTrainer(task, tokenizer, lm, TrainConfig(**(defaults | hyper)), torch.device("cpu"))


def scorer(client=None):
    return RewardScorer(client or LocalRewardClient(), "arithmetic", {}, 60)


def full_batch_loss(trainer, rollout, scores):
    mask = rollout.gen.response_mask * torch.tensor(scores.valid, dtype=torch.long)[:, None]
    advantages, returns, _ = trainer.advantages(rollout, scores, mask)
    with torch.no_grad():
        return trainer.loss_terms(rollout, torch.arange(mask.shape[0]), advantages, returns, mask)


def test_one_update_changes_parameters_and_lowers_the_loss_on_its_batch():
    trainer = make_trainer(ppo_epochs=4)
    rollout = trainer.rollout(trainer.task.prompts(32, random.Random(0)))
    scores = Scores([random.Random(i).random() for i in range(32)], [True] * 32)  # a fixed reward batch
    before_params = [p.detach().clone() for p in trainer.policy.parameters()]
    before = full_batch_loss(trainer, rollout, scores)["loss/total"].item()
    metrics = trainer.update(rollout, scores)
    after = full_batch_loss(trainer, rollout, scores)["loss/total"].item()
    assert any(not torch.equal(a, b) for a, b in zip(before_params, trainer.policy.parameters()))
    assert after < before
    for key in ("loss/policy", "loss/value", "loss/entropy", "entropy/token", "entropy/batch", "reward/mean"):
        assert key in metrics


def test_batch_entropy_term_enters_the_loss_with_its_coefficient():
    trainer = make_trainer(bent_coef=0.3, ent_coef=0.1)
    rollout = trainer.rollout(trainer.task.prompts(16, random.Random(1)))
    terms = full_batch_loss(trainer, rollout, Scores([0.5] * 16, [True] * 16))
    assert terms["loss/batch_entropy"].item() == pytest.approx(-0.3 * terms["entropy/batch"].item(), rel=1e-5)
    assert terms["loss/entropy"].item() == pytest.approx(-0.1 * terms["entropy/token"].item(), rel=1e-5)
    assert terms["entropy/batch"].item() >= terms["entropy/token"].item()
    parts = sum(terms[k] for k in ("loss/policy", "loss/value", "loss/entropy", "loss/batch_entropy"))
    assert terms["loss/total"].item() == pytest.approx(parts.item(), rel=1e-6)


def test_tiny_arithmetic_run_raises_the_mean_reward():
    trainer = make_trainer(seed=0)
    rewards = []
    train_steps(trainer, scorer(), random.Random(0), range(40), overlap=True,
                on_step=lambda step, rollout, m: rewards.append(m["reward/mean"]))
    assert len(rewards) == 40
    start, end = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert end > start + 0.2, (start, end)


class FlakyClient(LocalRewardClient):
    """Fails every third item, like a reward function that crashed on it."""

    def score(self, reward, items, options=None, deadline_s=None):
        results = super().score(reward, items, options, deadline_s)
        return [ScoredItem.failed(r.id, ItemStatus.ERROR, "boom") if i % 3 == 0 else r for i, r in enumerate(results)]


def test_a_crashed_reward_item_is_masked_out_of_the_update():
    trainer = make_trainer()
    rollout = trainer.rollout(trainer.task.prompts(12, random.Random(2)))
    scores = scorer(FlakyClient()).score(rollout.prompts, rollout.completions)
    assert scores.valid == [i % 3 != 0 for i in range(12)] and scores.failed == 4
    base = full_batch_loss(trainer, rollout, scores)
    # Whatever the failed rows hold, they cannot change any loss term.
    rollout.old_logprobs[::3] = 50.0
    rollout.old_values[::3] = -50.0
    poisoned = full_batch_loss(trainer, rollout, scores)
    for key in ("loss/total", "entropy/token", "entropy/batch"):
        assert poisoned[key].item() == pytest.approx(base[key].item())
    assert trainer.update(rollout, scores)["reward/failed_items"] == 4.0


class DownClient(LocalRewardClient):
    def score(self, *args, **kwargs):
        raise Unavailable("redis is unreachable")


def test_an_unavailable_reward_service_masks_the_batch_and_training_goes_on():
    trainer = make_trainer()
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    seen = []
    train_steps(trainer, scorer(DownClient()), random.Random(0), range(2), overlap=False,
                on_step=lambda step, rollout, m: seen.append(m))
    assert [m["reward/unavailable"] for m in seen] == [1.0, 1.0]
    assert all(m["reward/failed_items"] == 32 for m in seen)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))  # no invented reward


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rlpr", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_trains_checkpoints_and_resumes(tmp_path):
    common = ["train", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--batch-size", "8",
              "--mini-batch-size", "4", "--ppo-epochs", "1", "--out", str(tmp_path), "--save-every", "1"]
    first = run_cli(*common, "--steps", "2")
    assert first.returncode == 0, first.stderr
    # The run's bar alone: no bar of transformers' per checkpoint, no false warning from its generate.
    assert "Writing model shards" not in first.stderr and "attention_mask" not in first.stderr, first.stderr
    assert (tmp_path / "checkpoint" / "config.json").exists() and (tmp_path / "curves.png").exists()
    second = run_cli(*common, "--steps", "4", "--resume")
    assert second.returncode == 0, second.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]
    closing = second.stdout.strip().splitlines()[-6:]
    assert closing[0].startswith("reward ") and closing[0].endswith("over the last 4 steps")
    assert closing[1].startswith("the best constant answer (22) scores 0.756: this run ends")
    assert closing[2].startswith("answers at the last step: ") and closing[3].startswith("metrics: ")


def test_the_closing_summary_and_the_plot_show_the_baseline(tmp_path, monkeypatch):
    import matplotlib.axes

    from trainer.logger import plot_metrics
    from trainer.summary import Baseline, summary

    rows = [{"step": i, "reward/mean": r, "response/distinct": 0.25, "response/top_share": 0.5}
            for i, r in enumerate([0.1, float("nan")] + [0.9] * 25)]
    constant = Baseline("the best constant answer (22)", 0.756)
    assert summary(rows, constant) == [
        "reward 0.100 at step 0, 0.900 over the last 20 steps",
        "the best constant answer (22) scores 0.756: this run ends above it (+0.144)",
        "answers at the last step: 25% distinct; the most common is 50% of the batch"]
    assert summary(rows, None)[1].startswith("answers")
    assert summary([{"step": 0, "reward/mean": float("nan")}], constant)[0].startswith("no step was scored")
    lines = []
    original = matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda ax, y, **kw: lines.append((ax.get_title(), y)) or
                        original(ax, y, **kw))
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert plot_metrics(path, tmp_path / "curves.png", baseline=constant).exists()
    assert lines == [("", 0.756)]  # drawn before the title: on the reward's axes, the first


def test_cli_rejects_bad_config_with_a_fix():
    result = run_cli("train", "--batch-size", "10", "--mini-batch-size", "4")
    assert result.returncode != 0 and "must divide --batch-size 10" in result.stderr
    result = run_cli("train", "--kl-coef", "sometimes")
    assert result.returncode != 0 and "'adaptive'" in result.stderr


@pytest.mark.parametrize("signal_name, exit_code, word", [("SIGINT", 130, "interrupted"),  # Ctrl-C
                                                         ("SIGTERM", 143, "terminated")])  # batch schedulers
def test_a_stop_signal_saves_a_checkpoint_that_resume_continues(tmp_path, signal_name, exit_code, word):
    import signal
    import time

    command = [sys.executable, "-m", "rlpr", "train", "--task", "arithmetic", "--arithmetic-model-size", "1x32",
               "--batch-size", "8", "--mini-batch-size", "4", "--ppo-epochs", "1", "--steps", "1000",
               "--out", str(tmp_path)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while (not metrics.exists() or len(metrics.read_text().splitlines()) < 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(getattr(signal, signal_name))
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == exit_code and f"{word}: saved step" in stdout and "continue with --resume" in stdout
    saved = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["step"]
    assert saved >= 2
    done = len(metrics.read_text().splitlines())
    resumed = run_cli("train", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--batch-size", "8",
                      "--mini-batch-size", "4", "--ppo-epochs", "1", "--steps", str(saved + 4), "--out", str(tmp_path),
                      "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps[done:] == [saved + 1, saved + 2, saved + 3], (steps, done, saved)


def test_a_non_finite_minibatch_is_skipped_and_counted_and_the_weights_stay_finite():
    trainer = make_trainer()
    rollout = trainer.rollout(trainer.task.prompts(32, random.Random(5)))
    real = trainer.loss_terms
    calls = {"n": 0}

    def poisoned(*args):
        terms = real(*args)
        calls["n"] += 1
        if calls["n"] == 2:  # one mini-batch whose loss overflowed
            terms["loss/total"] = terms["loss/total"] * float("inf")
        return terms

    trainer.loss_terms = poisoned
    metrics = trainer.update(rollout, Scores([0.5] * 32, [True] * 32))
    assert metrics["train/skipped_updates"] == 1.0
    assert all(torch.isfinite(p).all() for p in trainer.policy.parameters())
    assert math.isfinite(metrics["loss/total"])  # averaged over the updates that were applied


def test_updates_that_stay_non_finite_stop_training_with_a_clear_error():
    from trainer.ppo import TrainingDiverged

    trainer = make_trainer(max_skipped_updates=3)
    rollout = trainer.rollout(trainer.task.prompts(32, random.Random(6)))
    real = trainer.loss_terms
    trainer.loss_terms = lambda *args: (lambda terms: terms | {"loss/total": terms["loss/total"] * float("nan")})(
        real(*args))
    with pytest.raises(TrainingDiverged, match="3 mini-batch updates in a row"):
        trainer.update(rollout, Scores([0.5] * 32, [True] * 32))


def test_cli_stops_a_diverging_run_with_a_checkpoint_and_logs_the_nans(tmp_path):
    """An absurd learning rate overflows the weights; every later update is non-finite."""
    result = run_cli("train", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--batch-size", "8",
                     "--mini-batch-size", "4", "--ppo-epochs", "2", "--steps", "20", "--lr", "1e30",
                     "--max-skipped-updates", "3", "--out", str(tmp_path))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "mini-batch updates in a row had a non-finite loss" in result.stderr
    assert "Saved the last good weights" in result.stderr
    assert (tmp_path / "checkpoint" / "config.json").exists()


def test_the_logger_keeps_nan_and_inf_instead_of_dropping_them(tmp_path):
    from trainer.logger import MetricsLogger

    logger = MetricsLogger(tmp_path)
    logger.log(0, {"reward/mean": float("nan"), "loss/total": float("inf"), "kl/mean": 0.5})
    logger.close()
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    assert "NaN" in line and "Infinity" in line
    row = json.loads(line)
    assert math.isnan(row["reward/mean"]) and math.isinf(row["loss/total"]) and row["kl/mean"] == 0.5


def test_overlap_defaults_on_only_for_a_remote_reward_service_and_staleness_is_logged():
    assert not TrainConfig().overlap and TrainConfig(reward_url="grpc://127.0.0.1:1").overlap
    assert TrainConfig(overlap_rewards="on").overlap and not TrainConfig(overlap_rewards="off").overlap
    trainer = make_trainer()
    seen = []
    train_steps(trainer, scorer(), random.Random(0), range(3), overlap=True,
                on_step=lambda step, rollout, m: seen.append(m["train/staleness"]))
    assert seen == [0.0, 1.0, 1.0]  # each update after the first uses data one policy version old
    seen.clear()
    train_steps(make_trainer(), scorer(), random.Random(0), range(2), overlap=False,
                on_step=lambda step, rollout, m: seen.append(m["train/staleness"]))
    assert seen == [0.0, 0.0]


class OvertimeClient(LocalRewardClient):
    """Every other item ran past its reward's own time limit."""

    def score(self, reward, items, options=None, deadline_s=None):
        results = super().score(reward, items, options, deadline_s)
        return [ScoredItem.failed(r.id, ItemStatus.TIME_LIMIT, "too slow", {"playouts": 3.0}) if i % 2 else r
                for i, r in enumerate(results)]


def test_time_limited_items_are_masked_unless_a_timeout_reward_is_set():
    from trainer.tasks.base import Prompt

    prompts = [Prompt("1 + 2 =", {"previous": "1 + 2"})] * 4
    masked = RewardScorer(OvertimeClient(), "arithmetic", {}, 60).score(prompts, ["3"] * 4)
    assert masked.valid == [True, False, True, False] and masked.time_limited == 2
    explicit = RewardScorer(OvertimeClient(), "arithmetic", {}, 60, timeout_reward=0.05).score(prompts, ["3"] * 4)
    assert explicit.valid == [True] * 4 and explicit.rewards == [1.0, 0.05, 1.0, 0.05]
    assert explicit.components == {"valid": 1.0, "value": 3.0, "target": 3.0, "abs_error": 0.0}  # over ok items


def test_batches_that_stay_unscored_stop_training_with_a_clear_error():
    from trainer.ppo import RewardsFailing

    trainer = make_trainer(max_unscored_batches=3)
    seen = []
    with pytest.raises(RewardsFailing, match="3 batches in a row had no scored item .the reward service was unavail"):
        train_steps(trainer, scorer(DownClient()), random.Random(0), range(10), overlap=False,
                    on_step=lambda step, rollout, m: seen.append(step))
    assert seen == [0, 1]  # the third unscored batch stops the run before it is logged


def test_a_reward_that_fails_a_probe_item_for_its_configuration_stops_the_run_at_start(tmp_path):
    result = run_cli("train", "--task", "sentiment", "--reward", "sentiment_classifier", "--reward-option",
                     f"model={tmp_path / 'no-such-model'}", "--steps", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "fails with these options" in result.stderr and "cannot load the classifier" in result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before the first step
