"""The one sampling distribution: what the sampler draws from is what every learning term uses.

`generate` samples through `SamplingDistribution.processor` and PPO's log-probs, ratio, KL
and both entropies read `SamplingDistribution.logits`. Both apply the same rules in the
same order: temperature, banned tokens (pad, unk), no stop token before `min_new_tokens`,
then top-k and top-p when set. A token the sampler can never emit has probability 0 for the
learner too, so no update can move probability mass onto it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplingDistribution:
    temperature: float = 1.0
    banned_ids: tuple[int, ...] = ()  # never sampled (pad, unk)
    stop_ids: tuple[int, ...] = ()  # end a completion; banned before min_new_tokens
    min_new_tokens: int = 0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off

    def logits(self, raw: torch.Tensor, first_position: int = 0) -> torch.Tensor:
        """Raw logits [..., R, V] of R consecutive response positions, the first being
        `first_position` -> the sampler's logits (fp32, -inf outside its support)."""
        logits = raw.float() / self.temperature
        if self.banned_ids:
            logits = logits.index_fill(-1, _ids(self.banned_ids, logits.device), NEG_INF)
        early = self.min_new_tokens - first_position  # leading positions where stopping is not allowed
        if self.stop_ids and early > 0:
            positions = torch.arange(logits.shape[-2], device=logits.device) < early
            stops = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
            stops[_ids(self.stop_ids, logits.device)] = True
            logits = logits.masked_fill(positions[:, None] & stops[None, :], NEG_INF)
        if self.top_k > 0:
            logits = _top_k(logits, self.top_k)
        if self.top_p < 1.0:
            logits = _top_p(logits, self.top_p)
        return logits

    def processor(self, prompt_len: int):
        """A transformers LogitsProcessor applying these rules at each decoding step."""
        from transformers import LogitsProcessor

        distribution = self

        class _Processor(LogitsProcessor):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                position = input_ids.shape[1] - prompt_len
                return distribution.logits(scores[:, None, :], position)[:, 0, :]

        return _Processor()


def _ids(ids: tuple[int, ...], device) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.long, device=device)


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering with transformers' semantics: drop the least likely tokens whose
    cumulative probability stays within 1 - top_p, always keeping the most likely one."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, NEG_INF)


def log_probs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [..., R] of `tokens` [..., R] under the sampler's `logits` [..., R, V]."""
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)
