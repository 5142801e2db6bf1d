"""Trainer speed, side by side in one run:

1. PPO step time with and without the batch-entropy term (target ratio <= 1.10);
2. step time with rewards overlapped with generation vs sequential, when scoring a batch
   takes as long as generating it (target <= 0.75 of sequential);
3. with --vs-trl: a PPO step against TRL 0.9.6's classic `PPOTrainer.step`, interleaved, on the
   same GPT-2 (2x128 and 124M), batch, epochs, fp32, threads, KL off (targets <= 0.90 and <= 0.75).
   TRL runs in its own virtual environment (`make trl-baseline`) through bench/trl_classic_step.py.

    python bench/trainer.py [--task arithmetic|sentiment] [--model-size 2x128] [--batch 64]
    python bench/trainer.py --vs-trl [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import torch
from common import REPO, word_tokenizer, write_results

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


TRL_PYTHON = os.path.join(REPO, ".venv-trl096", "bin", "python")
# Both sides: batch 32, mini-batch 8, 4 epochs (16 mini-batches a step), 12-token queries, 8-token responses.
VS_TRL = {"2x128": dict(layers=2, width=128, heads=4, vocab=64), "124M": dict(layers=12, width=768, heads=12, vocab=50257)}
STEP = dict(batch=32, mini_batch=8, epochs=4, lr=1.41e-5, query_len=12, response_len=8, threads=2, seed=0)


class FixedBatchTask:
    """The task side of a fixed, pre-generated batch: no generation, stop token <eos>."""

    name, reward, reward_options, min_new_tokens, reward_deadline_s = "fixed", "none", {}, 0, 60.0

    def __init__(self, response_len: int):
        self.max_new_tokens = response_len

    def stop_token_ids(self, tokenizer):
        return [tokenizer.eos_token_id]

    def clean(self, completion):
        return completion


def ours_stepper(spec: dict):
    """rlpr's PPO step on TRL's batch: the behaviour forward pass (TRL's step does it too) and the update."""
    sys.path.insert(0, os.path.dirname(__file__))
    from trl_classic_step import fixed_batch, gpt2_config
    from transformers import GPT2LMHeadModel

    from trainer.policy import Generation
    from trainer.scorer import Scores
    from trainer.tasks.base import Prompt

    torch.manual_seed(spec["seed"])
    lm = GPT2LMHeadModel(gpt2_config(spec))
    config = TrainConfig(batch_size=spec["batch"], mini_batch_size=spec["mini_batch"], ppo_epochs=spec["epochs"],
                         lr=spec["lr"], kl_coef="0", max_grad_norm=0.0, vf_coef=0.1)
    trainer = PPOTrainer(FixedBatchTask(spec["response_len"]), word_tokenizer(spec["vocab"]), lm, config,
                         torch.device("cpu"))
    queries, responses, scores = fixed_batch(spec)
    sequences = torch.cat([queries, responses], dim=1)
    gen = Generation(sequences, torch.ones_like(sequences), torch.ones_like(responses),
                     torch.zeros_like(responses, dtype=torch.bool), queries.shape[1])
    prompts = [Prompt("")] * spec["batch"]
    reward = Scores(scores.tolist(), [True] * spec["batch"])

    def step() -> float:
        started = time.perf_counter()
        trainer.update(trainer.behaviour(prompts, gen), reward)
        return time.perf_counter() - started

    step()  # warm-up (Adam's state)
    return step


def vs_trl(rounds: int) -> list[dict]:
    if not os.path.exists(TRL_PYTHON):
        raise SystemExit(f"--vs-trl needs TRL 0.9.6 in {TRL_PYTHON}: run `make trl-baseline` first")
    rows = []
    for size, shape in VS_TRL.items():
        spec = STEP | shape
        torch.set_num_threads(spec["threads"])
        chunk = 1 if size == "124M" else 4
        trl = subprocess.Popen([TRL_PYTHON, os.path.join(os.path.dirname(__file__), "trl_classic_step.py"),
                                json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ours = ours_stepper(spec)
        assert trl.stdout.readline().strip() == "ready", "TRL's side did not start"
        times = {"rlpr": [], "trl": []}
        for _ in range(rounds):  # ABAB: drift in machine load hits both sides alike
            times["rlpr"] += [ours() for _ in range(chunk)]
            trl.stdin.write(f"{chunk}\n")
            trl.stdin.flush()
            times["trl"] += json.loads(trl.stdout.readline())
        trl.stdin.write("\n")
        trl.stdin.flush()
        trl.wait(timeout=60)
        mine, theirs = statistics.median(times["rlpr"]), statistics.median(times["trl"])
        target = 0.75 if size == "124M" else 0.90
        print(f"GPT-2 {size}: rlpr {mine:.3f} s/step, TRL 0.9.6 {theirs:.3f} s/step, ratio {mine / theirs:.3f} "
              f"(target <= {target}); {len(times['rlpr'])} steps each, interleaved")
        rows.append({"name": f"PPO step, GPT-2 {size}: rlpr ÷ TRL 0.9.6 PPOTrainer.step", "value": mine / theirs,
                     "unit": "ratio", "target": f"<= {target}",
                     "note": f"CPU, {spec['threads']} threads, fp32, KL off, batch 32, 16 mini-batches; "
                             f"{mine:.2f} vs {theirs:.2f} s"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunk", type=int, default=6, help="steps per configuration before switching")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up round)")
    parser.add_argument("--model-size", default="2x128")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--task", choices=["arithmetic", "sentiment"], default="arithmetic")
    parser.add_argument("--vs-trl", action="store_true", help="compare a PPO step with TRL 0.9.6's (see above)")
    args = parser.parse_args()
    if args.vs_trl:
        write_results("trainer-vs-trl", vs_trl(args.rounds))
        return
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
