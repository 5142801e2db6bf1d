"""Training configuration: one dataclass per command, validated at start-up.

Field docstrings become `rlpr train --help`. Every check says how to fix the value. A preset
(`--preset paper`) sets defaults that other flags still override.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, Literal

import tyro

from reward_contract.errors import ConfigError
from reward_contract.settings import parse_pairs, reward_choice
from reward_contract.types import RewardChoice

# The authors' arithmetic PPO as their code has it (simple_arithmatic/trl_math.py and gpt_math.py in
# PadLex/Reinforcement-Learning-from-Explicitly-Programmed-Reward-Signals, on their TRL fork's PPOConfig
# defaults): GPT-2's 124M configuration over the word-level vocabulary, Adam at TRL's 1.41e-5,
# batch = mini-batch = 128, 4 epochs, no gradient clipping, one-token answers to the final-sum
# step, batch entropy over the answer state only. No KL: their reference model is the policy
# object itself, so the penalty is identically 0. docs/results.md lists every difference.
PRESETS: dict[str, dict] = {
    "paper": dict(task="arithmetic", arithmetic_model_size="12x768x12", arithmetic_step="last",
                  arithmetic_max_new_tokens=1, lr=1.41e-5, batch_size=128, mini_batch_size=128, ppo_epochs=4,
                  kl_coef="0", max_grad_norm=0.0, clip=0.2, vf_clip=0.2, vf_coef=0.1, gamma=1.0, lam=0.95,
                  bent_states="last", steps=1024, temperature=1.0),
}
Pairs = Annotated[tuple[str, ...], tyro.conf.UseAppendAction]


def _positive(config, *names: str) -> None:
    for name in names:
        if not getattr(config, name) > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(config, name)}")


@dataclass
class TaskOptions:
    """Settings shared by RL training and the supervised baseline."""

    task: Literal["arithmetic", "sentiment", "ludii"] = "arithmetic"
    """Which task to train on."""
    model: str = ""
    """Causal LM name or path. Empty: the task's default, built from scratch (arithmetic: GPT-2 over the
    word-level vocabulary; sentiment: a tiny word-level GPT-2; ludii: GPT-2 over a BPE trained on the games)."""
    out: str = "runs/latest"
    """Run directory: metrics.jsonl, TensorBoard events, curves.png, config.json, checkpoints."""
    seed: int = 0
    """Seed for python, torch and the task's sampling."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, or `cuda[:N]`."""
    bf16: bool = True
    """Use bf16 autocast on GPUs that support it (ignored on CPU)."""
    arithmetic_step: Literal["last", "random"] = "last"
    """Which step to ask for: the final sum (authors' code) or a random step (paper's text)."""
    arithmetic_model_size: str = "4x128"
    """LAYERSxWIDTH[xHEADS] of the from-scratch GPT-2, e.g. 2x64 for a fast CPU demo, 12x768x12 for GPT-2 124M."""
    arithmetic_max_new_tokens: int = 8
    """Longest answer in tokens (a step has at most 4 terms: 7 tokens and '='); 1 as in the authors' code."""
    sentiment_prompts: str = "shipped"
    """`imdb` (Hugging Face datasets, needs network or a cache), `shipped` (prefixes bundled with rlpr), or a text file."""
    ludii_games: str = ""
    """Ludii games JSON (list of {description, code}) for the fill-in-the-middle task; empty: the paper's
    training split, downloaded once (SHA-256 checked) into ~/.cache/rlpr."""
    ludii_mask_names: bool = True
    """Mask game and piece names in the Ludii FIM dataset."""
    ludii_min_masked: float = 0.2
    """Keep only Ludii FIM samples with at least this fraction of the description masked (0 disables)."""
    ludii_ludeme_tokens: bool = False
    """Add every Ludii ludeme (e.g. `(board`) to the tokenizer as one token."""
    ludii_model_size: str = "4x256"
    """LAYERSxWIDTH of the from-scratch Ludii GPT-2 (used when --model is empty)."""
    reward_url: str = ""
    """grpc://HOST:PORT of `rlpr serve`; empty scores in this process."""
    reward_token: str = ""
    """Bearer token of the reward service; empty reads $RLPR_AUTH_TOKEN (the value is never printed)."""
    peft: Literal["none", "lora"] = "none"
    """`lora`: train LoRA adapters (and PPO's value head) over the frozen model; checkpoints hold only them."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input. RL needs 0: dropout makes the learner's distribution differ from the sampler's."""
    lora_target_modules: str = ""
    """Comma-separated module names to adapt, e.g. q_proj,v_proj; empty: peft's default for the architecture."""
    load_in: Literal["none", "4bit", "8bit"] = "none"
    """Load --model quantized with bitsandbytes (QLoRA: frozen k-bit base, adapters in higher precision).
    Needs --peft lora, a CUDA GPU and the `gpu` extra."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (non-reentrant): less memory, about a third more compute."""

    def _check_task(self) -> None:
        parts = self.arithmetic_model_size.split("x")
        if not (len(parts) in (2, 3) and all(p.isdigit() and int(p) > 0 for p in parts)):
            raise ConfigError(f"--arithmetic-model-size {self.arithmetic_model_size!r} is not LAYERSxWIDTH[xHEADS], "
                              "e.g. 4x128 or 12x768x12")
        if len(parts) == 3 and int(parts[1]) % int(parts[2]):
            raise ConfigError(f"--arithmetic-model-size {self.arithmetic_model_size!r}: the heads must divide the width")
        layers, _, width = self.ludii_model_size.partition("x")
        if not (layers.isdigit() and width.isdigit() and int(layers) > 0 and int(width) > 0):
            raise ConfigError(f"--ludii-model-size {self.ludii_model_size!r} is not LAYERSxWIDTH, e.g. 4x256")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"--device {self.device!r} must be auto, cpu or cuda[:N]")
        if not 0 <= self.ludii_min_masked < 1:
            raise ConfigError("--ludii-min-masked must be in [0, 1)")
        _positive(self, "arithmetic_max_new_tokens")
        from trainer import models

        models.check(self)
        if self.reward_url:
            from reward_contract.settings import grpc_target

            grpc_target(self.reward_url)


