"""`rlpr score`: score one output from the command line, in-process or against a server."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated

import tyro

from reward_contract.settings import grpc_target, parse_pairs, reward_choice

Pairs = Annotated[tuple[str, ...], tyro.conf.UseAppendAction]


@dataclass
class ScoreConfig:
    """Score one completion and print the result as JSON (exit 1 unless its status is ok)."""

    reward: Pairs
    """Reward kind, e.g. arithmetic, sentiment_vader, ludii. Repeat it with weights for a composite reward:
    --reward arithmetic=1 --reward length_penalty=0.1 (options then as --option length_penalty.budget=8)."""
    completion: str
    """The model output to score (for ludii, a whole game unless --reference gives prefix/suffix)."""
    prompt: str = ""
    reference: Pairs = ()
    """KEY=VALUE, repeatable: --reference previous='23 + 1 + 3' --reference target=27."""
    option: Pairs = ()
    """Reward options KEY=VALUE, repeatable: --option lenient=true."""
    url: str = ""
    """grpc://HOST:PORT of `rlpr serve`; empty scores in this process."""
    token: str = ""
    """Bearer token; empty reads $RLPR_AUTH_TOKEN (the value is never printed)."""
    deadline_s: float = 60.0
    """Give up on the reward after this many seconds."""

    def __post_init__(self):
        self.references = parse_pairs(self.reference, "--reference")
        self.choice, self.options = reward_choice(self.reward, parse_pairs(self.option, "--option"))
        if self.url:
            grpc_target(self.url, "--url")  # refused here, naming this command's flag


def run_score(config: ScoreConfig) -> int:
    from reward_contract.client import make_client
    from reward_contract.types import RewardItem

    client = make_client(config.url, config.token)
    try:
        item = RewardItem("cli", config.prompt, config.completion, config.references)
        [result] = client.score(config.choice, [item], config.options, config.deadline_s)
    finally:
        client.close()
    print(json.dumps(dataclasses.asdict(result), indent=2))
    return 0 if result.ok else 1

