"""Labels of other trainers' datasets (OpenRLHF `labels`, verl `ground_truth`) -> an item's reference.

A JSON object (or a string holding one) gives reference fields by name. A bare string fills
the reward's `label_field` (arithmetic: `previous`). No label gives an empty reference.
"""
from __future__ import annotations

import json
from typing import Mapping

from reward_contract.errors import InvalidArgument


def reference_from_label(label: object, label_field: str, reward: str) -> dict[str, str]:
    if label is None or label == "":
        return {}
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            label = json.loads(label)
        except ValueError as exc:
            raise InvalidArgument(f"label {label[:80]!r} starts like a JSON object but does not parse: {exc}") from None
    if isinstance(label, Mapping):
        return {str(k): str(v) for k, v in label.items()}
    if isinstance(label, (str, int, float)) and not isinstance(label, bool):
        if not label_field:
            raise InvalidArgument(f"reward {reward!r} takes labels as JSON objects of reference fields, "
                                  f'e.g. {{"prefix": "...", "suffix": "..."}}; got {label!r}')
        return {label_field: str(label)}
    raise InvalidArgument(f"label {label!r} is neither a string nor a JSON object")
