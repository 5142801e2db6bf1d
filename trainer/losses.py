"""Loss terms as pure tensor functions (values, mask, aggregation in; a scalar out).

Shapes: B sequences, T response positions, V vocabulary. `mask` is 1 for response
tokens that count and 0 for padding and for items whose reward failed.
"""
from __future__ import annotations

import torch

LOG_RATIO_LIMIT = 20.0


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the entries where mask is 1 (0 if there are none)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(values - mean) / std over masked entries; masked-out entries come back as 0."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask.to(values.dtype)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-state entropy -sum_a p log p, [..., V] -> [...]. Tokens outside the support (-inf logits)
    contribute 0, with a zero gradient (p * log p would give 0 * -inf = NaN)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    finite_log_probs = log_probs.masked_fill(torch.isinf(log_probs), 0.0)
    return -(log_probs.exp() * finite_log_probs).sum(-1)


def token_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 1 of the paper without the coefficient: mean_t sum_a -p(a|s_t) log p(a|s_t). [B,T,V],[B,T] -> []."""
    return masked_mean(entropy_from_logits(logits), mask)


class _BatchEntropy(torch.autograd.Function):
    """H(pbar) with pbar = sum_i w_i softmax(l_i), computed in row chunks.

    Forward keeps only pbar (O(V)); backward recomputes each chunk's softmax, so the extra
    memory stays O(chunk x V) instead of O(rows x V) on top of the logits already held.
    """

    @staticmethod
    def forward(ctx, logits2d: torch.Tensor, weights: torch.Tensor, chunk: int) -> torch.Tensor:
        dtype = torch.promote_types(logits2d.dtype, torch.float32)  # bf16 logits are summed in fp32
        pbar = torch.zeros(logits2d.shape[-1], dtype=dtype, device=logits2d.device)
        rows = weights.nonzero().squeeze(-1)
        for start in range(0, rows.numel(), chunk):
            index = rows[start : start + chunk]
            probs = torch.softmax(logits2d.index_select(0, index).to(dtype), dim=-1)
            pbar += weights.index_select(0, index).to(dtype) @ probs
        log_pbar = torch.log(pbar.clamp(min=torch.finfo(dtype).tiny))
        ctx.save_for_backward(logits2d, weights, rows, log_pbar)
        ctx.chunk = chunk
        return -(pbar * log_pbar).sum()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        logits2d, weights, rows, log_pbar = ctx.saved_tensors
        # dH/dpbar_a = -(log pbar_a + 1); the +1 cancels in the softmax Jacobian.
        g = -grad_output.to(log_pbar.dtype) * log_pbar
        grad = torch.zeros_like(logits2d)
        for start in range(0, rows.numel(), ctx.chunk):
            index = rows[start : start + ctx.chunk]
            probs = torch.softmax(logits2d.index_select(0, index).to(g.dtype), dim=-1)
            inner = probs @ g
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


def batch_entropy(logits: torch.Tensor, mask: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Eq. 2 without the coefficient: -sum_a pbar(a) log pbar(a), pbar = mean over masked states of p(.|s_t).

    logits [B,T,V] and mask [B,T] -> scalar. It equals the entropy of the mean distribution, so it
    is >= the mean per-state entropy (concavity of entropy). Pass `answer_state_mask(...)` as the
    mask for the authors' variant over the answer state only.
    """
    weights = mask.reshape(-1).to(torch.promote_types(logits.dtype, torch.float32))
    total = weights.sum()
    if total <= 0:
        return logits.nan_to_num(0.0).sum() * 0.0
    return _BatchEntropy.apply(logits.reshape(-1, logits.shape[-1]), weights / total, chunk)


def clipped_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float,
    dual_clip: float = 0.0,
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
    loss = masked_mean(per_token, mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction


def log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor) -> torch.Tensor:
    """log(pi/pi_old), clamped to +-LOG_RATIO_LIMIT (e^20 ~ 5e8 is already far outside any clip range)."""
    return torch.clamp(logprobs - old_logprobs, -LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """Value loss with the value change clipped around the rollout's values, as in PPO/RLHF."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped_values - returns) ** 2), mask)


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
