"""TRL 0.9.6's classic `PPOTrainer.step`, timed on request: the other side of bench/trainer.py --vs-trl.

Runs in its own virtual environment (TRL 0.9.6 and transformers 4.44 cannot share one with rlpr):

    make trl-baseline        # creates .venv-trl096

It builds the same GPT-2 from a config and the same fixed batch as rlpr's side (both from seeded
torch generators), then reads commands on stdin: a number N runs N steps and prints their
seconds as JSON; an empty line ends it. The first step, which allocates Adam's state, runs at start.
"""
from __future__ import annotations

import json
import sys
import time

import torch
from common import word_tokenizer


def fixed_batch(spec: dict):
    """Queries, responses and scores shared by both sides: token ids from a seeded generator."""
    generator = torch.Generator().manual_seed(spec["seed"])
    queries = torch.randint(3, spec["vocab"], (spec["batch"], spec["query_len"]), generator=generator)
    responses = torch.randint(3, spec["vocab"], (spec["batch"], spec["response_len"]), generator=generator)
    scores = torch.rand(spec["batch"], generator=generator)
    return queries, responses, scores


def gpt2_config(spec: dict):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=spec["vocab"], n_positions=64, n_embd=spec["width"], n_layer=spec["layers"],
                      n_head=spec["heads"], bos_token_id=2, eos_token_id=2, pad_token_id=0)


def main() -> None:
    from transformers import GPT2LMHeadModel
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    model = AutoModelForCausalLMWithValueHead(GPT2LMHeadModel(gpt2_config(spec)))
    model.is_peft_model = False
    config = PPOConfig(batch_size=spec["batch"], mini_batch_size=spec["mini_batch"], ppo_epochs=spec["epochs"],
                       learning_rate=spec["lr"], init_kl_coef=0.0, adap_kl_ctrl=False, vf_coef=0.1, seed=spec["seed"],
                       log_with=None)
    trainer = PPOTrainer(config, model, ref_model=None, tokenizer=word_tokenizer(spec["vocab"]))
    queries, responses, scores = fixed_batch(spec)
    step_args = (list(queries), list(responses), list(scores))
    trainer.step(*step_args)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        seconds = []
        for _ in range(int(line)):
            started = time.perf_counter()
            trainer.step(*step_args)
            seconds.append(time.perf_counter() - started)
        print(json.dumps(seconds), flush=True)


if __name__ == "__main__":
    main()
