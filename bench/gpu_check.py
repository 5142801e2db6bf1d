"""The trainer's GPU paths, checked and timed in one command (about 5 minutes on one H200):

1. `--preset paper` (GPT-2 124M, batch 128, 4 PPO epochs) for 20 steps, bf16 autocast against fp32;
2. PPO with LoRA over a 4-bit base (QLoRA) on a 1B-parameter Llama-shaped model built from its
   config, with a KL penalty (the reference is the base with adapters off) and gradient checkpointing;
3. GRPO with `--vllm colocate` on a tiny model (when vLLM is installed);
4. bench/memory.py on CUDA.

    python bench/gpu_check.py [--steps 20]

It prints a table and, under bench/report.py, keeps its figures for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, write_results


def step_seconds(config, steps: int) -> tuple[float, dict]:
    """Median seconds per PPO step after two warm-up steps, and the last step's metrics."""
    import torch

    from trainer.ppo import PPOTrainer, train_steps
    from trainer.runtime import autocast_dtype, pick_device, seed_everything
    from trainer.scorer import make_scorer
    from trainer.tasks import load_task

    rng = seed_everything(config.seed)
    task, tokenizer, lm = load_task(config)
    device = pick_device(config.device)
    trainer = PPOTrainer(task, tokenizer, lm, config, device, autocast_dtype(device, config.bf16))
    scorer = make_scorer(config, task)
    stamps, last = [], {}

    cuda = device.type == "cuda"

    def on_step(step, rollout, metrics):
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        last.update(metrics)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stamps.append(time.perf_counter())
    try:
        train_steps(trainer, scorer, rng, range(steps), False, on_step)
    finally:
        scorer.close()
    intervals = [b - a for a, b in zip(stamps, stamps[1:])][2:]
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return statistics.median(intervals), last | {"peak_gib": peak}


def paper_preset(steps: int, device: str, small: bool) -> dict[str, float]:
    from trainer.config import TrainConfig

    seconds = {}
    for bf16 in (True, False):
        defaults = vars(TrainConfig.defaults_for(["--preset", "paper"]))
        shrink = {"arithmetic_model_size": "2x64", "batch_size": 16, "mini_batch_size": 16} if small else {}
        config = TrainConfig(**defaults | shrink | {"steps": steps, "bf16": bf16, "device": device,
                                                    "out": tempfile.mkdtemp()})
        seconds["bf16" if bf16 else "fp32"], _ = step_seconds(config, steps)
    return seconds


def llama_1b(directory: str, device: str, small: bool) -> int:
    """A Llama of TinyLlama's shape (22 x 2048, grouped-query attention) over the arithmetic vocabulary,
    random weights in bf16, saved with its tokenizer so that `from_pretrained` can quantize it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.tasks import arithmetic

    tokenizer = arithmetic.build_tokenizer()
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2) if small else \
        dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22)
    config = LlamaConfig(vocab_size=len(tokenizer), **shape, num_attention_heads=32, num_key_value_heads=4,
                         max_position_embeddings=64,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    count = sum(p.numel() for p in model.parameters())
    return count


def qlora_llama(steps: int, device: str, small: bool) -> dict[str, float]:
    """On a CPU (a smoke run of this script) the base stays in full precision: k-bit needs CUDA."""
    from trainer.config import TrainConfig

    directory = tempfile.mkdtemp(prefix="llama-1b-")
    parameters = llama_1b(directory, device, small)
    config = TrainConfig(task="arithmetic", model=directory, peft="lora", lora_r=16,
                         load_in="4bit" if device == "cuda" else "none",
                         gradient_checkpointing=True, kl_coef="0.05", batch_size=32, mini_batch_size=16, ppo_epochs=2,
                         lr=1e-4, steps=steps, device=device, out=tempfile.mkdtemp())
    seconds, metrics = step_seconds(config, steps)
    return {"parameters": parameters, "seconds": seconds, "peak_gib": metrics["peak_gib"], "kl": metrics["kl/mean"]}


def grpo_vllm() -> str:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "not run: vLLM is not installed on this machine (pip install 'rlpr[vllm]')"
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, "-m", "rlpr", "train", "--algo", "grpo", "--vllm", "colocate",
                              "--task", "arithmetic", "--arithmetic-model-size", "2x64", "--batch-size", "16",
                              "--mini-batch-size", "16", "--num-generations", "4", "--steps", "3", "--out", out],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    return "ran 3 steps" if run.returncode == 0 else f"failed: {run.stderr.strip().splitlines()[-1]}"


def memory_bench(device: str, small: bool) -> str:
    command = [sys.executable, "bench/memory.py", "--device", device] + (["--layers", "2"] if small else [])
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if run.returncode:
        raise SystemExit(f"bench/memory.py --device {device} failed:\n{run.stderr[-3000:]}")
    return run.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--smoke-cpu", action="store_true", help="tiny models on the CPU: checks this script "
                        "before a GPU is at hand (about 4 minutes); measures nothing")
    args = parser.parse_args()
    import torch

    device, small = ("cpu", True) if args.smoke_cpu else ("cuda", False)
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu_check.py needs a CUDA GPU; run it on a GPU machine (or --smoke-cpu)")
    random.seed(0)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU smoke run"
    print(f"# {gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    paper = paper_preset(args.steps, device, small)
    speedup = paper["fp32"] / paper["bf16"]
    print(f"{'--preset paper, bf16':<52}{paper['bf16']:8.3f} s/step")
    print(f"{'--preset paper, fp32':<52}{paper['fp32']:8.3f} s/step   bf16 speed-up {speedup:.2f}x")
    qlora = qlora_llama(6, device, small)
    label = f"QLoRA 4-bit, Llama {qlora['parameters'] / 1e9:.2f}B, KL, checkpointing"
    print(f"{label:<52}{qlora['seconds']:8.3f} s/step   peak {qlora['peak_gib']:.1f} GiB, kl/mean {qlora['kl']:.4f}")
    vllm = grpo_vllm()
    print(f"{'GRPO --vllm colocate':<52}{vllm}")
    print(memory_bench(device, small))
    if args.smoke_cpu:
        return
    write_results("gpu_check", [
        {"name": "GPU: --preset paper s/step, bf16", "value": paper["bf16"], "unit": "s", "target": "",
         "note": f"{gpu}; fp32 {paper['fp32']:.3f} s"},
        {"name": "GPU: --preset paper, bf16 speed-up over fp32", "value": speedup, "unit": "x", "target": "",
         "note": "20 steps each, median after 2 warm-up steps"},
        {"name": "GPU: PPO with QLoRA (4-bit) on a 1B Llama, s/step", "value": qlora["seconds"], "unit": "s",
         "target": "", "note": f"{qlora['parameters'] / 1e9:.2f}B parameters, r=16, KL on, checkpointing, "
                               f"batch 32; peak {qlora['peak_gib']:.1f} GiB"},
        {"name": "GPU: GRPO with --vllm colocate", "value": None, "unit": "", "target": "", "note": vllm},
    ])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
