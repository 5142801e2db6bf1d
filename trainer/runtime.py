"""Device, precision and seeding: GPU with bf16 where supported, CPU otherwise."""
from __future__ import annotations

import random

import torch


def pick_device(spec: str, local_rank: int = 0) -> torch.device:
    """The device a --device spec names; `auto` is this process's GPU (one per process) when there is one."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        from reward_contract.errors import ConfigError

        raise ConfigError(f"--device {spec} asked for CUDA, but torch sees no GPU; use --device cpu or auto")
    return device


def autocast_dtype(device: torch.device, bf16: bool):
    """bf16 autocast on GPUs that support it; None (full precision) elsewhere."""
    if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def seed_everything(seed: int, rank: int = 0) -> random.Random:
    """Seed python and torch. Under data parallelism each process samples its own completions
    (torch seeded with seed + rank), while the returned stream of prompts is the same everywhere."""
    random.seed(seed)
    torch.manual_seed(seed + rank)
    return random.Random(seed)
