"""The one conversion between protobuf messages and the contract's types (server and client)."""
from __future__ import annotations

from typing import Mapping, Sequence

from reward_contract.types import ItemStatus, RewardChoice, RewardItem, RewardKind, RewardTerm, ScoredItem
from reward_contract.wire.v1 import reward_pb2 as pb

_STATUS_TO_PB = {status: pb.Status.Value(status.name) for status in ItemStatus}
_PB_TO_STATUS = {value: status for status, value in _STATUS_TO_PB.items()}


def result_to_pb(result: ScoredItem) -> pb.Result:
    return pb.Result(id=result.id, reward=result.reward, components=result.components,
                     status=_STATUS_TO_PB[result.status], error=result.error, cached=result.cached,
                     detail=result.detail, rewards=result.rewards)


def result_from_pb(result: pb.Result) -> ScoredItem:
    return ScoredItem(result.id, result.reward, dict(result.components), _PB_TO_STATUS[result.status], result.error,
                      result.cached, result.detail, dict(result.rewards))


def items_from_pb(request: pb.ScoreRequest) -> list[RewardItem]:
    return [RewardItem(i.id, i.prompt, i.completion, dict(i.reference)) for i in request.items]


def request_to_pb(reward: RewardChoice, items: Sequence[RewardItem], options: Mapping[str, object],
                  deadline_s: float | None, use_cache: bool = True) -> pb.ScoreRequest:
    """One reward's name with its `options`, or a composite's terms (each with its own options)."""
    single = isinstance(reward, str)
    return pb.ScoreRequest(
        reward=reward if single else "",
        items=[pb.Item(id=i.id, prompt=i.prompt, completion=i.completion, reference=dict(i.reference)) for i in items],
        options={k: option_text(v) for k, v in options.items()},
        deadline_ms=round(deadline_s * 1000) if deadline_s else 0,
        no_cache=not use_cache,
        terms=[] if single else [pb.RewardTerm(reward=t.reward, weight=t.weight, options={
            k: option_text(v) for k, v in t.options.items()}) for t in reward],
    )


def terms_from_pb(request: pb.ScoreRequest) -> list[RewardTerm]:
    return [RewardTerm(t.reward, t.weight if t.HasField("weight") else 1.0, dict(t.options)) for t in request.terms]


def option_text(value: object) -> str:
    """Options travel as strings on gRPC; booleans as true/false, which every reward parses."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def kind_to_pb(kind: RewardKind) -> pb.RewardKind:
    return pb.RewardKind(name=kind.name, description=kind.description, queue=kind.queue, options=dict(kind.options),
                         label_field=kind.label_field)


def kind_from_pb(kind: pb.RewardKind) -> RewardKind:
    return RewardKind(kind.name, kind.description, kind.queue, dict(kind.options), kind.label_field)
