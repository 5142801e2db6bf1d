"""GRPO and RLOO from TRL, with the paper's batch entropy (and, for RLOO, token entropy) added.

TRL is used through its public extension points: rewards come from the reward service as a
`reward_funcs` entry (reward_contract.integrations.trl), our loss terms are added in
`compute_loss` and logged in `log`, the stop tokens reach TRL through the model's generation
config, and dropout is off through `disable_dropout`. One hook is private, because TRL offers
none for it; `BatchEntropyMixin` documents it and tests/test_trl_and_sft.py fails loudly if TRL
changes it.

Sampling and learning use one distribution: TRL samples at the configured temperature with no
token bans, and computes log-probs from the same temperature-scaled logits; our terms do too.
An item whose reward failed gets None: TRL leaves it out of its group's baseline and gives it
no advantage.
"""
from __future__ import annotations

import pathlib
import sys
import warnings
from collections import defaultdict

import torch
from transformers import TrainerCallback

from reward_contract.errors import ConfigError
from reward_contract.integrations.trl import RlprReward
from trainer import losses
from trainer.distributed import DataParallel
from trainer.policy import position_ids
from trainer.ppo import diversity
from trainer.sampling import log_probs_of

PRIVATE_HOOK = "_get_per_token_logps_and_entropies"


class BatchEntropyMixin:
    """Adds -bent_coef * H_batch (and -extra_ent_coef * H_token) to a TRL trainer's loss.

    The one private override is `_get_per_token_logps_and_entropies`: TRL computes log-probs
    through a fused LM head that never materialises p(.|s), so batch entropy cannot be read from
    it. While training with one of our terms on, this runs the plain forward (with position ids
    that ignore left padding, as generation uses), takes log-probs and entropies from the full
    logits, and keeps the terms for `compute_loss` to add.
    """

    bent_coef: float = 0.0
    bent_states: str = "all"
    extra_ent_coef: float = 0.0  # for trainers without TRL's own entropy_coef (RLOO)
    stop_ids: tuple[int, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._terms = None
        self._ours: dict[str, list[float]] = defaultdict(list)
        self._parallel = DataParallel()

    def _needs_distribution(self) -> bool:
        return self.bent_coef > 0 or self.extra_ent_coef > 0

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, **kwargs):
        if not (compute_entropy and model.training and self._needs_distribution()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, **kwargs)
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       position_ids=position_ids(attention_mask)).logits
        logits = logits[:, -logits_to_keep - 1: -1].float() / self.args.temperature
        tokens = input_ids[:, -logits_to_keep:]
        mask = attention_mask[:, -logits_to_keep:]
        state_mask = mask
        if self.bent_states == "last":
            is_stop = torch.isin(tokens, torch.tensor(self.stop_ids, device=tokens.device))
            state_mask = losses.answer_state_mask(mask, is_stop)
        # pbar is the mean over the states of every process. DDP averages gradients over processes,
        # and each process's copy of the (global) term only reaches its own states: scaling by the
        # world size makes the averaged gradient the single-process one.
        world = self.accelerator.num_processes
        batch = losses.batch_entropy(logits, state_mask, sum_across=self._parallel.sum_differentiable)
        self._terms = {"batch": batch * world, "token": losses.token_entropy(logits, mask)}
        return log_probs_of(logits, tokens), losses.entropy_from_logits(logits), None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._terms = None
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self._terms is None:
            return loss
        # TRL divides its training loss by the accumulation steps; our terms follow it.
        scale = self.current_gradient_accumulation_steps if model.training else 1.0
        batch, token = self._terms["batch"], self._terms["token"]
        value = batch.item() / self.accelerator.num_processes
        self._ours["entropy/batch"].append(value)
        self._ours["loss/batch_entropy"].append(-self.bent_coef * value)
        return loss - (self.bent_coef * batch + self.extra_ent_coef * token) / scale

    def create_model_card(self, *args, **kwargs) -> None:
        """TRL writes a README.md stub into the run directory at every save; the run's config.json
        and curves say what the run was."""

    def log(self, logs, start_time=None):
        for key, values in self._ours.items():
            if values:
                logs[key] = sum(values) / len(values)
        self._ours.clear()
        super().log(logs, start_time)


class TrainerReward(RlprReward):
    """The service-backed reward, also logging how varied each batch is and, on the main process,
    writing samples.jsonl as PPO does."""

    samples = None  # an open file on the main process
    batches = 0

    def after_batch(self, items, results, log_metric):
        texts = [item.completion for item in items]
        if log_metric:
            for key, value in diversity(texts).items():
                log_metric(key, value)
        if self.samples is not None:
            from trainer.cli import write_samples

            write_samples(self.samples, self.batches, [item.prompt for item in items], texts)
        self.batches += 1


def _dataset(task, config, rng):
    from datasets import Dataset

    count = config.steps * config.batch_size // config.num_generations + config.batch_size
    prompts = task.prompts(count, rng)
    return Dataset.from_list([{"prompt": p.text, **dict(p.reference)} for p in prompts])


