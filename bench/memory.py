"""Peak memory of one PPO update (rollout + update) for a model of Pythia 410M's shape, side by side:
full fine-tuning with and without KL, LoRA r=16 with and without KL, LoRA r=16 with gradient
checkpointing. Batch 8, response 32 tokens, prompts of 16, one mini-batch, fp32.

Each variant runs in a fresh process, so one variant's peak cannot hide another's. On a CPU the
figure is the process's peak resident memory (it includes Python and torch, ~0.4 GB); on a GPU,
`torch.cuda.max_memory_allocated`. Targets: LoRA + checkpointing <= 0.5x full fine-tuning, and
LoRA with KL <= 1.05x LoRA without (the reference is the base with adapters off, not a copy).

    python bench/memory.py [--device cpu|cuda] [--layers 24]   # --layers 2 for a quick look
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

from common import REPO, machine, word_tokenizer, write_results

VARIANTS = {
    "full fine-tuning": {},
    "full fine-tuning + KL": {"kl_coef": "0.05"},
    "LoRA r=16": {"peft": "lora"},
    "LoRA r=16 + KL": {"peft": "lora", "kl_coef": "0.05"},
    "LoRA r=16 + gradient checkpointing": {"peft": "lora", "gradient_checkpointing": True},
}
BATCH, RESPONSE, PROMPT, VOCAB = 8, 32, 16, 50304


class SyntheticTask:
    """Random prompts over a word-level vocabulary as large as Pythia's; every response is 32 tokens."""

    name = "synthetic"
    reward = "none"
    reward_options: dict = {}
    max_new_tokens = min_new_tokens = RESPONSE
    reward_deadline_s = 60.0

    def __init__(self):
        self.tokenizer = word_tokenizer(VOCAB)

    def prompts(self, n, rng):
        from trainer.tasks.base import Prompt

        return [Prompt(" ".join(f"w{rng.randrange(3, VOCAB)}" for _ in range(PROMPT))) for _ in range(n)]

    def stop_token_ids(self, tokenizer):
        return [tokenizer.eos_token_id]

    def clean(self, completion):
        return completion


def pythia_410m(layers: int):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=1024, num_hidden_layers=layers, num_attention_heads=16,
                           intermediate_size=4096, rotary_pct=0.25, max_position_embeddings=2048,
                           use_parallel_residual=True, eos_token_id=2, bos_token_id=2, pad_token_id=0)
    return GPTNeoXForCausalLM(config)


def measure(variant: str, device_name: str, layers: int) -> dict:
    """One variant in this process: peak memory and seconds of one rollout + update (after a warm-up one)."""
    import torch

    from trainer import models
    from trainer.config import TrainConfig
    from trainer.ppo import PPOTrainer
    from trainer.scorer import Scores

    device = torch.device(device_name)
    config = TrainConfig(batch_size=BATCH, mini_batch_size=BATCH, ppo_epochs=1, lr=1e-5, device=device_name,
                         **VARIANTS[variant])
    task = SyntheticTask()
    lm = models.prepare(pythia_410m(layers), config)
    trainer = PPOTrainer(task, task.tokenizer, lm, config, device)
    rng = random.Random(0)
    scores = Scores([rng.random() for _ in range(BATCH)], [True] * BATCH)
    seconds = []
    for _ in range(2):  # the first update also allocates Adam's state
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.update(trainer.rollout(task.prompts(BATCH, rng)), scores)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    parameters = sum(p.numel() for p in trainer.policy.parameters())
    trainable = sum(p.numel() for p in trainer.params)
    return {"peak_bytes": peak, "seconds": seconds[-1], "parameters": parameters, "trainable": trainable}


def run_all(device: str, layers: int) -> dict[str, dict]:
    results = {}
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--one", variant, "--device", device, "--layers", str(layers)],
                             cwd=REPO, capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  measured {variant}", file=sys.stderr, flush=True)
    return results


def report(results: dict[str, dict], device: str, layers: int) -> list[dict]:
    full = results["full fine-tuning"]
    what = "peak RSS" if device == "cpu" else "max_memory_allocated"
    print(f"one PPO update, GPT-NeoX {layers}x1024 (Pythia 410M's shape: "
          f"{full['parameters'] / 1e6:.0f}M parameters), batch {BATCH}, response {RESPONSE}, fp32, {device}")
    print(f"{'variant':<38}{'trainable':>12}{what:>22}{'x full':>8}{'s/update':>10}{'x full':>8}")
    for name, r in results.items():
        print(f"{name:<38}{r['trainable'] / 1e6:>11.1f}M{r['peak_bytes'] / 2**30:>19.2f} GiB"
              f"{r['peak_bytes'] / full['peak_bytes']:>8.2f}{r['seconds']:>10.2f}{r['seconds'] / full['seconds']:>8.2f}")
    lora, lora_kl = results["LoRA r=16"], results["LoRA r=16 + KL"]
    checkpointed = results["LoRA r=16 + gradient checkpointing"]
    ratio_gc = checkpointed["peak_bytes"] / full["peak_bytes"]
    ratio_kl = lora_kl["peak_bytes"] / lora["peak_bytes"]
    print(f"LoRA + checkpointing / full: {ratio_gc:.2f} (target <= 0.50: {'met' if ratio_gc <= 0.5 else 'missed'})")
    print(f"LoRA + KL / LoRA:            {ratio_kl:.3f} (target <= 1.05: {'met' if ratio_kl <= 1.05 else 'missed'})")
    return [
        {"name": f"PPO update memory ({device}), LoRA r=16 + checkpointing ÷ full fine-tuning", "value": ratio_gc,
         "unit": "ratio", "target": "<= 0.50", "note": f"{what}; Pythia-410M shape, batch 8, response 32"},
        {"name": f"PPO update memory ({device}), LoRA r=16 with KL ÷ without", "value": ratio_kl, "unit": "ratio",
         "target": "<= 1.05", "note": "the KL reference is the base with adapters disabled"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--layers", type=int, default=24, help="24 is Pythia 410M; fewer for a quick look")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one variant in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.layers)))
        return
    print(f"# {machine()}")
    rows = report(run_all(args.device, args.layers), args.device, args.layers)
    if args.layers == 24:
        write_results(f"memory-{args.device}", rows)


if __name__ == "__main__":
    main()
