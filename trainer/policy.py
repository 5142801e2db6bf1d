"""The policy with a value head, and the forward passes PPO needs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class PolicyWithValue(nn.Module):
    """A causal LM plus a scalar value head on its last hidden state (shared backbone, RLHF style)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                      output_hidden_states=True)
        values = self.value_head(out.hidden_states[-1]).squeeze(-1)
        return out.logits, values.float()


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, matching what `generate` uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_logprobs(logits: torch.Tensor, tokens: torch.Tensor, prompt_len: int, temperature: float):
    """Logits over the full sequence -> (response logits [B,R,V], logprobs of the taken tokens [B,R])."""
    response_logits = logits[:, prompt_len - 1 : -1].float() / temperature
    logprobs = torch.log_softmax(response_logits, dim=-1).gather(-1, tokens[:, prompt_len:, None]).squeeze(-1)
    return response_logits, logprobs


@dataclass
class Generation:
    sequences: torch.Tensor  # [B, P+R] prompt (left-padded) then response
    attention_mask: torch.Tensor  # [B, P+R]
    response_mask: torch.Tensor  # [B, R]: 1 up to and including the first stop token
    prompt_len: int


@torch.no_grad()
def generate(lm, tokenizer, prompts: list[str], stop_ids: list[int], max_new_tokens: int, min_new_tokens: int,
             temperature: float, device) -> Generation:
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    banned = [i for i in {tokenizer.pad_token_id, tokenizer.unk_token_id} if i is not None and i not in stop_ids]
    sequences = lm.generate(
        **batch, do_sample=True, top_k=0, top_p=1.0, temperature=temperature, max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=banned or None,
    )
    prompt_len = batch["input_ids"].shape[1]
    response = sequences[:, prompt_len:]
    is_stop = torch.isin(response, torch.tensor(stop_ids, device=response.device))
    # Everything after the first stop token is padding added by generate.
    after_stop = (is_stop.long().cumsum(-1) - is_stop.long()) > 0
    response_mask = (~after_stop).long()
    attention_mask = torch.cat([batch["attention_mask"], response_mask], dim=1)
    return Generation(sequences, attention_mask, response_mask, prompt_len)
