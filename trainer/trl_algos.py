"""GRPO and RLOO from TRL, with the paper's batch entropy (and, for RLOO, token entropy) added.

TRL computes per-token log-probs through a fused LM head that never materialises the
distribution, so batch entropy cannot be read from it. When a distribution-level term is
on, we run the plain forward for the training pass, compute log-probs and entropies from
the full logits, and add the terms to TRL's loss. Rewards come from the reward service
through `reward_funcs`; items whose reward failed are masked out of the loss.
"""
from __future__ import annotations

import pathlib

import torch

from trainer import losses
from trainer.ppo import diversity


class EntropyTermsMixin:
    """Adds -bent_coef * H_batch (and -extra_ent_coef * H_token) to a TRL trainer's loss."""

    bent_coef: float = 0.0
    bent_states: str = "all"
    extra_ent_coef: float = 0.0  # for trainers without TRL's own entropy_coef (RLOO)
    _terms: dict | None = None
    _valid_rows: list[bool] | None = None

    def _needs_distribution(self) -> bool:
        return self.bent_coef > 0 or self.extra_ent_coef > 0

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, **kwargs):
        if not (compute_entropy and model.training and self._needs_distribution()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, **kwargs)
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        logits = logits[:, -logits_to_keep - 1 : -1].float() / self.temperature
        tokens = input_ids[:, -logits_to_keep:]
        logps = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)
        mask = attention_mask[:, -logits_to_keep:]
        self._terms = {"batch": losses.batch_entropy(logits, mask, self.bent_states),
                       "token": losses.token_entropy(logits, mask)}
        return logps, losses.entropy_from_logits(logits), None

    def _compute_loss(self, model, inputs):
        self._terms = None
        loss = super()._compute_loss(model, inputs)
        if self._terms is None:
            return loss
        mode = "train" if self.model.training else "eval"
        scale = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        loss = loss - (self.bent_coef * self._terms["batch"] + self.extra_ent_coef * self._terms["token"]) / scale
        self._metrics[mode]["entropy/batch"].append(self._terms["batch"].item())
        self._metrics[mode]["loss/batch_entropy"].append(-self.bent_coef * self._terms["batch"].item())
        return loss

    def _generate_and_score_completions(self, inputs):
        self._valid_rows = None
        output = super()._generate_and_score_completions(inputs)
        if self._valid_rows is not None:
            valid = torch.tensor(self._valid_rows, device=output["completion_mask"].device)
            output["completion_mask"] = output["completion_mask"] * valid[:, None].to(output["completion_mask"].dtype)
            self._metrics["train"]["reward/failed_items"].append(float((~valid).sum()))
        return output


def _reward_func(trainer_ref: dict, scorer, task, reference_keys: list[str]):
    """A TRL reward function backed by the reward service; failed items become None and are masked."""
    from trainer.tasks.base import Prompt

    def programmed_reward(prompts, completions, **columns):
        references = [{k: str(columns[k][i]) for k in reference_keys} for i in range(len(prompts))]
        cleaned = [task.clean(c if isinstance(c, str) else c[-1]["content"]) for c in completions]
        scores = scorer.score([Prompt(p, r) for p, r in zip(prompts, references)], cleaned)
        trainer = trainer_ref["trainer"]
        trainer._valid_rows = list(scores.valid)
        for key, value in diversity(cleaned).items():
            trainer._metrics["train"][key].append(value)
        return [r if ok else None for r, ok in zip(scores.rewards, scores.valid)]

    return programmed_reward


def _dataset(task, config, rng):
    from datasets import Dataset

    count = config.steps * config.batch_size // config.num_generations + config.batch_size
    prompts = task.prompts(count, rng)
    return Dataset.from_list([{"prompt": p.text, **dict(p.reference)} for p in prompts])


def run_trl(config, out: pathlib.Path, rng) -> int:
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from trainer.rewards import make_scorer
    from trainer.runtime import autocast_dtype, pick_device
    from trainer.tasks import load_task

    task, tokenizer, lm = load_task(config)
    device = pick_device(config.device)
    scorer = make_scorer(config, task)
    trainer_ref: dict = {}
    common = dict(
        output_dir=str(out), max_steps=config.steps, learning_rate=config.lr, seed=config.seed,
        per_device_train_batch_size=config.batch_size, num_generations=config.num_generations,
        max_completion_length=task.max_new_tokens, temperature=config.temperature, top_k=0, top_p=1.0,
        beta=0.0 if config.kl_coef in ("0", "adaptive") else float(config.kl_coef), logging_steps=1,
        save_steps=config.save_every, report_to=["tensorboard"], use_cpu=device.type == "cpu",
        bf16=autocast_dtype(device, config.bf16) is not None, max_grad_norm=config.max_grad_norm,
        generation_kwargs={"eos_token_id": task.stop_token_ids(tokenizer)}, lr_scheduler_type="constant",
    )
    if config.algo == "grpo":
        args, trainer_cls = GRPOConfig(**common, entropy_coef=config.ent_coef), type(
            "RegularisedGRPO", (EntropyTermsMixin, GRPOTrainer), {})
    else:
        args, trainer_cls = RLOOConfig(**common), type("RegularisedRLOO", (EntropyTermsMixin, RLOOTrainer), {})
    dataset = _dataset(task, config, rng)
    reward_func = _reward_func(trainer_ref, scorer, task, [c for c in dataset.column_names if c != "prompt"])
    trainer = trainer_cls(model=lm, reward_funcs=[reward_func], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.bent_coef, trainer.bent_states = config.bent_coef, config.bent_states
    trainer.extra_ent_coef = config.ent_coef if config.algo == "rloo" else 0.0
    trainer_ref["trainer"] = trainer
    try:
        trainer.train(resume_from_checkpoint=config.resume or None)
    finally:
        scorer.close()
    _export_log(trainer, out, config)
    trainer.save_model(str(out / "checkpoint"))
    return 0


def _export_log(trainer, out: pathlib.Path, config) -> None:
    """TRL's log history to our metrics.jsonl + curves.png, under the same names as PPO's."""
    from trainer.logger import MetricsLogger

    logger = MetricsLogger(out)
    for row in trainer.state.log_history:
        if "step" not in row:
            continue
        renamed = {("reward/mean" if k == "reward" else "entropy/token" if k == "entropy" else k): v
                   for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
        logger.log(int(row["step"]), renamed)
    logger.close(f"{config.algo.upper()} {config.task}: ent={config.ent_coef} bent={config.bent_coef}")
