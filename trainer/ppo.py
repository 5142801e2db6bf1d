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

import random
from dataclasses import dataclass

import torch

from trainer import losses, models
from trainer.config import TrainConfig
from trainer.distributed import DataParallel
from trainer.kl import make_kl
from trainer.policy import (Generation, PolicyWithValue, decode_completions, disable_dropout, generate,
                            response_forward, response_logprobs, sampling_distribution)
from trainer.scorer import RewardScorer, Scores
from trainer.tasks.base import Prompt, Task


class TrainingDiverged(RuntimeError):
    """Several mini-batch updates in a row were not finite."""


class RewardsFailing(RuntimeError):
    """Several batches in a row had no item with a reward: nothing is being learned."""


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
    """PPO on this process's share of each batch; `parallel` makes the update that of the whole batch."""

    def __init__(self, task: Task, tokenizer, lm, hyper: TrainConfig, device: torch.device, autocast_dtype=None,
                 parallel: DataParallel | None = None):
        self.task = task
        self.tokenizer = tokenizer
        self.hyper = hyper
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.parallel = parallel or DataParallel()
        disable_dropout(lm)
        self.policy = models.place(PolicyWithValue(lm), device)
        self.params = models.trainable_parameters(self.policy)
        self.parallel.broadcast_parameters(self.params)
        self.kl = make_kl(hyper.kl_coef, hyper.kl_target, hyper.kl_horizon)
        # The frozen initial policy is only needed when KL can be non-zero (with LoRA: adapters off).
        self.reference = None
        if hyper.kl_coef == "adaptive" or float(hyper.kl_coef) > 0:
            self.reference = models.reference_policy(self.policy.lm)
        self.optimizer = models.make_optimizer(self.params, hyper.lr)
        self.distribution = sampling_distribution(tokenizer, task.stop_token_ids(tokenizer), task.min_new_tokens,
                                                  hyper.temperature, hyper.top_k, hyper.top_p)
        self.version = 0  # completed updates
        self.skipped_in_a_row = 0
        self.unscored_in_a_row = 0

    def _autocast(self):
        enabled = self.autocast_dtype is not None
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    # -- 1 and 2: rollout -------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[Prompt]) -> Rollout:
        self.policy.eval()  # generate's cache is off in training mode under gradient checkpointing
        with self._autocast():
            gen = generate(self.policy.lm, self.tokenizer, [p.text for p in prompts], self.distribution,
                           self.task.max_new_tokens, self.device)
        return self.behaviour(prompts, gen)

    @torch.no_grad()
    def behaviour(self, prompts: list[Prompt], gen: Generation) -> Rollout:
        """The behaviour policy's log-probs and values of a generated batch (and the reference's)."""
        self.policy.eval()
        with self._autocast():
            logits, old_values = self.policy(gen.sequences, gen.attention_mask, gen.response_len)
            _, old_logprobs = response_logprobs(logits, gen.response, self.distribution, gen.response_mask)
            ref_logprobs = None
            if self.reference is not None:
                ref_logits = response_forward(self.reference, gen.sequences, gen.attention_mask,
                                              gen.response_len).logits[:, :-1]
                _, ref_logprobs = response_logprobs(ref_logits, gen.response, self.distribution, gen.response_mask)
        completions = decode_completions(self.tokenizer, gen, self.task.clean)
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
            advantages = losses.masked_whiten(advantages, mask, sum_across=self.parallel.sum)
        scored = mask.any(-1)
        kl_sums = self.parallel.sum(torch.stack([(kl.sum(-1) * scored).sum(), scored.sum().float()]))
        mean_kl = kl_sums[0] / kl_sums[1].clamp(min=1)
        return advantages.detach(), returns.detach(), mean_kl.item()

    # -- 5: the update ----------------------------------------------------------------------------
    def batch_entropy_mask(self, rollout: Rollout, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.hyper.bent_states == "last":
            return losses.answer_state_mask(mask, rollout.gen.is_stop[index])
        return mask

    def loss_terms(self, rollout: Rollout, index: torch.Tensor, advantages, returns, mask,
                   tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All loss terms of one mini-batch; each is a scalar tensor, `loss/total` is what is minimised.

        `tokens` is the mini-batch's number of scored tokens over every process (the divisor of each
        mean); by default this process's. Terms marked in GLOBAL_TERMS are already whole-batch values;
        the others are this process's share, summed across processes for logging."""
        h = self.hyper
        gen = rollout.gen
        self.policy.train()  # dropout is 0; training mode only lets gradient checkpointing act
        with self._autocast():
            logits, values = self.policy(gen.sequences[index], gen.attention_mask[index], gen.response_len)
        response_logits, logprobs = response_logprobs(logits, gen.response[index], self.distribution,
                                                      gen.response_mask[index])
        m = mask[index]
        tokens = m.sum() if tokens is None else tokens
        old_logprobs = rollout.old_logprobs[index]
        policy, clip_fraction = losses.clipped_policy_loss(logprobs, old_logprobs, advantages[index], m, h.clip,
                                                           h.dual_clip, tokens)
        value = losses.clipped_value_loss(values, rollout.old_values[index], returns[index], m, h.vf_clip, tokens)
        token_entropy = losses.token_entropy(response_logits, m, tokens)
        bent_mask = self.batch_entropy_mask(rollout, index, m)
        across = self.parallel.sum_differentiable
        terms = {"policy": policy, "value": h.vf_coef * value, "entropy": -h.ent_coef * token_entropy}
        if h.bent_coef > 0:
            batch_entropy = losses.batch_entropy(response_logits, bent_mask, sum_across=across)
            terms["batch_entropy"] = -h.bent_coef * batch_entropy
        terms["total"] = sum(terms.values())
        with torch.no_grad():
            if h.bent_coef == 0:
                batch_entropy = losses.batch_entropy(response_logits.detach(), bent_mask, sum_across=across)
            log_ratio = losses.log_ratio(logprobs, old_logprobs)
            stats = {"entropy/token": token_entropy.detach(), "entropy/batch": batch_entropy.detach(),
                     "policy/clip_fraction": clip_fraction,
                     "policy/approx_kl": losses.masked_mean(0.5 * log_ratio ** 2, m, tokens),
                     "policy/ratio_max": (log_ratio.exp() * m).max()}
        return {f"loss/{k}": v for k, v in terms.items()} | stats

    def _step(self, terms: dict[str, torch.Tensor]) -> dict[str, float] | None:
        """One optimizer step on the mini-batch's total loss, with one host sync: the logged values
        (whole-batch) or None, and no step, when the loss or the gradient is not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss/total"].backward()
        self.parallel.sum_gradients(self.params)
        grads = [p.grad for p in self.params if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads, foreach=True) if grads else torch.zeros((), device=self.device)
        if self.hyper.max_grad_norm > 0:
            torch.nn.utils.clip_grads_with_norm_(self.params, self.hyper.max_grad_norm, grad_norm, foreach=True)
        shared = [k for k in terms if k not in GLOBAL_TERMS]
        summed = self.parallel.sum(torch.stack([terms[k].detach().float() for k in shared]))
        whole = torch.stack([terms[k].detach().float() for k in GLOBAL_TERMS if k in terms])
        ratio_max = self.parallel.maximum(terms["policy/ratio_max"].detach().float())
        values = torch.cat([summed, whole, ratio_max[None], grad_norm[None].float()]).tolist()  # the one sync
        logged = dict(zip(shared + [k for k in GLOBAL_TERMS if k in terms] + ["policy/ratio_max", "policy/grad_norm"],
                          values))
        if not all(map(_finite, (logged["loss/total"], logged["policy/grad_norm"]))):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        # Summed across processes the total counts the (whole-batch) batch entropy once per process.
        logged["loss/total"] = sum(v for k, v in logged.items() if k.startswith("loss/") and k != "loss/total")
        return logged

    def minibatches(self, mask: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        """Every epoch's mini-batches of this process's rows, each with its number of scored tokens over
        all processes; those with none anywhere are left out. One host sync for the whole update."""
        local = self.hyper.mini_batch_size // self.parallel.world
        batches = [index for _ in range(self.hyper.ppo_epochs)
                   for index in torch.randperm(mask.shape[0], device=self.device).split(local)]
        tokens = self.parallel.sum(torch.stack([mask[index].sum() for index in batches]).float()).tolist()
        return [(index, count) for index, count in zip(batches, tokens) if count > 0]

    def update(self, rollout: Rollout, scores: Scores) -> dict[str, float]:
        h = self.hyper
        valid = torch.tensor(scores.valid, device=self.device, dtype=torch.long)
        mask = rollout.gen.response_mask * valid[:, None]
        advantages, returns, mean_kl = self.advantages(rollout, scores, mask)
        sums: dict[str, float] = {}
        count = skipped = 0
        for index, tokens in self.minibatches(mask):
            terms = self.loss_terms(rollout, index, advantages, returns, mask,
                                    torch.tensor(tokens, device=self.device))
            logged = self._step(terms)
            if logged is None:
                skipped += 1
                self.skipped_in_a_row += 1
                if self.skipped_in_a_row >= h.max_skipped_updates:
                    raise TrainingDiverged(f"{self.skipped_in_a_row} mini-batch updates in a row had a non-finite "
                                           "loss or gradient; lower --lr or the entropy coefficients")
                continue
            self.skipped_in_a_row = 0
            for key, value in logged.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
        self.version += 1
        self.kl.update(mean_kl, h.batch_size)
        metrics = {k: v / count for k, v in sums.items()} if count else {}
        metrics |= self.batch_metrics(rollout, scores, skipped, mean_kl)
        self._count_unscored(metrics)
        return metrics

    def _count_unscored(self, metrics: dict[str, float]) -> None:
        scored = metrics["reward/failed_items"] < self.hyper.batch_size
        self.unscored_in_a_row = 0 if scored else self.unscored_in_a_row + 1
        limit = self.hyper.max_unscored_batches
        if limit and self.unscored_in_a_row >= limit:
            why = ("the reward service was unavailable" if metrics["reward/unavailable"]
                   else "every item's reward failed")
            raise RewardsFailing(f"{self.unscored_in_a_row} batches in a row had no scored item ({why}); check the "
                                 "reward service and --reward-option, or raise --max-unscored-batches")

    def batch_metrics(self, rollout: Rollout, scores: Scores, skipped: int, mean_kl: float) -> dict[str, float]:
        """Rewards, failures and diversity of the whole batch (every process's share)."""
        rewards = self.parallel.gather([r for r, v in zip(scores.rewards, scores.valid) if v])
        completions = self.parallel.gather(rollout.completions)
        counts = self.parallel.sum(torch.tensor([scores.failed, scores.unavailable, scores.time_limited,
                                                 rollout.gen.response_mask.sum().item()], dtype=torch.float64))
        failed, unavailable, time_limited, response_tokens = counts.tolist()
        return {"reward/mean": sum(rewards) / len(rewards) if rewards else float("nan"),
                "reward/failed_items": failed, "reward/unavailable": float(unavailable > 0),
                "reward/time_limit_items": time_limited, "train/skipped_updates": float(skipped),
                "train/staleness": float(self.version - 1 - rollout.policy_version),
                "kl/mean": mean_kl, "kl/coef": self.kl.value, **diversity(completions),
                **{f"reward_components/{k}": v for k, v in scores.components.items()},
                **{f"reward/{name}": v for name, v in scores.terms.items()},
                "response/length": response_tokens / len(completions)}


# Terms whose value is already that of the whole batch on every process (batch entropy's pbar is
# summed across processes inside the term); the others are each process's share of a global mean.
GLOBAL_TERMS = ("loss/batch_entropy", "entropy/batch")


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


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
        # Every process draws the whole batch's prompts from the same stream and keeps its share, so
        # the prompts do not depend on the number of processes.
        prompts = trainer.parallel.shard(trainer.task.prompts(trainer.hyper.batch_size, rng))
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
