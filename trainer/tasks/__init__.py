"""Task registry: build the task a config names, and load its model."""
from __future__ import annotations

from reward_contract.errors import ConfigError


def make_task(config):
    if config.task == "arithmetic":
        from trainer.tasks.arithmetic_task import ArithmeticTask

        return ArithmeticTask(config.model, config.arithmetic_step, config.arithmetic_model_size, config.seed,
                              max_new_tokens=config.arithmetic_max_new_tokens)
    if config.task == "sentiment":
        from trainer.tasks.sentiment import SentimentTask

        return SentimentTask(config.model, config.sentiment_prompts, config.seed)
    if config.task == "ludii":
        from trainer.tasks.ludii_task import LudiiTask

        return LudiiTask(config.model, config.ludii_games, config.ludii_mask_names, config.ludii_min_masked,
                         config.seed, config.ludii_ludeme_tokens, config.ludii_model_size)
    raise ValueError(f"unknown task {config.task!r}")


def load_task(config, checkpoint: str = "", wrap_lora: bool = True):
    """(task, tokenizer, causal LM) for a config, prepared by trainer.models (LoRA, k-bit, checkpointing).

    `checkpoint` resumes from a saved run: a whole model replaces the config's, and a checkpoint
    of LoRA adapters is put back on the config's base model. A missing data file or an
    unloadable model is a configuration error with the path in it, not a traceback.
    """
    from trainer import models

    adapters = checkpoint if checkpoint and models.holds_adapters(checkpoint) else ""
    try:
        task = make_task(config)
        if checkpoint and not adapters:
            task.model = checkpoint
        tokenizer, lm = task.load(**models.pretrained_kwargs(config))
    except (OSError, ValueError) as exc:  # FileNotFoundError is an OSError; transformers raises OSError too
        what = checkpoint or getattr(config, "model", "") or config.task
        raise ConfigError(f"cannot set up task {config.task!r} (model/data {what!r}): {exc}") from exc
    return task, tokenizer, models.prepare(lm, config, adapters, wrap_lora)
