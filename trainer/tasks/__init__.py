"""Task registry: build the task a config names."""
from __future__ import annotations


def make_task(config):
    if config.task == "arithmetic":
        from trainer.tasks.arithmetic_task import ArithmeticTask

        return ArithmeticTask(config.model, config.arithmetic_step, config.arithmetic_model_size, config.seed)
    if config.task == "sentiment":
        from trainer.tasks.sentiment import SentimentTask

        return SentimentTask(config.model, config.sentiment_prompts, config.seed)
    if config.task == "ludii":
        from trainer.tasks.ludii_task import LudiiTask

        return LudiiTask(config.model, config.ludii_games, config.ludii_mask_names, config.ludii_min_masked,
                         config.seed, config.ludii_ludeme_tokens)
    raise ValueError(f"unknown task {config.task!r}")
