"""`rlpr export`: turn a run's checkpoint into a standalone model that `from_pretrained` loads.

A LoRA checkpoint holds only adapters (and PPO's value head); `--merge` puts them back on the
run's base model (rebuilt from the run's config.json, in full precision) and folds them into its
weights. A full checkpoint is written out as it is.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from dataclasses import dataclass
from typing import Annotated

import tyro

from reward_contract.errors import ConfigError


@dataclass
class ExportConfig:
    """Write a run's checkpoint as a standalone Hugging Face model (merging LoRA adapters with --merge)."""

    checkpoint: Annotated[str, tyro.conf.Positional]
    """A run's checkpoint directory, e.g. runs/latest/checkpoint."""
    out: Annotated[str, tyro.conf.Positional]
    """Where to write the model and its tokenizer."""
    merge: bool = False
    """Fold LoRA adapters into the base model's weights (needed for a LoRA checkpoint)."""


def run_config(checkpoint: pathlib.Path):
    """The training config of the run a checkpoint belongs to (its config.json, one level up)."""
    from trainer.config import SFTConfig, TrainConfig

    path = checkpoint.parent / "config.json"
    if not path.exists():
        raise ConfigError(f"{path} not found: `rlpr export` needs the run directory that `rlpr train` or "
                          "`rlpr sft` wrote around the checkpoint")
    values = json.loads(path.read_text())
    kind = TrainConfig if "algo" in values else SFTConfig
    names = {f.name for f in dataclasses.fields(kind)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    # The base is rebuilt in full precision on one process: adapters merge into real weights, not k-bit ones.
    overrides = {"load_in": "none", "gradient_checkpointing": False, "processes": 1, "vllm": "off"}
    return kind(**values | {k: v for k, v in overrides.items() if k in names})


def run_export(config: ExportConfig) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer import models
    from trainer.tasks import load_task

    checkpoint = pathlib.Path(config.checkpoint)
    if not (checkpoint / "config.json").exists() and not models.holds_adapters(checkpoint):
        raise ConfigError(f"{checkpoint} is not a checkpoint: it has neither config.json nor {models.ADAPTER_CONFIG}")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if models.holds_adapters(checkpoint):
        if not config.merge:
            raise ConfigError(f"{checkpoint} holds LoRA adapters, not a whole model: add --merge to fold them "
                              "into the base model")
        _, _, lm = load_task(run_config(checkpoint), str(checkpoint))
        lm = lm.merge_and_unload()
    else:
        lm = AutoModelForCausalLM.from_pretrained(checkpoint)
    lm.save_pretrained(config.out)
    tokenizer.save_pretrained(config.out)
    print(f"model: {config.out}")
    return 0
