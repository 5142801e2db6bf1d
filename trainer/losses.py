"""Loss terms as pure tensor functions (values, mask, aggregation in; a scalar out).

Shapes: B sequences, T response positions, V vocabulary. `mask` is 1 for response
tokens that count and 0 for padding and for items whose reward failed.

Data parallelism enters through two optional arguments, so that a term over one process's share
of a batch equals its share of the term over the whole batch: `total`, the number of tokens the
mean divides by (the global count), and `sum_across`, a sum over processes (the identity here).
"""
from __future__ import annotations

from typing import Callable

import torch

Reduce = Callable[[torch.Tensor], torch.Tensor]


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor

LOG_RATIO_LIMIT = 20.0


def masked_mean(values: torch.Tensor, mask: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the entries where mask is 1 (0 if there are none); `total` replaces the local count."""
    mask = mask.to(values.dtype)
    count = mask.sum() if total is None else total.to(values.dtype)
    return (values * mask).sum() / count.clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8,
                  sum_across: Reduce = _identity) -> torch.Tensor:
    """(values - mean) / std over masked entries (of every process); masked-out entries come back as 0."""
    mask = mask.to(values.dtype)
    total = sum_across(mask.sum())
    mean = sum_across((values * mask).sum()) / total.clamp(min=1.0)
    var = sum_across((((values - mean) ** 2) * mask).sum()) / total.clamp(min=1.0)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-state entropy -sum_a p log p, [..., V] -> [...]. Tokens outside the support (-inf logits)
    contribute 0, with a zero gradient (p * log p would give 0 * -inf = NaN)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    finite_log_probs = log_probs.masked_fill(torch.isinf(log_probs), 0.0)
    return -(log_probs.exp() * finite_log_probs).sum(-1)


def token_entropy(logits: torch.Tensor, mask: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1 of the paper without the coefficient: mean_t sum_a -p(a|s_t) log p(a|s_t). [B,T,V],[B,T] -> []."""
    return masked_mean(entropy_from_logits(logits), mask, total)


class _ProbabilitySum(torch.autograd.Function):
    """sum_i w_i softmax(l_i) over rows, computed in row chunks.

    Forward keeps only the sum (O(V)); backward recomputes each chunk's softmax, so the extra
    memory stays O(chunk x V) instead of O(rows x V) on top of the logits already held.
    """

    @staticmethod
    def forward(ctx, logits2d: torch.Tensor, weights: torch.Tensor, chunk: int) -> torch.Tensor:
        dtype = torch.promote_types(logits2d.dtype, torch.float32)  # bf16 logits are summed in fp32
        total = torch.zeros(logits2d.shape[-1], dtype=dtype, device=logits2d.device)
        rows = weights.nonzero().squeeze(-1)
        for start in range(0, rows.numel(), chunk):
            index = rows[start : start + chunk]
            probs = torch.softmax(logits2d.index_select(0, index).to(dtype), dim=-1)
            total += weights.index_select(0, index).to(dtype) @ probs
        ctx.save_for_backward(logits2d, weights, rows)
        ctx.chunk = chunk
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        logits2d, weights, rows = ctx.saved_tensors
        g = grad_output
        grad = torch.zeros_like(logits2d)
        for start in range(0, rows.numel(), ctx.chunk):
            index = rows[start : start + ctx.chunk]
            probs = torch.softmax(logits2d.index_select(0, index).to(g.dtype), dim=-1)
            inner = probs @ g  # softmax Jacobian: p * (g - <p, g>)
            chunk_grad = probs * (g - inner.unsqueeze(-1)) * weights.index_select(0, index).to(g.dtype).unsqueeze(-1)
            grad.index_copy_(0, index, chunk_grad.to(grad.dtype))
        return grad, None, None


def answer_state_mask(mask: torch.Tensor, is_stop: torch.Tensor) -> torch.Tensor:
    """Per row, only the last response state that emits a non-stop token: the state whose next
    token is the (last token of the) answer. The authors' code took the batch entropy over this
    state alone (their answers were one token). Rows whose response is only a stop token keep none."""
    candidates = mask.bool() & ~is_stop.bool()
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    last = torch.where(candidates, positions, -1).max(dim=-1).values
    keep = torch.zeros_like(mask)
    rows = (last >= 0).nonzero().squeeze(-1)
    keep[rows, last[rows]] = 1
    return keep


def batch_entropy(logits: torch.Tensor, mask: torch.Tensor, chunk: int = 1024,
                  sum_across: Reduce = _identity) -> torch.Tensor:
    """Eq. 2 without the coefficient: -sum_a pbar(a) log pbar(a), pbar = mean over masked states of p(.|s_t).

    logits [B,T,V] and mask [B,T] -> scalar. It equals the entropy of the mean distribution, so it
    is >= the mean per-state entropy (concavity of entropy). Pass `answer_state_mask(...)` as the
    mask for the authors' variant over the answer state only. Under data parallelism `sum_across`
    (differentiable) makes pbar the mean over the states of every process.
    """
    weights = mask.reshape(-1).to(torch.promote_types(logits.dtype, torch.float32))
    probability_sum = _ProbabilitySum.apply(logits.reshape(-1, logits.shape[-1]), weights, chunk)
    # No branch on an empty mask (a host sync): pbar is then 0 and so are the entropy and its gradient.
    total = sum_across(weights.sum().detach()).clamp(min=torch.finfo(weights.dtype).tiny)
    pbar = sum_across(probability_sum) / total
    return -(pbar * torch.log(pbar.clamp(min=torch.finfo(pbar.dtype).tiny))).sum()


def clipped_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float,
    dual_clip: float = 0.0, total: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token, masked mean. Returns (loss, fraction of clipped tokens).

    For a negative advantage the surrogate grows with the ratio without bound; a token the
    behaviour policy almost never chose can then dominate a batch. `dual_clip` > 1 caps it at
    -dual_clip * advantage (dual-clip PPO, Ye et al. 2020); 0 keeps plain PPO.
    The log-ratio is clamped before `exp`, so one extreme token cannot overflow the loss to inf.
    """
    ratio = torch.exp(log_ratio(logprobs, old_logprobs))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    per_token = torch.maximum(unclipped, clipped)
    if dual_clip > 0:
        per_token = torch.where(advantages < 0, torch.minimum(per_token, -dual_clip * advantages), per_token)
    loss = masked_mean(per_token, mask, total)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask, total)
    return loss, clip_fraction


def log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor) -> torch.Tensor:
    """log(pi/pi_old), clamped to +-LOG_RATIO_LIMIT (e^20 ~ 5e8 is already far outside any clip range)."""
    return torch.clamp(logprobs - old_logprobs, -LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float,
    total: torch.Tensor | None = None,
) -> torch.Tensor:
    """Value loss with the value change clipped around the rollout's values, as in PPO/RLHF."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped_values - returns) ** 2), mask, total)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95):
    """Generalised advantage estimation over response tokens. [B,T] each -> (advantages, returns).

    Masked positions carry no reward and no value; the sequence ends at its last masked token.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros(values.shape[0], dtype=values.dtype, device=values.device)
    next_value = torch.zeros_like(running)
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running * mask[:, t]
        # Padding after the end keeps the bootstrap at zero.
        next_value = torch.where(mask[:, t] > 0, values[:, t], next_value)
        running = running * mask[:, t]
    returns = advantages + values
    return advantages, returns
