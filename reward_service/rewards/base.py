"""The contract every reward module follows.

A reward module exposes an options dataclass and one function
`score(item: RewardItem, options: <Options>) -> RewardResult`. Bad items raise
`InvalidItem`; anything else raised is a reward error. Both are turned into a
per-item status by `scoring.score_items`, never into a failed batch.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from reward_service.errors import InvalidArgument
from reward_service.types import RewardItem, RewardResult


@dataclass(frozen=True)
class RewardSpec:
    """A registry entry: how to score, and how the service should schedule it."""

    name: str
    description: str
    score: Callable[[RewardItem, Any], RewardResult]
    options_type: type
    queue: str  # RQ queue the items go to
    chunk_size: int  # items per RQ job; large for cheap rewards, 1 for Ludii
    job_timeout_s: int  # RQ job timeout for one chunk
    # What decides the reward, for the result cache; None means every field of the item.
    cache_identity: Callable[[RewardItem], tuple] | None = None

    def parse_options(self, raw: Mapping[str, str] | None) -> Any:
        return parse_options(self.options_type, raw or {}, self.name)

    def option_docs(self) -> dict[str, str]:
        """Option name -> 'type (default: x)'."""
        docs = {}
        for f in dataclasses.fields(self.options_type):
            docs[f.name] = f"{_type_name(f.type)} (default: {f.default!r})"
        return docs


def _type_name(tp: Any) -> str:
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(value: str, type_name: str, key: str, reward: str) -> Any:
    text = str(value).strip()
    try:
        if type_name == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("expected true/false")
        if type_name == "int":
            return int(text)
        if type_name == "float":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError("must be finite")
            return number
        return text
    except ValueError as exc:
        raise InvalidArgument(f"option {key!r} of reward {reward!r}: {value!r} is not a valid {type_name} ({exc})")


def parse_options(options_type: type, raw: Mapping[str, str], reward: str) -> Any:
    """Build the options dataclass from string key/values, rejecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise InvalidArgument(f"unknown option(s) {unknown} for reward {reward!r}; valid options: {valid}")
    values = {key: _convert(val, _type_name(fields[key].type), key, reward) for key, val in raw.items()}
    try:
        return options_type(**values)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"options for reward {reward!r}: {exc}") from exc