@dataclass
class TrainConfig(TaskOptions):
    """Train a language model on programmed rewards with PPO (the paper), GRPO or RLOO."""

    preset: Literal["none", "paper"] = "none"
    """`paper`: the authors' arithmetic setup (GPT-2 124M, lr 1.41e-5, batch 128, no KL, one-token answers);
    other flags override it."""
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
    """Batch entropy over every response state (Eq. 2), or only the state that emits each answer (the authors' code)."""
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
    """Gradient-norm clip; 0 turns clipping off (the authors' TRL default)."""
    max_skipped_updates: int = 5
    """Stop with a checkpoint after this many non-finite mini-batch updates in a row (each one is skipped)."""
    max_unscored_batches: int = 10
    """Stop with a checkpoint after this many batches in a row in which no item got a reward (0: never stop)."""
    temperature: float = 1.0
    """Sampling temperature; every learning term uses the same distribution as the sampler."""
    top_k: int = 0
    """Sample from the k most likely tokens only (0: off, as in the paper)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1: off, as in the paper)."""
    num_generations: int = 8
    """GRPO/RLOO: completions per prompt."""
    vllm: Literal["off", "colocate", "server"] = "off"
    """GRPO/RLOO: generate with vLLM (TRL's `use_vllm`), in this process (`colocate`) or from a `trl vllm-serve`
    server (`server`). Needs a CUDA GPU and the `vllm` extra."""
    processes: int = 1
    """Data-parallel processes on this machine: `rlpr train --processes 2` relaunches itself under
    `accelerate launch`. Under `accelerate launch` itself leave it at 1."""
    reward_deadline_s: float = 0.0
    """Deadline per reward batch; items not scored in time are masked out. 0: the task's (ludii 1800 s, else 300 s)."""
    reward: Pairs = ()
    """Override the task's reward, e.g. sentiment_classifier; unset uses the task's default. Repeat it with
    weights for a composite reward: --reward arithmetic=1 --reward length_penalty=0.1 (each term logged as
    reward/<name>; options then named --reward-option length_penalty.budget=8)."""
    reward_option: Pairs = ()
    """Reward option KEY=VALUE, repeatable: --reward-option model=path/to/classifier --reward-option output=prob."""
    timeout_reward: float | None = None
    """Reward for an item whose reward hit its own time limit (a Ludii game too slow to evaluate); unset: masked."""
    overlap_rewards: Literal["auto", "on", "off"] = "auto"
    """Generate batch k+1 while batch k is scored (data one policy version old). `auto`: on with --reward-url only."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end)."""
    resume: bool = False
    """Continue from the checkpoint in --out if there is one."""

    @classmethod
    def defaults_for(cls, argv: list[str]) -> "TrainConfig | None":
        """The preset a command line names (`--preset paper` or `--preset=paper`), as defaults."""
        for index, arg in enumerate(argv):
            name = arg.partition("=")[2] if arg.startswith("--preset=") else (
                argv[index + 1] if arg == "--preset" and index + 1 < len(argv) else None)
            if name in PRESETS:
                return cls(**PRESETS[name], preset=name)
        return None

    @property
    def overlap(self) -> bool:
        return self.overlap_rewards == "on" or (self.overlap_rewards == "auto" and bool(self.reward_url))

    @property
    def reward_options(self) -> dict[str, str]:
        return parse_pairs(self.reward_option, "--reward-option")

    def reward_for(self, task) -> tuple[RewardChoice, dict[str, str]]:
        """The reward to train on and its options: the task's own (with the task's options, under
        --reward-option), or what --reward names. The task's options follow its reward into a
        composite; a composite's options travel in its terms, so the dict is then empty."""
        choice, options = reward_choice(self.reward or (task.reward,), self.reward_options, "--reward",
                                        "--reward-option")
        if isinstance(choice, str):
            return choice, (dict(task.reward_options) if choice == task.reward else {}) | options
        terms = tuple(dataclasses.replace(t, options={**task.reward_options, **t.options}) if t.reward == task.reward
                      else t for t in choice)
        return terms, {}

    def __post_init__(self):
        self._check_task()
        _positive(self, "steps", "batch_size", "mini_batch_size", "ppo_epochs", "lr", "clip", "temperature",
                  "num_generations", "save_every", "kl_target", "kl_horizon", "top_p",
                  "max_skipped_updates")
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(f"--mini-batch-size {self.mini_batch_size} must divide --batch-size {self.batch_size}")
        if self.algo != "ppo" and self.batch_size % self.num_generations:
            raise ConfigError(f"--num-generations {self.num_generations} must divide --batch-size {self.batch_size}")
        if self.ent_coef < 0 or self.bent_coef < 0:
            raise ConfigError("--ent-coef and --bent-coef are bonuses and must be >= 0")
        if self.kl_coef != "adaptive":
            try:
                if not float(self.kl_coef) >= 0:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"--kl-coef {self.kl_coef!r} must be 0, a positive number, or 'adaptive'") from None
        if self.dual_clip and self.dual_clip <= 1:
            raise ConfigError(f"--dual-clip must be 0 (off) or > 1, got {self.dual_clip}")
        if not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1:
            raise ConfigError("--lam and --gamma must be in [0, 1]")
        if self.max_grad_norm < 0 or self.top_k < 0 or self.top_p > 1:
            raise ConfigError("--max-grad-norm and --top-k must be >= 0, and --top-p in (0, 1]")
        if self.max_unscored_batches < 0:
            raise ConfigError(f"--max-unscored-batches must be >= 0 (0: never stop), got {self.max_unscored_batches}")
        if self.reward_deadline_s < 0:
            raise ConfigError(f"--reward-deadline-s must be >= 0 (0: the task's default), got {self.reward_deadline_s}")
        if self.timeout_reward is not None and not math.isfinite(self.timeout_reward):
            raise ConfigError(f"--timeout-reward must be a finite number, got {self.timeout_reward}")
        if self.peft == "lora" and self.lora_dropout > 0:
            raise ConfigError("--lora-dropout must be 0 for RL training: dropout makes the distribution the learner "
                              "reads differ from the one the sampler drew from (use it with `rlpr sft`)")
        self._check_scale()
        # Validate the pairs and the --reward terms now, not at the first batch.
        reward_choice(self.reward or ("task",), self.reward_options, "--reward", "--reward-option")

    def _check_scale(self) -> None:
        if self.processes < 1:
            raise ConfigError(f"--processes must be >= 1, got {self.processes}")
        if self.batch_size % self.processes or self.mini_batch_size % self.processes:
            raise ConfigError(f"--processes {self.processes} must divide --batch-size {self.batch_size} and "
                              f"--mini-batch-size {self.mini_batch_size}: each process takes an equal share")
        if self.vllm != "off" and self.algo == "ppo":
            raise ConfigError("--vllm works with --algo grpo or rloo (TRL's vLLM generation); PPO generates with "
                              "transformers")


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

    def __post_init__(self):
        self._check_task()
        _positive(self, "steps", "batch_size", "lr", "eval_every", "eval_batches")
