"""OpenRLHF's remote reward model protocol, so `--remote_rm_url http://HOST:8000/openrlhf/REWARD` works.

OpenRLHF 0.11 (openrlhf/utils/agent.py) posts `{"query": [...], "prompts": [...], "labels": [...]}`
for each sample, where a query is the prompt followed by the response decoded with its
special tokens, and reads `rewards` (and `scores`, `extra_logs`) from the reply, retrying on
errors. Here:

- the completion is the query after its prompt, with trailing end-of-text markers removed
  (`?strip=` overrides the list);
- a label becomes the item's reference (`reward_contract.labels`): a JSON object names the
  fields, a bare string fills the reward's `label_field`;
- other query parameters are reward options (`?lenient=true`);
- an item the service could not score gets `failed_reward` (default 0.0, a query parameter)
  and is marked in `extra_logs.rlpr_failed`; a request that cannot be served at all is a 5xx,
  which OpenRLHF retries;
- `scores` (what OpenRLHF's dynamic filtering reads) are the rewards, and `extra_logs` carries each
  reward component under its name (0.0 where an item has none), which OpenRLHF logs.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from reward_contract.errors import InvalidArgument
from reward_contract.labels import reference_from_label
from reward_contract.types import RewardItem
from reward_service.core.service import RewardService
from reward_service.fronts.rest import until_disconnected

END_MARKERS = ("<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<eos>", "<|end_of_text|>")
_RESERVED = {"failed_reward", "strip"}


class OpenRLHFIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    query: list[str] = Field(description="Prompt followed by the response, as OpenRLHF decodes it.")
    prompts: list[str] = Field(default_factory=list)
    labels: list[str | int | float | dict | None] = Field(default_factory=list)


class OpenRLHFOut(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


def completion_of(query: str, prompt: str, markers: tuple[str, ...]) -> str:
    at = query.find(prompt) if prompt else -1
    completion = query[at + len(prompt):] if at >= 0 else query
    stripped = True
    while stripped:
        stripped = False
        for marker in markers:
            if marker and completion.rstrip().endswith(marker):
                completion = completion.rstrip()[: -len(marker)]
                stripped = True
    return completion


def openrlhf_router(service: RewardService) -> APIRouter:
    router = APIRouter(tags=["integrations"])

    @router.post("/openrlhf/{reward}", response_model=OpenRLHFOut)
    async def openrlhf(reward: str, body: OpenRLHFIn, request: Request, failed_reward: float = 0.0,
                       strip: str = ",".join(END_MARKERS)) -> OpenRLHFOut:
        """OpenRLHF's remote reward protocol for the named reward kind."""
        spec = service.resolve_spec(reward)
        n = len(body.query)
        for name, values in (("prompts", body.prompts), ("labels", body.labels)):
            if values and len(values) != n:
                raise InvalidArgument(f"{name} has {len(values)} entries for {n} queries")
        prompts = body.prompts or [""] * n
        labels = body.labels or [None] * n
        markers = tuple(m for m in strip.split(",") if m)
        items = [RewardItem(str(i), prompt, completion_of(query, prompt, markers),
                            reference_from_label(label, spec.label_field, spec.name))
                 for i, (query, prompt, label) in enumerate(zip(body.query, prompts, labels))]
        options = {k: v for k, v in request.query_params.items() if k not in _RESERVED}
        resolved = service.resolve(reward, items, options, None, True, "openrlhf")
        results = await until_disconnected(request, service.score(resolved))
        rewards = [r.reward if r.ok else failed_reward for r in results]
        names = sorted({name for r in results for name in r.components} - {"rlpr_failed"})
        logs = {name: [float(r.components.get(name, 0.0)) for r in results] for name in names}
        return OpenRLHFOut(rewards=rewards, scores=rewards,
                           extra_logs={**logs, "rlpr_failed": [0.0 if r.ok else 1.0 for r in results]})

    return router
