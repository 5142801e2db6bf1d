"""Trainer speed, side by side in one run:

1. PPO step time with and without the batch-entropy term (target ratio <= 1.10);
2. step time with rewards overlapped with generation vs sequential, when scoring a batch
   takes as long as generating it (target <= 0.75 of sequential).

    python bench/trainer.py [--task arithmetic|sentiment] [--model-size 2x128] [--batch 64]
"""
from __future__ import annotations

import argparse
import random
import time

import torch
from common import write_results

from reward_service.core.local_client import LocalRewardClient
from trainer.config import TrainConfig
from trainer.ppo import PPOTrainer, train_steps
from trainer.scorer import RewardScorer
from trainer.tasks.arithmetic_task import ArithmeticTask
from trainer.tasks.sentiment import SentimentTask


class SlowClient(LocalRewardClient):
    """The in-process reward, made to take `delay_s` per batch (a remote service's latency)."""

    def __init__(self, delay_s: float):
        super().__init__()
        self.delay_s = delay_s

    def score(self, *args, **kwargs):
        time.sleep(self.delay_s)
        return super().score(*args, **kwargs)


def make(task_name: str, model_size: str, batch: int, **hyper) -> PPOTrainer:
    torch.manual_seed(0)
    task = ArithmeticTask(model_size=model_size, step="random") if task_name == "arithmetic" else SentimentTask()
    tokenizer, lm = task.load()
    return PPOTrainer(task, tokenizer, lm, TrainConfig(batch_size=batch, mini_batch_size=batch // 4, lr=1e-4, **hyper),
                      torch.device("cpu"))


def interleaved(trainers: dict, clients: dict, overlap: dict, chunk: int, rounds: int) -> dict[str, float]:
    """Seconds per step of each configuration, run in alternating chunks (ABAB...) so that drift
    in machine load hits every configuration alike. The first round is warm-up."""
    scorers = {k: RewardScorer(clients[k], t.task.reward, t.task.reward_options, 120) for k, t in trainers.items()}
    rngs = {k: random.Random(0) for k in trainers}
    totals = {k: 0.0 for k in trainers}
    for round_index in range(rounds + 1):
        for key, trainer in trainers.items():
            t0 = time.perf_counter()
            start = round_index * chunk
            train_steps(trainer, scorers[key], rngs[key], range(start, start + chunk), overlap[key],
                        lambda *args: None)
            if round_index:
                totals[key] += time.perf_counter() - t0
    for scorer in scorers.values():
        scorer.close()
    return {k: v / (rounds * chunk) for k, v in totals.items()}


def generation_seconds(trainer, batch: int) -> float:
    rng = random.Random(1)
    trainer.rollout(trainer.task.prompts(batch, rng))
    t0 = time.perf_counter()
    for _ in range(3):
        trainer.rollout(trainer.task.prompts(batch, rng))
    return (time.perf_counter() - t0) / 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunk", type=int, default=6, help="steps per configuration before switching")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up round)")
    parser.add_argument("--model-size", default="2x128")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--task", choices=["arithmetic", "sentiment"], default="arithmetic")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core for the learner; the other is the reward side's

    def build(**hyper):
        return make(args.task, args.model_size, args.batch, **hyper)

    local = LocalRewardClient
    bent_times = interleaved({"plain": build(), "bent": build(bent_coef=0.3)}, {"plain": local(), "bent": local()},
                             {"plain": False, "bent": False}, args.chunk, args.rounds)
    plain, bent = bent_times["plain"], bent_times["bent"]
    gen = generation_seconds(build(), args.batch)
    overlap_times = interleaved({"sequential": build(), "overlapped": build()},
                                {"sequential": SlowClient(gen), "overlapped": SlowClient(gen)},
                                {"sequential": False, "overlapped": True}, args.chunk, args.rounds)
    sequential, overlapped = overlap_times["sequential"], overlap_times["overlapped"]

    print(f"{args.task}: GPT-2 {args.model_size if args.task == 'arithmetic' else '2x64 word-level'}, "
          f"batch {args.batch}, 4 PPO epochs, CPU, mean s/step over {args.rounds} interleaved rounds of {args.chunk}")
    print(f"{'PPO step, no batch entropy':<44}{plain:8.3f}")
    print(f"{'PPO step, batch entropy 0.3':<44}{bent:8.3f}   ratio {bent / plain:.3f} (target <= 1.10)")
    print(f"{'generation of one batch (= reward latency)':<44}{gen:8.3f}")
    print(f"{'step, rewards sequential':<44}{sequential:8.3f}")
    print(f"{'step, rewards overlapped':<44}{overlapped:8.3f}   ratio {overlapped / sequential:.3f} (target <= 0.75)")
    # Hiding the reward completely leaves generation + update: the best ratio this model allows.
    ideal = plain / (plain + gen)
    print(f"{'best possible ratio, reward fully hidden':<44}{ideal:8.3f}   (update is {plain / gen - 1:.1f}x generation)")
    write_results(f"trainer-{args.task}", [
        {"name": f"PPO step ({args.task}), batch entropy ÷ plain", "value": bent / plain, "unit": "ratio",
         "target": "<= 1.10", "note": "plain PPO still computes H_batch for its logs (forward only)"},
        {"name": f"training step ({args.task}), overlapped ÷ sequential rewards", "value": overlapped / sequential,
         "unit": "ratio", "target": "<= 0.75", "note": f"estimated best here {ideal:.2f}: the update takes "
                                                        f"{plain / gen - 1:.1f}x the generation time"},
    ])


if __name__ == "__main__":
    main()
