"""The in-process reward client: `reward_contract.client.make_client("")` returns one."""
from __future__ import annotations

from reward_service.core.service import RewardService


class LocalRewardClient:
    """Scores in this process through the same service core the servers use."""

    def __init__(self, service: RewardService | None = None):
        self.service = service or RewardService.embedded()

    def score(self, reward, items, options=None, deadline_s=None):
        return self.service.score_blocking(reward, items, options, deadline_s)

    def kinds(self):
        return self.service.kinds()

    def close(self):
        pass