def build_trainer(config, out: pathlib.Path, rng):
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from trainer.runtime import autocast_dtype, pick_device
    from trainer.summary import baseline_for
    from trainer.tasks import load_task

    if config.top_k or config.top_p < 1.0:
        raise ConfigError("--top-k/--top-p work with --algo ppo only: TRL computes log-probs from the "
                          "temperature-scaled distribution, so GRPO/RLOO would learn from one they do not sample")
    from trainer import models

    # transformers 5 renamed gradient checkpointing; TRL 1.16 still calls it by the old names, on every step.
    warnings.filterwarnings("ignore", message=r"`\w*gradient_checkpointing\w*` is deprecated", category=FutureWarning)
    parallel = DataParallel()
    # TRL wraps LoRA itself (peft_config) and uses the adapter-disabled model as its KL reference.
    task, tokenizer, lm = load_task(config, wrap_lora=False)
    device = pick_device(config.device, parallel.local_rank)
    stop_ids = task.stop_token_ids(tokenizer)
    # TRL builds the completion mask from the model's generation config: no token after a stop is trained.
    lm.generation_config.eos_token_id = stop_ids
    lm.generation_config.pad_token_id = tokenizer.pad_token_id
    common = dict(
        output_dir=str(out), max_steps=config.steps, learning_rate=config.lr, seed=config.seed,
        per_device_train_batch_size=config.batch_size // parallel.world, num_generations=config.num_generations,
        max_completion_length=task.max_new_tokens, temperature=config.temperature, top_k=0, top_p=1.0,
        beta=0.0 if config.kl_coef in ("0", "adaptive") else float(config.kl_coef), logging_steps=1,
        # TRL's own logging is replaced by RunLog (metrics.jsonl, TensorBoard, one progress bar).
        save_steps=config.save_every, save_total_limit=1, report_to=[], disable_tqdm=True,
        use_cpu=device.type == "cpu",
        bf16=autocast_dtype(device, config.bf16) is not None, max_grad_norm=config.max_grad_norm or None,
        lr_scheduler_type="constant", disable_dropout=True,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        use_vllm=config.vllm != "off", **({"vllm_mode": config.vllm} if config.vllm != "off" else {}),
    )
    if config.algo == "grpo":
        args, base = GRPOConfig(**common, entropy_coef=config.ent_coef), GRPOTrainer
    else:
        args, base = RLOOConfig(**common), RLOOTrainer
    trainer_class = type(f"Regularised{base.__name__}", (BatchEntropyMixin, base), {})
    dataset = _dataset(task, config, rng)
    choice, options = config.reward_for(task)
    reward = TrainerReward(choice, config.reward_url, config.reward_token,
                           options, config.reward_deadline_s or task.reward_deadline_s,
                           [c for c in dataset.column_names if c != "prompt"], task.clean, config.timeout_reward)
    trainer = trainer_class(model=lm, reward_funcs=[reward], args=args, train_dataset=dataset,
                            processing_class=tokenizer, peft_config=models.lora_config(config))
    trainer.bent_coef, trainer.bent_states, trainer.stop_ids = config.bent_coef, config.bent_states, tuple(stop_ids)
    trainer.extra_ent_coef = config.ent_coef if config.algo == "rloo" else 0.0
    trainer.baseline = baseline_for(config, task)  # for the run's closing lines
    return trainer, reward


def run_trl(config, out: pathlib.Path, rng) -> int:
    from trainer.summary import closing

    trainer, reward = build_trainer(config, out, rng)
    main = trainer.accelerator.is_main_process
    if main and trainer.accelerator.num_processes > 1:
        how = "sharded with FSDP" if getattr(trainer, "is_fsdp_enabled", False) else "data parallel"
        print(f"rlpr train: {config.algo} on {trainer.accelerator.num_processes} processes, {how}", file=sys.stderr)
    resume = bool(config.resume) and any(out.glob("checkpoint-*"))
    run_log = RunLog(out, config, resume) if main else None
    if main:
        from transformers.trainer_callback import PrinterCallback
        from transformers.utils import logging as hf_logging

        trainer.remove_callback(PrinterCallback)  # it prints every log dictionary whole
        trainer.add_callback(run_log)
        hf_logging.disable_progress_bar()  # a bar per checkpoint write ("Writing model shards")
        # Known, harmless on this path, and printed every step or save: TRL's generation without an
        # attention mask (its own padding) and checkpoint rotation's mtime note. Errors still print.
        hf_logging.set_verbosity_error()
        reward.samples = (out / "samples.jsonl").open("a" if resume else "w", encoding="utf-8")
    baseline = trainer.baseline
    try:
        trainer.train(resume_from_checkpoint=resume or None)
    finally:
        reward.close()
        if main:
            reward.samples.close()
            png = run_log.close(baseline)
    trainer.save_model(str(out / "checkpoint"))  # every process takes part; the main one writes
    if main:
        print(closing(run_log.logger.path, png, out / "checkpoint", baseline))
    return 0


_TRL_NAMES = {"reward": "reward/mean", "entropy": "entropy/token", "rlpr/failed_items": "reward/failed_items",
              "rlpr/unavailable": "reward/unavailable"}


class RunLog(TrainerCallback):
    """TRL's logs as PPO's: metrics.jsonl and TensorBoard as they come, under PPO's names, and one
    progress bar with the reward on it (TRL prints each step's whole log dictionary instead)."""

    def __init__(self, out: pathlib.Path, config, resume: bool):
        from tqdm import tqdm

        from trainer.logger import MetricsLogger

        self.config = config
        self.logger = MetricsLogger(out, resume=resume)
        self.bar = tqdm(total=config.steps, desc=f"{config.algo} {config.task}", unit="step", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.n = state.global_step
        self.bar.refresh()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_runtime" in logs:  # the end-of-training summary, not a step
            return
        renamed = {_TRL_NAMES.get(k, k): v for k, v in logs.items() if isinstance(v, (int, float))}
        self.logger.log(state.global_step, renamed)
        nan = float("nan")
        self.bar.set_postfix(reward=f"{renamed.get('reward/mean', nan):.3f}",
                             ent=f"{renamed.get('entropy/token', nan):.2f}",
                             failed=int(renamed.get("reward/failed_items", 0)))

    def close(self, baseline):
        self.bar.close()
        return self.logger.close(f"{self.config.algo.upper()} {self.config.task}: ent={self.config.ent_coef} "
                                 f"bent={self.config.bent_coef}", baseline)
