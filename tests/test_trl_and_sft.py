"""GRPO and RLOO (TRL) with the batch-entropy term, and the supervised baseline, on tiny models."""
import inspect
import json
import math
from collections import defaultdict

import pytest
import torch

from reward_contract.types import ItemStatus, ScoredItem
from reward_service.core.local_client import LocalRewardClient
from tests.test_ppo import run_cli
from trainer.config import TrainConfig

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
        assert 0 < row["response/distinct"] <= 1
    assert (tmp_path / "checkpoint" / "config.json").exists() and (tmp_path / "curves.png").exists()
    # As tidy as a PPO run: the same closing lines, samples.jsonl, one resumable checkpoint-N, nothing else.
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("reward ") and "the best constant answer (22) scores 0.756" in lines[1]
    assert lines[-3:] == [f"metrics: {tmp_path / 'metrics.jsonl'}", f"curves:  {tmp_path / 'curves.png'}",
                          f"model:   {tmp_path / 'checkpoint'}"]
    assert "{'loss'" not in result.stdout + result.stderr and "Warning" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint", "checkpoint-2", "config.json", "curves.png", "metrics.jsonl", "samples.jsonl", "tensorboard"]
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [0, 1] and samples[0]["examples"][0][0].endswith("=")


def build(tmp_path, algo, **hyper):
    from trainer.runtime import seed_everything
    from trainer.trl_algos import build_trainer

    config = TrainConfig(**(dict(task="arithmetic", arithmetic_model_size="1x32", arithmetic_step="random",
                                 steps=2, batch_size=16, mini_batch_size=16, num_generations=4, lr=3e-4,
                                 algo=algo, out=str(tmp_path)) | hyper))
    trainer, reward = build_trainer(config, tmp_path, seed_everything(0))
    captured = []
    compute_loss = trainer.compute_loss

    def recording(model, inputs, return_outputs=False, num_items_in_batch=None):
        captured.append({k: inputs[k].detach().clone() for k in ("prompt_ids", "completion_ids", "completion_mask",
                                                                  "advantages")})
        return compute_loss(model, inputs, return_outputs, num_items_in_batch)

    trainer.compute_loss = recording
    return trainer, reward, captured


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_no_token_after_the_first_stop_gets_any_loss(tmp_path, algo):
    trainer, reward, captured = build(tmp_path, algo)
    trainer.train()
    stops = torch.tensor(trainer.stop_ids)
    seen_stop_before_end = False
    for batch in captured:
        for ids, mask in zip(batch["completion_ids"], batch["completion_mask"]):
            is_stop = torch.isin(ids, stops) & mask.bool()
            if is_stop.any():
                first = int(is_stop.nonzero()[0])
                assert mask[first] == 1 and mask[first + 1:].sum() == 0, (ids.tolist(), mask.tolist())
                seen_stop_before_end |= first < len(ids) - 1
    assert seen_stop_before_end  # the '=' stop token did end some completions early


class PatternClient(LocalRewardClient):
    """Rewards by completion length; fails every completion whose length is a multiple of 3."""

    def score(self, reward, items, options=None, deadline_s=None):
        return [ScoredItem.failed(i.id, ItemStatus.LOST, "worker died") if failed(i.completion)
                else ScoredItem(i.id, value(i.completion), {}, ItemStatus.OK) for i in items]


def failed(text: str) -> bool:
    return len(text) % 3 == 0


