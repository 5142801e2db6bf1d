"""The trainer at LLM scale, on tiny models of the paper's three families (GPT-2, GPT-NeoX/Pythia,
Llama): LoRA, its KL reference and checkpoints, k-bit and vLLM refusals on a CPU, gradient
checkpointing, and data parallelism over real processes (gloo)."""
import gc
import json
import os
import random
import subprocess
import sys

import pytest
import torch

from trainer import models
from trainer.config import TrainConfig
from trainer.ppo import PPOTrainer
from trainer.scorer import Scores
from trainer.tasks.arithmetic_task import ArithmeticTask
from tests.conftest import REPO, free_port


def tiny_lm(family: str, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, \
        LlamaForCausalLM

    ids = dict(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    if family == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2, **ids))
    if family == "gpt_neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                intermediate_size=64, max_position_embeddings=64, **ids))
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, **ids))


def make_trainer(family="gpt2", **hyper):
    task = ArithmeticTask(model_size="2x32", seed=0)
    tokenizer, _ = task.load()
    config = TrainConfig(**(dict(batch_size=16, mini_batch_size=8, lr=3e-3, ppo_epochs=2) | hyper))
    lm = models.prepare(tiny_lm(family, tokenizer), config)
    return PPOTrainer(task, tokenizer, lm, config, torch.device("cpu"))


def sequence_logprobs(trainer, rollout, forward):
    gen = rollout.gen
    with torch.no_grad():
        logits = forward(gen.sequences, gen.attention_mask, gen.response_len)
    from trainer.policy import response_logprobs

    return response_logprobs(logits, gen.response, trainer.distribution, gen.response_mask)[1]


FAMILIES = ["gpt2", "gpt_neox", "llama"]


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_only_the_adapters_and_the_value_head(family):
    trainer = make_trainer(family, peft="lora", lora_r=4)
    names = [n for n, p in trainer.policy.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("value_head.") for n in names), names
    frozen = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    rollout = trainer.rollout(trainer.task.prompts(16, random.Random(0)))
    trainer.update(rollout, Scores([random.Random(i).random() for i in range(16)], [True] * 16))
    after = dict(trainer.policy.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in frozen.items())
    assert any(not torch.equal(after[n], p) for n, p in trained.items() if "lora_B" in n)


def copies_of(tensor: torch.Tensor) -> int:
    """Distinct storages, among every live tensor, that hold these exact values."""
    gc.collect()
    return len({o.untyped_storage().data_ptr() for o in gc.get_objects()
                if isinstance(o, torch.Tensor) and o.shape == tensor.shape and o.dtype == tensor.dtype
                and torch.equal(o.detach(), tensor.detach())})


@pytest.mark.parametrize("family", FAMILIES)
def test_the_lora_kl_reference_is_the_initial_policy_without_a_second_copy(family):
    trainer = make_trainer(family, peft="lora", lora_r=4, kl_coef="0.2")
    assert trainer.reference.lm is trainer.policy.lm  # the same model, adapters switched off
    embedding = trainer.policy.lm.get_input_embeddings().weight
    assert copies_of(embedding) == 1  # no second set of base weights anywhere
    rollout = trainer.rollout(trainer.task.prompts(16, random.Random(1)))
    initial = sequence_logprobs(trainer, rollout, lambda *a: trainer.policy(*a)[0])
    assert torch.equal(rollout.ref_logprobs, rollout.old_logprobs)  # the first KL is exactly 0
    for _ in range(3):
        trainer.update(rollout, Scores([random.Random(i).random() for i in range(16)], [True] * 16))
    from trainer.policy import response_forward

    reference = sequence_logprobs(trainer, rollout, lambda *a: response_forward(trainer.reference, *a).logits[:, :-1])
    moved = sequence_logprobs(trainer, rollout, lambda *a: trainer.policy(*a)[0])
    mask = rollout.gen.response_mask.bool()
    assert (reference - initial)[mask].abs().max() <= 1e-6
    assert (moved - initial)[mask].abs().max() > 1e-3  # the adapters did learn


def test_a_full_fine_tune_keeps_a_frozen_copy_for_kl_which_the_storage_count_sees():
    trainer = make_trainer("gpt2", kl_coef="0.2")
    assert copies_of(trainer.policy.lm.get_input_embeddings().weight) == 2


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "rlpr", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


LORA_RUN = ["train", "--task", "arithmetic", "--arithmetic-model-size", "2x32", "--batch-size", "8",
            "--mini-batch-size", "4", "--ppo-epochs", "2", "--lr", "1e-2", "--peft", "lora", "--lora-r", "4",
            "--kl-coef", "0.1", "--bent-coef", "0.1", "--save-every", "1"]


def metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_a_lora_checkpoint_holds_adapters_only_and_resumes_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_cli(*LORA_RUN, "--steps", "3", "--out", str(whole)).returncode == 0
    first = run_cli(*LORA_RUN, "--steps", "2", "--out", str(split))
    assert first.returncode == 0, first.stderr[-2000:]
    saved = {p.name for p in (split / "checkpoint").iterdir()}
    assert models.ADAPTER_CONFIG in saved and "model.safetensors" not in saved  # no base weights
    resumed = run_cli(*LORA_RUN, "--steps", "3", "--out", str(split), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, got = metrics(whole)[2], metrics(split)[2]
    assert got["step"] == 2
    for key in ("loss/total", "loss/policy", "entropy/batch", "kl/mean", "policy/grad_norm", "reward/mean"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key


def test_export_merge_writes_a_model_with_the_same_log_probs(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    assert run_cli(*LORA_RUN, "--steps", "2", "--out", str(run)).returncode == 0
    refused = run_cli("export", str(run / "checkpoint"), str(tmp_path / "unmerged"))
    assert refused.returncode == 2 and "--merge" in refused.stderr
    result = run_cli("export", "--merge", str(run / "checkpoint"), str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr[-2000:]
    task = ArithmeticTask(model_size="2x32", seed=0)
    tokenizer, base = task.load()
    adapted = PeftModel.from_pretrained(base, str(run / "checkpoint")).eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    batch = tokenizer([p.text for p in task.prompts(8, random.Random(2))], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = torch.log_softmax(adapted(**batch).logits, -1)
        got = torch.log_softmax(merged(**batch).logits, -1)
        plain = torch.log_softmax(task.load()[1].eval()(**batch).logits, -1)  # a fresh base, no adapters
    assert (want - got).abs().max() <= 1e-4
    assert (want - plain).abs().max() > 1e-3  # the adapters matter


def test_grpo_takes_the_lora_flags_through_trls_peft_config(tmp_path):
    from trainer.trl_algos import build_trainer

    config = TrainConfig(algo="grpo", task="arithmetic", arithmetic_model_size="2x32", batch_size=8,
                         mini_batch_size=8, num_generations=4, steps=1, peft="lora", lora_r=4, out=str(tmp_path))
    trainer, reward = build_trainer(config, tmp_path, random.Random(0))
    try:
        assert models.is_peft(trainer.model)
        assert trainer.model.peft_config["default"].r == 4
        trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)
    finally:
        reward.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("args, message", [
    (["--load-in", "4bit", "--peft", "lora", "--model", "gpt2"], "--load-in 4bit needs a CUDA GPU"),
    (["--algo", "grpo", "--vllm", "colocate"], "--vllm colocate needs a CUDA GPU"),
])
def test_gpu_only_options_are_refused_at_start_in_one_line_on_a_cpu(args, message, tmp_path):
    result = run_cli("train", *args, "--out", str(tmp_path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (["--load-in", "8bit", "--model", "gpt2"], "add --peft lora"),
    (["--load-in", "4bit", "--peft", "lora"], "pass --model"),
    (["--vllm", "server"], "--vllm works with --algo grpo or rloo"),
    (["--peft", "lora", "--lora-dropout", "0.1"], "--lora-dropout must be 0 for RL"),
    (["--processes", "3"], "--processes 3 must divide"),
])
def test_model_and_scale_flags_are_validated_with_the_fix(args, message):
    result = run_cli("train", *args)
    flat = " ".join(result.stderr.replace("│", " ").split())  # the usage box wraps long messages
    assert result.returncode == 2 and message in flat, result.stderr


def test_gradient_checkpointing_gives_the_same_gradients_and_really_recomputes():
    grads, calls = {}, {}
    for checkpointing in (False, True):
        trainer = make_trainer("gpt2", ent_coef=0.1, bent_coef=0.3, gradient_checkpointing=checkpointing)
        rollout = trainer.rollout(trainer.task.prompts(16, random.Random(3)))
        mask = rollout.gen.response_mask
        advantages, returns, _ = trainer.advantages(rollout, Scores([random.Random(i).random() for i in range(16)],
                                                                    [True] * 16), mask)
        # A pre-hook inside the checkpointed block: the recompute may stop early, but not before its attention.
        attention = trainer.policy.lm.transformer.h[0].attn
        count = {"n": 0}
        handle = attention.register_forward_pre_hook(lambda *args: count.__setitem__("n", count["n"] + 1))
        terms = trainer.loss_terms(rollout, torch.arange(16), advantages, returns, mask)
        assert terms["loss/batch_entropy"].item() != 0 and terms["loss/entropy"].item() != 0
        terms["loss/total"].backward()
        handle.remove()
        calls[checkpointing] = count["n"]
        grads[checkpointing] = {n: p.grad.clone() for n, p in trainer.policy.named_parameters() if p.grad is not None}
    assert calls == {False: 1, True: 2}  # the block's forward ran again in the backward pass
    for name, grad in grads[False].items():
        assert torch.allclose(grads[True][name], grad, atol=1e-5, rtol=0), name


def accelerate(*extra: str) -> list[str]:
    """`accelerate launch` with 2 processes on a free rendezvous port (the default 29500 may linger)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), *extra]


def test_two_processes_make_the_same_update_as_one_on_the_same_batch(tmp_path):
    """Both entropy terms, KL, clipping and a masked item: the update must not depend on the split."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    single = subprocess.run([sys.executable, "tests/dp_update.py", str(one)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run([*accelerate("--multi_gpu"), "tests/dp_update.py", str(two)], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    a, b = torch.load(one), torch.load(two)
    assert (a["world"], b["world"]) == (1, 2)
    assert a["metrics"]["loss/batch_entropy"] != 0
    for name, value in a["params"].items():
        assert torch.allclose(b["params"][name], value, atol=1e-5, rtol=0), name
    for key in ("loss/total", "entropy/batch", "policy/grad_norm", "reward/mean", "reward/failed_items"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-5), key


def test_rlpr_train_processes_runs_under_accelerate_and_only_the_main_process_writes(tmp_path):
    result = run_cli("train", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--batch-size", "8",
                     "--mini-batch-size", "4", "--ppo-epochs", "1", "--steps", "3", "--bent-coef", "0.1",
                     "--processes", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "launching 2 processes" in result.stderr
    assert [row["step"] for row in metrics(tmp_path)] == [0, 1, 2]  # one line a step, not one per process
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 3
    assert result.stdout.count("metrics:") == 1
    assert json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    resumed = run_cli("train", "--task", "arithmetic", "--arithmetic-model-size", "1x32", "--batch-size", "8",
                      "--mini-batch-size", "4", "--ppo-epochs", "1", "--steps", "5", "--bent-coef", "0.1",
                      "--processes", "2", "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row["step"] for row in metrics(tmp_path)] == [0, 1, 2, 3, 4]  # the run went on from step 3


def test_grpo_runs_under_accelerate_launch_with_two_cpu_processes(tmp_path):
    result = subprocess.run([*accelerate("--multi_gpu"), "--module", "rlpr", "train", "--algo", "grpo", "--task", "arithmetic",
                             "--arithmetic-model-size", "1x32", "--batch-size", "8", "--mini-batch-size", "8",
                             "--num-generations", "4", "--steps", "2", "--bent-coef", "0.1", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "grpo on 2 processes, data parallel" in result.stderr
    rows = metrics(tmp_path)
    assert [row["step"] for row in rows if "entropy/batch" in row] == [1, 2]  # logged once, by the main process
    assert (tmp_path / "checkpoint").is_dir()


def fsdp_run(*extra: str) -> list[str]:
    return [*accelerate("--config_file", "configs/accelerate/fsdp.yaml"), "-m", "rlpr", "train", "--task",
            "arithmetic", "--arithmetic-model-size", "2x32", "--batch-size", "8", "--mini-batch-size", "8",
            "--steps", "2", *extra]


def test_the_shipped_fsdp_config_loads_in_accelerate_and_grpo_runs_under_it(tmp_path):
    """Sharding itself needs GPUs: on CPU processes accelerate runs the same command data parallel,
    and the run says which it got."""
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(os.path.join(REPO, "configs", "accelerate", "fsdp.yaml"))
    assert config.distributed_type == "FSDP" and config.fsdp_config["fsdp_version"] == 2
    result = subprocess.run(fsdp_run("--algo", "grpo", "--num-generations", "4", "--out", str(tmp_path)), cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = "sharded with FSDP" if torch.cuda.device_count() > 1 else "data parallel"
    assert f"grpo on 2 processes, {expected}" in result.stderr
    assert (tmp_path / "metrics.jsonl").exists()


def test_ppo_refuses_the_fsdp_config_instead_of_silently_replicating(tmp_path):
    result = subprocess.run(fsdp_run("--out", str(tmp_path)), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "PPO replicates the model on every process" in result.stderr


@pytest.mark.parametrize("peft", ["none", "lora"])
def test_the_first_kl_is_exactly_zero_on_left_padded_prompts(peft):
    """The reference's forward pass must use the policy's position ids: prompts of 2-8 words are padded."""
    from trainer.tasks.sentiment import SentimentTask

    task = SentimentTask()
    tokenizer, lm = task.load()
    config = TrainConfig(batch_size=16, mini_batch_size=8, kl_coef="0.1", peft=peft, lora_r=4)
    trainer = PPOTrainer(task, tokenizer, models.prepare(lm, config), config, torch.device("cpu"))
    rollout = trainer.rollout(task.prompts(16, random.Random(0)))
    assert (rollout.gen.attention_mask[:, :rollout.gen.prompt_len] == 0).any()  # some rows are padded
    assert torch.equal(rollout.ref_logprobs, rollout.old_logprobs)
