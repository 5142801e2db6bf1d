"""Training configuration: one dataclass per command, validated at start-up.

Field docstrings become `rlpr train --help`. Every check says how to fix the value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from reward_service.errors import ConfigError


def _positive(config, *names: str) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(config, name)}")


@dataclass
class TaskOptions:
    """Settings shared by RL training and the supervised baseline."""

    task: Literal["arithmetic", "sentiment", "ludii"] = "arithmetic"
    """Which task to train on."""
    model: str = ""
    """Causal LM name or path. Empty: the task's default (arithmetic: GPT-2 from scratch;
    sentiment: a tiny word-level GPT-2 built from config; ludii: required)."""
    out: str = "runs/latest"
    """Run directory: metrics.jsonl, TensorBoard events, curves.png, checkpoints."""
    seed: int = 0
    """Seed for python, torch and the task's sampling."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, or `cuda[:N]`."""
    bf16: bool = True
    """Use bf16 autocast on GPUs that support it (ignored on CPU)."""
    arithmetic_step: Literal["last", "random"] = "last"
    """Which step to ask for: the final sum (authors' code) or a random step (paper's text)."""
    arithmetic_model_size: str = "4x128"
    """Layers x width of the from-scratch GPT-2, e.g. 2x64 for a fast CPU demo."""
    sentiment_prompts: str = "shipped"
    """`imdb` (Hugging Face datasets, needs network or a cache), `shipped` (prefixes bundled with rlpr), or a text file."""
    ludii_games: str = "../shared/ludii/games_train.json"
    """Ludii games JSON (list of {description, code}) for the fill-in-the-middle task."""
    ludii_mask_names: bool = True
    """Mask game and piece names in the Ludii FIM dataset."""
    ludii_min_masked: float = 0.2
    """Keep only Ludii FIM samples with at least this fraction of the description masked (0 disables)."""
    ludii_ludeme_tokens: bool = False
    """Add every Ludii ludeme (e.g. `(board`) to the tokenizer as one token."""

    def _check_task(self) -> None:
        rows, _, width = self.arithmetic_model_size.partition("x")
        if not (rows.isdigit() and width.isdigit() and int(rows) > 0 and int(width) > 0):
            raise ConfigError(f"--arithmetic-model-size {self.arithmetic_model_size!r} is not LAYERSxWIDTH, e.g. 4x128")
        if self.task == "ludii" and not self.model:
            raise ConfigError("--task ludii needs --model (a causal LM name or path, ideally after `rlpr sft --task ludii`)")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"--device {self.device!r} must be auto, cpu or cuda[:N]")
        if not 0 <= self.ludii_min_masked < 1:
            raise ConfigError("--ludii-min-masked must be in [0, 1)")


