"""`rlpr score`: score one output from the command line, in-process or against a server."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from reward_service.errors import ConfigError
from reward_service.types import RewardItem


@dataclass
class ScoreConfig:
    """Score one completion and print the result as JSON."""

    reward: str
    """Reward kind, e.g. arithmetic, sentiment_vader, ludii."""
    completion: str
    """The model output to score (for ludii, a whole game unless --reference gives prefix/suffix)."""
    prompt: str = ""
    reference: list[str] = field(default_factory=list)
    """KEY=VALUE pairs, e.g. previous='23 + 1 + 3' target=27."""
    option: list[str] = field(default_factory=list)
    """Reward options as KEY=VALUE, e.g. lenient=true."""
    url: str = ""
    """grpc://HOST:PORT of `rlpr serve`; empty scores in this process."""
    token: str = ""
    """Bearer token when the server requires one."""

    def __post_init__(self):
        for pair in self.reference + self.option:
            if "=" not in pair:
                raise ConfigError(f"{pair!r} is not KEY=VALUE")


def _pairs(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def run_score(config: ScoreConfig) -> int:
    from reward_service.client import make_client

    client = make_client(config.url, config.token)
    try:
        item = RewardItem("cli", config.prompt, config.completion, _pairs(config.reference))
        [result] = client.score(config.reward, [item], _pairs(config.option))
    finally:
        client.close()
    print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.ok else 1
