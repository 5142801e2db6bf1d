"""`rlpr rewards`: every reward this installation serves (built-in, installed packages, RLPR_REWARD_PLUGINS)."""
from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
from dataclasses import dataclass


@dataclass
class RewardsConfig:
    """List every reward with its description, options and reference fields, as the API and workers
    started from this environment would register them."""

    json: bool = False
    """Print JSON (name, description, queue, reference_fields, label_field, options) instead of text."""


def option_docs(options_type: type) -> dict[str, str]:
    """The docstring under each field of an options dataclass (the convention tyro reads for --help)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(options_type)))
    except (OSError, TypeError, SyntaxError):  # defined where no source is kept
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for field_node, doc_node in zip(body, body[1:]):
        if isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name) and \
                isinstance(doc_node, ast.Expr) and isinstance(doc_node.value, ast.Constant) and \
                isinstance(doc_node.value.value, str):
            docs[field_node.target.id] = " ".join(doc_node.value.value.split())
    return docs


def describe(spec) -> dict:
    kind, docs = spec.kind(), option_docs(spec.options_type)
    options = {f.name: {"type": kind.options[f.name], "doc": docs.get(f.name, "")}
               for f in dataclasses.fields(spec.options_type)}
    return {"name": spec.name, "description": spec.description, "queue": spec.queue,
            "reference_fields": list(spec.reference_fields), "label_field": spec.label_field, "options": options}


def run_rewards(config: RewardsConfig) -> int:
    from reward_service.rewards import REGISTRY

    rewards = [describe(REGISTRY[name]) for name in sorted(REGISTRY)]
    if config.json:
        print(json.dumps(rewards, indent=2))
        return 0
    for reward in rewards:
        print(f"{reward['name']}  (queue {reward['queue']})")
        print(f"    {reward['description']}")
        fields = [f"{f} (a bare label fills it)" if f == reward["label_field"] else f
                  for f in reward["reference_fields"]]
        print(f"    reference fields: {', '.join(fields) or 'none'}")
        if not reward["options"]:
            print("    options: none")
        for name, option in reward["options"].items():
            print(f"    option {name}: {option['type']}" + (f"  {option['doc']}" if option["doc"] else ""))
        print()
    return 0
