"""The policy with a value head, and the forward passes PPO needs."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
from torch import nn

from trainer.sampling import SamplingDistribution, log_probs_of


class PolicyWithValue(nn.Module):
    """A causal LM plus a scalar value head on its last hidden state (shared backbone, RLHF style).

    The forward pass returns logits and values only for the response: the prompt's logits are
    never needed, and over a V-token vocabulary they cost the most memory and time of the head.
    """

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_len: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> logits [B,R,V] and values [B,R] of the R states that emit the response's R tokens."""
        out = response_forward(self.lm, input_ids, attention_mask, response_len, output_hidden_states=True)
        hidden = out.hidden_states[-1][:, -response_len - 1 : -1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return out.logits[:, :-1], values.float()


def response_forward(lm, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_len: int, **kwargs):
    """The LM's forward pass with logits kept for the last response_len + 1 positions only
    (`logits_to_keep`); position ids ignore left padding, as `generate` does."""
    return lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
              logits_to_keep=response_len + 1, **kwargs)


def disable_dropout(model: nn.Module) -> None:
    """Dropout off in every pass: the rollout and the update then see the same policy, so the
    first PPO ratio is 1 (TRL does the same)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, matching what `generate` uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_logprobs(logits: torch.Tensor, response: torch.Tensor, distribution: SamplingDistribution,
                      response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw logits of the response states [B,R,V] -> (the sampler's logits [B,R,V], log-probs of the
    taken tokens [B,R]).

    Log-probs are 0 where `response_mask` is 0: the padding after a stop token is a banned token,
    whose log-prob is -inf, and -inf - -inf would turn every masked mean (and its gradient) into NaN."""
    response_logits = distribution.logits(logits)
    logprobs = log_probs_of(response_logits, response)
    return response_logits, torch.where(response_mask.bool(), logprobs, torch.zeros_like(logprobs))


@dataclass
class Generation:
    sequences: torch.Tensor  # [B, P+R] prompt (left-padded) then response
    attention_mask: torch.Tensor  # [B, P+R]
    response_mask: torch.Tensor  # [B, R]: 1 up to and including the first stop token
    is_stop: torch.Tensor  # [B, R]: the response token is a stop token
    prompt_len: int
    scores: tuple[torch.Tensor, ...] | None = None  # per step [B, V]: the logits generate sampled from

    @property
    def response(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_len:]

    @property
    def response_len(self) -> int:
        return self.sequences.shape[1] - self.prompt_len


def sampling_distribution(tokenizer, stop_ids: list[int], min_new_tokens: int, temperature: float,
                          top_k: int = 0, top_p: float = 1.0) -> SamplingDistribution:
    banned = sorted(i for i in {tokenizer.pad_token_id, tokenizer.unk_token_id} if i is not None and i not in stop_ids)
    return SamplingDistribution(temperature, tuple(banned), tuple(stop_ids), min_new_tokens, top_k, top_p)


class _DecodeMaskWarning(logging.Filter):
    """transformers 5 drops an all-ones attention mask in its decode steps (so SDPA can run causal) and
    then warns "We strongly recommend passing in an `attention_mask`" once a finished row's last token
    is the pad token. generate() is given the mask; the warning is false here, and only here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "passing in an `attention_mask`" not in record.getMessage()


@contextlib.contextmanager
def _decode_mask_warning_silenced():
    logger, only_that = logging.getLogger("transformers.modeling_utils"), _DecodeMaskWarning()
    logger.addFilter(only_that)
    try:
        yield
    finally:
        logger.removeFilter(only_that)


@torch.no_grad()
def generate(lm, tokenizer, prompts: list[str], distribution: SamplingDistribution, max_new_tokens: int, device,
             keep_scores: bool = False) -> Generation:
    """Sample completions from exactly `distribution` (generate's own warpers are all off)."""
    from transformers import GenerationConfig, LogitsProcessorList

    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    prompt_len = batch["input_ids"].shape[1]
    config = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                              eos_token_id=list(distribution.stop_ids), pad_token_id=tokenizer.pad_token_id,
                              output_scores=keep_scores, return_dict_in_generate=True)
    with _decode_mask_warning_silenced():
        out = lm.generate(**batch, generation_config=config,
                          logits_processor=LogitsProcessorList([distribution.processor(prompt_len)]))
    response = out.sequences[:, prompt_len:]
    is_stop = torch.isin(response, torch.tensor(distribution.stop_ids, device=response.device))
    # Everything after the first stop token is padding added by generate.
    after_stop = (is_stop.long().cumsum(-1) - is_stop.long()) > 0
    response_mask = (~after_stop).long()
    attention_mask = torch.cat([batch["attention_mask"], response_mask], dim=1)
    return Generation(out.sequences, attention_mask, response_mask, is_stop & ~after_stop, prompt_len,
                      out.scores if keep_scores else None)


def decode_completions(tokenizer, gen: Generation, clean) -> list[str]:
    """What the reward sees: each response up to its first stop token, decoded, then cleaned by the task."""
    tokens = gen.sequences[:, gen.prompt_len:] * gen.response_mask + tokenizer.pad_token_id * (1 - gen.response_mask)
    return [clean(text) for text in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
