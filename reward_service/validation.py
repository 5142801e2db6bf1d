"""Request validation shared by both fronts: sizes, ids, finiteness."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from reward_service.errors import InvalidArgument, RequestTooLarge
from reward_service.types import RewardItem


@dataclass(frozen=True)
class Limits:
    max_batch_items: int = 4096
    max_field_chars: int = 65536


def validate_items(items: Sequence[RewardItem], limits: Limits) -> None:
    if not items:
        raise InvalidArgument("the batch is empty; send at least one item")
    if len(items) > limits.max_batch_items:
        raise RequestTooLarge(f"batch of {len(items)} items is over the limit of {limits.max_batch_items}")
    seen = set()
    for index, item in enumerate(items):
        if not item.id:
            raise InvalidArgument(f"item {index} has an empty id")
        if item.id in seen:
            raise InvalidArgument(f"item id {item.id!r} appears twice; ids must be unique within a batch")
        seen.add(item.id)
        fields = {"id": item.id, "prompt": item.prompt, "completion": item.completion}
        fields.update({f"reference key {k!r}": k for k in item.reference})
        fields.update({f"reference.{k}": v for k, v in item.reference.items()})
        for name, value in fields.items():
            if not isinstance(value, str):
                raise InvalidArgument(f"item {index}: {name} must be a string")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument(f"item {index}: {name} is not valid UTF-8 (lone surrogate)") from None
            if len(value) > limits.max_field_chars:
                raise RequestTooLarge(
                    f"item {item.id!r}: {name} has {len(value)} characters, over the limit of {limits.max_field_chars}"
                )
