"""PPO for language models in the RLHF style, with the paper's entropy and batch-entropy terms.

One iteration, top to bottom:
  1. sample prompts; generate completions with the current policy from its sampling distribution;
  2. record the behaviour policy's log-probs and values (and the reference's, if KL is on);
  3. score completions with the programmed reward (in the background, with --overlap-rewards);
  4. per-token rewards = score at the last token - KL penalty; GAE (gamma=1); whiten advantages;
  5. several epochs of mini-batch updates on
       pg_loss + vf_coef * vf_loss - ent_coef * H_token - bent_coef * H_batch;
  6. adapt the KL coefficient; log; checkpoint.
Every term reads the distribution the sampler drew from (temperature, banned tokens, the
min-length stop ban, top-k/top-p), and dropout is off, so the first ratio is exactly 1.
Items whose reward failed are masked out of every loss and statistic. A mini-batch whose loss
or gradient is not finite is skipped and counted; too many in a row stop training.
"""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

import torch

from trainer import losses
from trainer.config import TrainConfig
from trainer.kl import make_kl
from trainer.policy import (Generation, PolicyWithValue, decode_completions, disable_dropout, generate,
                            response_logprobs, sampling_distribution)
from trainer.scorer import RewardScorer, Scores
from trainer.tasks.base import Prompt, Task


class TrainingDiverged(RuntimeError):
    """Several mini-batch updates in a row were not finite."""


@dataclass
class Rollout:
    prompts: list[Prompt]
    completions: list[str]
    gen: Generation
    old_logprobs: torch.Tensor  # [B,R] behaviour policy
    old_values: torch.Tensor  # [B,R]
    ref_logprobs: torch.Tensor | None  # [B,R] or None when KL is off
    policy_version: int  # updates applied to the policy when it generated this batch