def value(text: str) -> float:
    return float(len(text) % 5)


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_group_statistics_are_over_the_scored_items_only(tmp_path, algo):
    """A failed item has advantage 0 and does not move its group-mates' baseline. TRL 1.16 does this
    itself for None rewards; this test fails loudly if a TRL release changes it."""
    trainer, reward, captured = build(tmp_path, algo)
    reward.client = PatternClient()
    trainer.train()
    tokenizer = trainer.processing_class
    checked = 0
    for batch in captured:
        groups = defaultdict(list)
        for prompt, ids, mask, advantage in zip(batch["prompt_ids"], batch["completion_ids"], batch["completion_mask"],
                                                batch["advantages"]):
            text = reward.transform(tokenizer.decode(ids[mask.bool()], skip_special_tokens=True))
            groups[tuple(prompt.tolist())].append((text, advantage.item()))
        for rows in groups.values():
            scored = [value(t) for t, _ in rows if not failed(t)]
            for text, advantage in rows:
                if failed(text):
                    assert advantage == 0.0
                elif len(scored) > 1:
                    checked += 1
                    mean = sum(scored) / len(scored)
                    if algo == "grpo":
                        std = math.sqrt(sum((r - mean) ** 2 for r in scored) / (len(scored) - 1))
                        expected = (value(text) - mean) / (std + 1e-4)
                    else:
                        expected = value(text) - (sum(scored) - value(text)) / (len(scored) - 1)
                    assert advantage == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert checked


def test_the_one_private_trl_hook_we_override_is_still_what_trl_calls():
    """BatchEntropyMixin overrides `_get_per_token_logps_and_entropies`, because TRL's fused LM head
    never materialises p(.|s). If TRL renames it, changes its signature, or stops asking it for
    entropies in the training loss, batch entropy would silently vanish: fail here instead."""
    from trl import GRPOTrainer, RLOOTrainer

    from trainer.trl_algos import PRIVATE_HOOK

    for trainer_class in (GRPOTrainer, RLOOTrainer):
        hook = getattr(trainer_class, PRIVATE_HOOK)
        parameters = list(inspect.signature(hook).parameters)
        assert parameters[:7] == ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size",
                                  "compute_entropy"], parameters
        loss_source = inspect.getsource(trainer_class._compute_loss)
        assert f"self.{PRIVATE_HOOK}(" in loss_source and "compute_entropy=True" in loss_source


def test_our_forward_passes_positions_that_ignore_left_padding(tmp_path):
    trainer, reward, captured = build(tmp_path, "grpo", bent_coef=0.3)
    seen = []
    model = trainer.model
    forward = model.forward

    def spy(*args, **kwargs):
        if kwargs.get("position_ids") is not None:
            seen.append((kwargs["attention_mask"].clone(), kwargs["position_ids"].clone()))
        return forward(*args, **kwargs)

    model.forward = spy
    trainer.train()
    assert seen
    for attention, positions in seen:
        assert (attention[:, 0] == 0).any()  # random-step prompts differ in length: some rows are left-padded
        assert torch.equal(positions, (attention.cumsum(-1) - 1).clamp(min=0))


def test_trl_reward_adapter_returns_none_for_failed_items_and_logs_them():
    from reward_contract.integrations.trl import RlprReward

    logged = {}
    reward = RlprReward("arithmetic", client=PatternClient())
    rewards = reward(prompts=["1 + 2 =", "3 + 4 ="], completions=["abc", "abcd"], previous=["1 + 2", "3 + 4"],
                     trainer_state=None, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert rewards == [None, 4.0] and logged["rlpr/failed_items"] == 1.0
    real = RlprReward("arithmetic")  # in-process scoring through the same factory
    assert real(prompts=["p"], completions=[[{"role": "assistant", "content": "3"}]], previous=["1 + 2"]) == [1.0]
    assert real.__name__ == "rlpr_arithmetic"


def test_supervised_baseline_logs_validation_loss_and_reward(tmp_path):
    result = run_cli("sft", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--steps", "40",
                     "--batch-size", "16", "--eval-every", "20", "--eval-batches", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    evals = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "val/loss" in line]
    assert [e["step"] for e in evals] == [19, 39]
    assert evals[-1]["val/loss"] < evals[0]["val/loss"]
    assert all(0 <= e["reward/mean"] <= 1 for e in evals)


def test_top_k_is_refused_for_trl_algorithms(tmp_path):
    result = run_cli("train", *TINY, "--algo", "grpo", "--top-k", "5", "--out", str(tmp_path))
    assert result.returncode == 2 and "--top-k/--top-p work with --algo ppo only" in result.stderr
