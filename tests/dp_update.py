"""One PPO update on a fixed global batch, on however many processes launched this script.

    python tests/dp_update.py OUT.pt                                   # one process
    accelerate launch --cpu --num_processes 2 tests/dp_update.py OUT.pt

Every process builds the same model and the same 8-item rollout (generated before any
process takes its share), keeps its contiguous share of rows, and runs one update with both
entropy terms and a KL penalty on. The main process saves the parameters after the update.
"""
import dataclasses
import random
import sys

import torch

from trainer.config import TrainConfig
from trainer.distributed import DataParallel
from trainer.ppo import PPOTrainer
from trainer.scorer import Scores
from trainer.tasks.arithmetic_task import ArithmeticTask

BATCH = 8


def share(rollout, parallel):
    rows = slice(parallel.rank * BATCH // parallel.world, (parallel.rank + 1) * BATCH // parallel.world)
    gen = dataclasses.replace(rollout.gen, sequences=rollout.gen.sequences[rows],
                              attention_mask=rollout.gen.attention_mask[rows],
                              response_mask=rollout.gen.response_mask[rows], is_stop=rollout.gen.is_stop[rows])
    return dataclasses.replace(rollout, prompts=rollout.prompts[rows], completions=rollout.completions[rows], gen=gen,
                               old_logprobs=rollout.old_logprobs[rows], old_values=rollout.old_values[rows],
                               ref_logprobs=rollout.ref_logprobs[rows])


def main(out: str) -> None:
    parallel = DataParallel()
    torch.manual_seed(0)
    task = ArithmeticTask(model_size="2x32", seed=0)
    tokenizer, lm = task.load()
    config = TrainConfig(batch_size=BATCH, mini_batch_size=BATCH, ppo_epochs=2, lr=1e-2, ent_coef=0.05,
                         bent_coef=0.3, kl_coef="0.1", max_grad_norm=0.5)
    trainer = PPOTrainer(task, tokenizer, lm, config, torch.device("cpu"), parallel=parallel)
    torch.manual_seed(1)  # the same sampled batch on every process
    rollout = trainer.rollout(task.prompts(BATCH, random.Random(0)))
    rewards = [random.Random(i).random() for i in range(BATCH)]
    valid = [i != 3 for i in range(BATCH)]  # one failed item, masked out
    local = share(rollout, parallel)
    scores = Scores(parallel.shard(rewards), parallel.shard(valid))
    metrics = trainer.update(local, scores)
    if parallel.is_main:
        torch.save({"params": {n: p.detach() for n, p in trainer.policy.named_parameters()}, "metrics": metrics,
                    "world": parallel.world}, out)


if __name__ == "__main__":
    main(sys.argv[1])