class PPOTrainer:
    def __init__(self, task: Task, tokenizer, lm, hyper: TrainConfig, device: torch.device, autocast_dtype=None):
        self.task = task
        self.tokenizer = tokenizer
        self.hyper = hyper
        self.device = device
        self.autocast_dtype = autocast_dtype
        disable_dropout(lm)
        self.policy = PolicyWithValue(lm).to(device).eval()
        self.kl = make_kl(hyper.kl_coef, hyper.kl_target, hyper.kl_horizon)
        # The frozen initial policy is only needed (and only kept in memory) when KL can be non-zero.
        self.reference = None
        if hyper.kl_coef == "adaptive" or float(hyper.kl_coef) > 0:
            self.reference = copy.deepcopy(lm).to(device).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=hyper.lr, eps=1e-5)
        self.distribution = sampling_distribution(tokenizer, task.stop_token_ids(tokenizer), task.min_new_tokens,
                                                  hyper.temperature, hyper.top_k, hyper.top_p)
        self.version = 0  # completed updates
        self.skipped_in_a_row = 0

    def _autocast(self):
        enabled = self.autocast_dtype is not None
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    # -- 1 and 2: rollout -------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[Prompt]) -> Rollout:
        with self._autocast():
            gen = generate(self.policy.lm, self.tokenizer, [p.text for p in prompts], self.distribution,
                           self.task.max_new_tokens, self.device)
            logits, values = self.policy(gen.sequences, gen.attention_mask)
            _, old_logprobs = response_logprobs(logits, gen.sequences, gen.prompt_len, self.distribution,
                                                gen.response_mask)
            ref_logprobs = None
            if self.reference is not None:
                ref_logits = self.reference(input_ids=gen.sequences, attention_mask=gen.attention_mask).logits
                _, ref_logprobs = response_logprobs(ref_logits, gen.sequences, gen.prompt_len, self.distribution,
                                                    gen.response_mask)
        completions = decode_completions(self.tokenizer, gen, self.task.clean)
        old_values = values[:, gen.prompt_len - 1 : -1]
        return Rollout(prompts, completions, gen, old_logprobs, old_values, ref_logprobs, self.version)

    # -- 4: advantages ----------------------------------------------------------------------------
    def advantages(self, rollout: Rollout, scores: Scores, mask: torch.Tensor):
        B, R = mask.shape
        kl = torch.zeros(B, R, device=self.device)
        token_rewards = torch.zeros(B, R, device=self.device)
        if rollout.ref_logprobs is not None:
            kl = (rollout.old_logprobs - rollout.ref_logprobs) * mask
            token_rewards -= self.kl.value * kl
        last = (mask.cumsum(-1) == mask.sum(-1, keepdim=True)) & (mask > 0)
        score = torch.tensor(scores.rewards, device=self.device, dtype=torch.float32)
        token_rewards += last.float() * score[:, None]
        advantages, returns = losses.gae(token_rewards, rollout.old_values, mask, self.hyper.gamma, self.hyper.lam)
        if self.hyper.whiten_advantages:
            advantages = losses.masked_whiten(advantages, mask)
        mean_kl = (kl.sum(-1) * mask.any(-1)).sum() / mask.any(-1).sum().clamp(min=1)
        return advantages.detach(), returns.detach(), mean_kl.item()

    # -- 5: the update ----------------------------------------------------------------------------
    def batch_entropy_mask(self, rollout: Rollout, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.hyper.bent_states == "last":
            return losses.answer_state_mask(mask, rollout.gen.is_stop[index])
        return mask

    def loss_terms(self, rollout: Rollout, index: torch.Tensor, advantages, returns, mask) -> dict[str, torch.Tensor]:
        """All loss terms of one mini-batch; each is a scalar tensor, `total` is what is minimised."""
        h = self.hyper
        gen = rollout.gen
        with self._autocast():
            logits, values = self.policy(gen.sequences[index], gen.attention_mask[index])
        response_logits, logprobs = response_logprobs(logits, gen.sequences[index], gen.prompt_len, self.distribution,
                                                      gen.response_mask[index])
        values = values[:, gen.prompt_len - 1 : -1]
        m = mask[index]
        old_logprobs = rollout.old_logprobs[index]
        policy, clip_fraction = losses.clipped_policy_loss(logprobs, old_logprobs, advantages[index], m, h.clip,
                                                           h.dual_clip)
        value = losses.clipped_value_loss(values, rollout.old_values[index], returns[index], m, h.vf_clip)
        token_entropy = losses.token_entropy(response_logits, m)
        bent_mask = self.batch_entropy_mask(rollout, index, m)
        terms = {"policy": policy, "value": h.vf_coef * value, "entropy": -h.ent_coef * token_entropy}
        batch_entropy = None
        if h.bent_coef > 0:
            batch_entropy = losses.batch_entropy(response_logits, bent_mask)
            terms["batch_entropy"] = -h.bent_coef * batch_entropy
        terms["total"] = sum(terms.values())
        with torch.no_grad():
            if batch_entropy is None:
                batch_entropy = losses.batch_entropy(response_logits.detach(), bent_mask)
            log_ratio = losses.log_ratio(logprobs, old_logprobs)
            stats = {"entropy/token": token_entropy.detach(), "entropy/batch": batch_entropy.detach(),
                     "policy/clip_fraction": clip_fraction,
                     "policy/approx_kl": losses.masked_mean(0.5 * log_ratio ** 2, m),
                     "policy/ratio_max": (log_ratio.exp() * m).max()}
        return {f"loss/{k}": v for k, v in terms.items()} | stats

    def _step(self, terms: dict[str, torch.Tensor]) -> float | None:
        """One optimizer step on the mini-batch's total loss; None (and no step) if it is not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(terms["loss/total"]):
            return None
        terms["loss/total"].backward()
        clip = self.hyper.max_grad_norm or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), clip)
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return grad_norm.item()

    def update(self, rollout: Rollout, scores: Scores) -> dict[str, float]:
        h = self.hyper
        valid = torch.tensor(scores.valid, device=self.device, dtype=torch.long)
        mask = rollout.gen.response_mask * valid[:, None]
        advantages, returns, mean_kl = self.advantages(rollout, scores, mask)
        sums: dict[str, float] = {}
        count = skipped = 0
        for _ in range(h.ppo_epochs):
            for index in torch.randperm(mask.shape[0], device=self.device).split(h.mini_batch_size):
                if mask[index].sum() == 0:
                    continue  # every item of this mini-batch failed to score
                terms = self.loss_terms(rollout, index, advantages, returns, mask)
                grad_norm = self._step(terms)
                if grad_norm is None:
                    skipped += 1
                    self.skipped_in_a_row += 1
                    if self.skipped_in_a_row >= h.max_skipped_updates:
                        raise TrainingDiverged(f"{self.skipped_in_a_row} mini-batch updates in a row had a non-finite "
                                               "loss or gradient; lower --lr or the entropy coefficients")
                    continue
                self.skipped_in_a_row = 0
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().item()
                sums["policy/grad_norm"] = sums.get("policy/grad_norm", 0.0) + grad_norm
                count += 1
        self.version += 1
        self.kl.update(mean_kl, h.batch_size)
        metrics = {k: v / count for k, v in sums.items()} if count else {}
        ok = [r for r, v in zip(scores.rewards, scores.valid) if v]
        metrics.update({"reward/mean": sum(ok) / len(ok) if ok else float("nan"),
                        "reward/failed_items": float(scores.failed), "reward/unavailable": float(scores.unavailable),
                        "reward/time_limit_items": float(scores.time_limited),
                        "train/skipped_updates": float(skipped),
                        "train/staleness": float(self.version - 1 - rollout.policy_version),
                        "kl/mean": mean_kl, "kl/coef": self.kl.value, **diversity(rollout.completions),
                        **{f"reward_components/{k}": v for k, v in scores.components.items()},
                        "response/length": rollout.gen.response_mask.sum(-1).float().mean().item()})
        return metrics


def diversity(completions: list[str]) -> dict[str, float]:
    """How varied the batch is: a policy collapsed onto one answer has distinct ~0 and top_share ~1."""
    counts: dict[str, int] = {}
    for completion in completions:
        counts[completion] = counts.get(completion, 0) + 1
    n = max(1, len(completions))
    return {"response/distinct": len(counts) / n, "response/top_share": max(counts.values(), default=0) / n}


def train_steps(trainer: PPOTrainer, scorer: RewardScorer, rng: random.Random, steps: range, overlap: bool,
                on_step) -> None:
    """The outer loop. With `overlap`, batch k+1 is generated while batch k is being scored, so each
    update uses data one policy version old (logged as train/staleness; the behaviour log-probs keep
    the ratio exact)."""
    pending = None
    for step in steps:
        prompts = trainer.task.prompts(trainer.hyper.batch_size, rng)
        rollout = trainer.rollout(prompts)
        future = scorer.submit(rollout.prompts, rollout.completions)
        if not overlap:
            on_step(step, rollout, trainer.update(rollout, future.result()))
            continue
        if pending is not None:
            previous, previous_future = pending
            on_step(step - 1, previous, trainer.update(previous, previous_future.result()))
        pending = (rollout, future)
    if pending is not None:
        previous, previous_future = pending
        on_step(steps[-1], previous, trainer.update(previous, previous_future.result()))
