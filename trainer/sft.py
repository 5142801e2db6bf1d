"""Supervised (causal-LM) training: the arithmetic baseline of the paper (Fig. 5) and Ludii FIM pre-training.

The loss is on the target tokens only. Every `eval_every` steps the validation loss is
measured on a fixed held-out set and, through the reward client, the mean reward of
sampled completions, so supervised and RL runs can be compared on one axis.
"""
from __future__ import annotations

import pathlib
import random

import torch
from tqdm import tqdm

from trainer import models
from trainer.logger import MetricsLogger
from trainer.policy import decode_completions, generate, position_ids, sampling_distribution
from trainer.runtime import autocast_dtype, pick_device, seed_everything
from trainer.scorer import open_scorer
from trainer.tasks import load_task


def encode(tokenizer, pairs: list[tuple[str, str]], device):
    """Left-padded prompt+target with labels only on the target (and its EOS)."""
    rows = []
    for prompt, target in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        t = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        limit = getattr(tokenizer, "model_max_length", 1024) or 1024
        ids = (p + t)[-min(limit, 1024):]
        labels = ([-100] * len(p) + t)[-len(ids):]
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, width - len(ids):] = torch.tensor(ids)
        labels[i, width - len(ids):] = torch.tensor(lab)
        attention[i, width - len(ids):] = 1
    return input_ids.to(device), attention.to(device), labels.to(device)


def lm_loss(lm, input_ids, attention, labels):
    logits = lm(input_ids=input_ids, attention_mask=attention, position_ids=position_ids(attention)).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                             ignore_index=-100)


@torch.no_grad()
def evaluate(lm, tokenizer, task, val_pairs, val_prompts, scorer, device) -> dict[str, float]:
    lm.eval()
    losses = [lm_loss(lm, *encode(tokenizer, val_pairs[i:i + 32], device)).item() for i in range(0, len(val_pairs), 32)]
    metrics = {"val/loss": sum(losses) / len(losses)}
    distribution = sampling_distribution(tokenizer, task.stop_token_ids(tokenizer), task.min_new_tokens, 1.0)
    gen = generate(lm, tokenizer, [p.text for p in val_prompts], distribution, task.max_new_tokens, device)
    scores = scorer.score(val_prompts, decode_completions(tokenizer, gen, task.clean))
    ok = [r for r, valid in zip(scores.rewards, scores.valid) if valid]
    metrics["reward/mean"] = sum(ok) / len(ok) if ok else float("nan")
    lm.train()
    return metrics


def run_supervised(config) -> int:
    rng = seed_everything(config.seed)
    task, tokenizer, lm = load_task(config)
    device = pick_device(config.device)
    lm.to(device).train()
    optimizer = torch.optim.AdamW(models.trainable_parameters(lm), lr=config.lr)  # only the adapters, with --peft
    val_rng = random.Random(config.seed + 1)
    val_pairs = task.supervised_texts(config.eval_batches * config.batch_size, val_rng, "validation")
    val_prompts = task.prompts(config.eval_batches * config.batch_size, val_rng)
    scorer = open_scorer(config.reward_url, config.reward_token, task.reward, task.reward_options,
                         task.reward_deadline_s)
    out = pathlib.Path(config.out)
    logger = MetricsLogger(out)
    dtype = autocast_dtype(device, config.bf16)
    bar = tqdm(range(config.steps), desc=f"sft {config.task}", unit="step", dynamic_ncols=True)
    try:
        for step in bar:
            batch = encode(tokenizer, task.supervised_texts(config.batch_size, rng, "train"), device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = lm_loss(lm, *batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            metrics = {"loss/lm": loss.item()}
            if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
                metrics |= evaluate(lm, tokenizer, task, val_pairs, val_prompts, scorer, device)
                bar.set_postfix(val_loss=f"{metrics['val/loss']:.3f}", reward=f"{metrics['reward/mean']:.3f}")
            logger.log(step, metrics)
    finally:
        scorer.close()
        png = logger.close(f"supervised {config.task}")
    lm.save_pretrained(out / "checkpoint")
    tokenizer.save_pretrained(out / "checkpoint")
    print(f"metrics: {logger.path}\ncurves:  {png}\nmodel:   {out / 'checkpoint'}")
    return 0