@dataclass
class TrainConfig(TaskOptions):
    """Train a language model on programmed rewards with PPO (the paper), GRPO or RLOO."""

    algo: Literal["ppo", "grpo", "rloo"] = "ppo"
    """PPO is rlpr's own (value head, GAE, clipping, adaptive KL); GRPO and RLOO are TRL's, with our terms added."""
    steps: int = 100
    """Number of rollout batches (PPO) or optimizer steps (GRPO/RLOO)."""
    batch_size: int = 64
    """Completions per rollout batch."""
    mini_batch_size: int = 16
    """PPO mini-batch size; must divide batch-size."""
    ppo_epochs: int = 4
    """Passes over each rollout batch."""
    lr: float = 1.41e-5
    """Adam learning rate (the paper: 1.41e-5)."""
    ent_coef: float = 0.0
    """b_ENT: weight of the token-entropy bonus (Eq. 1)."""
    bent_coef: float = 0.0
    """b_BENT: weight of the batch-entropy bonus (Eq. 2)."""
    bent_states: Literal["all", "last"] = "all"
    """Batch entropy over every response state (Eq. 2), or the last one only (the authors' code)."""
    kl_coef: str = "0"
    """KL penalty against the initial policy: `0` (off, the paper's best runs), a number, or `adaptive`."""
    kl_target: float = 6.0
    """Target KL of the adaptive controller."""
    kl_horizon: int = 10000
    """Horizon of the adaptive controller."""
    clip: float = 0.2
    """PPO ratio clip range."""
    dual_clip: float = 0.0
    """Cap the loss of negative-advantage tokens at dual_clip x |A| (dual-clip PPO, e.g. 3); 0 is plain PPO."""
    vf_coef: float = 0.1
    """Value-loss weight (the paper: 0.1)."""
    vf_clip: float = 0.2
    """Clip range of the value change."""
    gamma: float = 1.0
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    whiten_advantages: bool = True
    """Normalise advantages over each batch."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    temperature: float = 1.0
    """Sampling temperature (top_k=0, top_p=1: pure sampling, as in the paper)."""
    num_generations: int = 8
    """GRPO/RLOO: completions per prompt."""
    reward_url: str = ""
    """grpc://HOST:PORT of `rlpr serve`; empty scores in this process."""
    reward_token: str = os.environ.get("RLPR_AUTH_TOKEN", "")
    """Bearer token of the reward service (env RLPR_AUTH_TOKEN)."""
    reward_deadline_s: float = 300.0
    """Deadline per reward batch; items not scored in time are masked out."""
    reward: str = ""
    """Override the task's reward, e.g. sentiment_classifier; empty uses the task's default."""
    reward_option: tuple[str, ...] = ()
    """Reward options KEY=VALUE, e.g. model=path/to/classifier or lenient=true."""
    overlap_rewards: bool = True
    """Generate batch k+1 while batch k is scored (staleness 1)."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end)."""
    resume: bool = False
    """Continue from the checkpoint in --out if there is one."""

    def __post_init__(self):
        self._check_task()
        _positive(self, "steps", "batch_size", "mini_batch_size", "ppo_epochs", "lr", "clip", "temperature",
                  "num_generations", "reward_deadline_s", "save_every", "kl_target", "kl_horizon")
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(f"--mini-batch-size {self.mini_batch_size} must divide --batch-size {self.batch_size}")
        if self.algo != "ppo" and self.batch_size % self.num_generations:
            raise ConfigError(f"--num-generations {self.num_generations} must divide --batch-size {self.batch_size}")
        if self.ent_coef < 0 or self.bent_coef < 0:
            raise ConfigError("--ent-coef and --bent-coef are bonuses and must be >= 0")
        if self.kl_coef != "adaptive":
            try:
                if float(self.kl_coef) < 0:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"--kl-coef {self.kl_coef!r} must be 0, a positive number, or 'adaptive'") from None
        if self.dual_clip and self.dual_clip <= 1:
            raise ConfigError(f"--dual-clip must be 0 (off) or > 1, got {self.dual_clip}")
        if not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1:
            raise ConfigError("--lam and --gamma must be in [0, 1]")
        for pair in self.reward_option:
            if "=" not in pair:
                raise ConfigError(f"--reward-option {pair!r} is not KEY=VALUE")
        if self.reward_url and not self.reward_url.startswith("grpc://"):
            raise ConfigError(f"--reward-url {self.reward_url!r} must look like grpc://HOST:PORT")


@dataclass
class SFTConfig(TaskOptions):
    """Supervised (causal-LM) training on the task's data: the arithmetic baseline, or Ludii FIM pre-training."""

    steps: int = 500
    """Optimizer steps."""
    batch_size: int = 32
    lr: float = 5e-4
    eval_every: int = 50
    """Validation loss (and, for arithmetic, reward) every N steps."""
    eval_batches: int = 4
    reward_url: str = ""
    """Where validation rewards are scored; empty scores in this process."""

    def __post_init__(self):
        self._check_task()
        _positive(self, "steps", "batch_size", "lr", "eval_every", "eval_batches")
