"""Conversion between protobuf messages and the service's types, for the server and the client."""
from __future__ import annotations

from reward_service.types import ItemStatus, RewardItem, ScoredItem
from rlpr_proto.v1 import reward_pb2 as pb

_STATUS_TO_PB = {status: pb.Status.Value(status.name) for status in ItemStatus}
_PB_TO_STATUS = {value: status for status, value in _STATUS_TO_PB.items()}


def to_pb(result: ScoredItem) -> pb.Result:
    return pb.Result(
        id=result.id, reward=result.reward, components=result.components, status=_STATUS_TO_PB[result.status],
        error=result.error, cached=result.cached, detail=result.detail,
    )


def from_pb(result: pb.Result) -> ScoredItem:
    return ScoredItem(
        id=result.id, reward=result.reward, components=dict(result.components), status=_PB_TO_STATUS[result.status],
        error=result.error, cached=result.cached, detail=result.detail,
    )


def items_from_pb(request: pb.ScoreRequest) -> list[RewardItem]:
    return [RewardItem(i.id, i.prompt, i.completion, dict(i.reference)) for i in request.items]


def item_to_pb(item: RewardItem) -> pb.Item:
    return pb.Item(id=item.id, prompt=item.prompt, completion=item.completion, reference=dict(item.reference))
