"""Reward clients: one interface, in-process or over gRPC.

`make_client(None)` is the embedded default (no Redis, no server);
`make_client("grpc://host:port")` talks to `rlpr serve`, with deadlines, reconnects and
retries on UNAVAILABLE handled by gRPC's own retry policy.
"""
from __future__ import annotations

import json
from typing import Mapping, Protocol, Sequence

import grpc

from reward_service.errors import ConfigError, DeadlineExceeded, InvalidArgument, RlprError, Unauthenticated, Unavailable
from reward_service.proto_convert import from_pb, item_to_pb
from reward_service.service import RewardService
from reward_service.types import RewardItem, ScoredItem
from rlpr_proto.v1 import reward_pb2 as pb
from rlpr_proto.v1 import reward_pb2_grpc as pb_grpc


class RewardClient(Protocol):
    def score(
        self, reward: str, items: Sequence[RewardItem], options: Mapping[str, str] | None = None,
        deadline_s: float | None = None,
    ) -> list[ScoredItem]: ...

    def rewards(self) -> list[str]: ...

    def close(self) -> None: ...


class LocalRewardClient:
    """Scores in this process through the same service core the server uses."""

    def __init__(self, service: RewardService | None = None):
        self.service = service or RewardService.embedded()

    def score(self, reward, items, options=None, deadline_s=None):
        return self.service.score(reward, items, options, deadline_s, front="inprocess")

    def rewards(self):
        return [spec.name for spec in self.service.rewards()]

    def close(self):
        pass


def _retry_service_config(attempts: int) -> str:
    return json.dumps({
        "methodConfig": [{
            "name": [{"service": "rlpr.reward.v1.RewardService"}],
            "retryPolicy": {
                "maxAttempts": attempts,
                "initialBackoff": "0.2s",
                "maxBackoff": "5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]
    })


_CODE_TO_ERROR = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


class GrpcRewardClient:
    def __init__(self, target: str, token: str = "", attempts: int = 5, max_message_bytes: int = 32 << 20):
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _retry_service_config(attempts)),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ])
        self.stub = pb_grpc.RewardServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def score(self, reward, items, options=None, deadline_s=None):
        request = pb.ScoreRequest(
            reward=reward,
            items=[item_to_pb(i) for i in items],
            options={k: str(v) for k, v in (options or {}).items()},
            deadline_ms=int(deadline_s * 1000) if deadline_s else 0,
        )
        # The RPC deadline leaves the server time to answer with per-item timeouts first.
        timeout = deadline_s + 5.0 if deadline_s else None
        response = self._call(self.stub.Score, request, timeout)
        return [from_pb(r) for r in response.results]

    def rewards(self):
        return [kind.name for kind in self._call(self.stub.ListRewards, pb.ListRewardsRequest(), 30).rewards]

    def _call(self, method, request, timeout):
        try:
            return method(request, timeout=timeout, metadata=self.metadata, wait_for_ready=True)
        except grpc.RpcError as exc:
            error = _CODE_TO_ERROR.get(exc.code(), RlprError)
            raise error(f"{exc.code().name}: {exc.details()}") from exc

    def close(self):
        self.channel.close()


def make_client(url: str | None, token: str = "") -> RewardClient:
    if not url:
        return LocalRewardClient()
    if url.startswith("grpc://"):
        return GrpcRewardClient(url.removeprefix("grpc://"), token)
    raise ConfigError(f"reward url {url!r} must look like grpc://HOST:PORT (or be empty for in-process scoring)")
