"""Reward clients: one interface, in this process or over gRPC, from one factory.

`make_client("")` scores in this process with the service's own reward functions (the
embedded default: no Redis, no server); `make_client("grpc://host:port")` talks to
`rlpr serve`. Every gRPC call has a deadline, and a service that cannot be reached is an
`Unavailable` error naming the address, never a hang.
"""
from __future__ import annotations

import importlib
import json
import threading
from typing import Mapping, Protocol, Sequence

import grpc

from reward_contract import codec
from reward_contract.errors import ERRORS_BY_GRPC_CODE, RlprError, Unavailable
from reward_contract.settings import auth_token, grpc_target
from reward_contract.types import RewardChoice, RewardItem, RewardKind, ScoredItem
from reward_contract.wire.v1 import reward_pb2 as pb
from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

DEFAULT_DEADLINE_S = 120.0  # the service's own default; a request may name another
ANSWER_GRACE_S = 5.0  # the RPC outlives the request deadline so per-item timeouts come back
CONNECT_TIMEOUT_S = 10.0
LIST_TIMEOUT_S = 10.0
# The in-process client lives with the service; importing it only when asked keeps this
# package free of the service's dependencies.
LOCAL_CLIENT = "reward_service.core.local_client:LocalRewardClient"


class RewardClient(Protocol):
    def score(self, reward: RewardChoice, items: Sequence[RewardItem], options: Mapping[str, object] | None = None,
              deadline_s: float | None = None) -> list[ScoredItem]:
        """One result per item, in order. Raises RlprError when the whole request fails. `reward` is a
        reward's name (with `options`), or a composite's `RewardTerm`s (each with its own options)."""

    def kinds(self) -> list[RewardKind]: ...

    def close(self) -> None: ...


def _channel_options(attempts: int, max_message_bytes: int) -> list[tuple]:
    """Both clients' channels: UNAVAILABLE retried with backoff, messages up to the service's limit."""
    return [("grpc.enable_retries", 1), ("grpc.service_config", _retry_service_config(attempts)),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)]


def _retry_service_config(attempts: int) -> str:
    return json.dumps({"methodConfig": [{
        "name": [{"service": "rlpr.reward.v1.RewardService"}],
        "retryPolicy": {"maxAttempts": attempts, "initialBackoff": "0.2s", "maxBackoff": "5s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]})


class GrpcRewardClient:
    def __init__(self, target: str, token: str = "", attempts: int = 5, max_message_bytes: int = 32 << 20,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.target = target
        self.connect_timeout_s = connect_timeout_s
        self.channel = grpc.insecure_channel(target, options=_channel_options(attempts, max_message_bytes))
        self.stub = pb_grpc.RewardServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._ready = threading.Event()
        self.channel.subscribe(self._on_state)

    def _on_state(self, state: grpc.ChannelConnectivity) -> None:
        (self._ready.set if state is grpc.ChannelConnectivity.READY else self._ready.clear)()

    def score(self, reward, items, options=None, deadline_s=None):
        request = codec.request_to_pb(reward, items, options or {}, deadline_s)
        response = self._call(self.stub.Score, request, (deadline_s or DEFAULT_DEADLINE_S) + ANSWER_GRACE_S)
        return [codec.result_from_pb(r) for r in response.results]

    def kinds(self):
        response = self._call(self.stub.ListRewards, pb.ListRewardsRequest(), LIST_TIMEOUT_S)
        return [codec.kind_from_pb(k) for k in response.rewards]

    def _call(self, method, request, timeout_s: float):
        if not self._ready.is_set():  # connect within a bounded time, or say where nothing answers
            try:
                grpc.channel_ready_future(self.channel).result(timeout=self.connect_timeout_s)
            except grpc.FutureTimeoutError:
                raise Unavailable(f"no reward service answers at {self.target} "
                                  f"(waited {self.connect_timeout_s:g} s to connect)") from None
        try:
            return method(request, timeout=timeout_s, metadata=self.metadata, wait_for_ready=True)
        except grpc.RpcError as exc:
            error = ERRORS_BY_GRPC_CODE.get(exc.code().name, RlprError)
            raise error(f"{exc.code().name} from {self.target}: {exc.details()}") from exc

    def close(self):
        self.channel.unsubscribe(self._on_state)
        self.channel.close()


class AsyncGrpcRewardClient:
    """The gRPC client for code on an event loop (verifiers, async trainers): `await client.score(...)`
    holds no thread while the service works. Make it on the loop that uses it."""

    def __init__(self, target: str, token: str = "", attempts: int = 5, max_message_bytes: int = 32 << 20):
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=_channel_options(attempts, max_message_bytes))
        self.stub = pb_grpc.RewardServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def score(self, reward, items, options=None, deadline_s=None) -> list[ScoredItem]:
        request = codec.request_to_pb(reward, items, options or {}, deadline_s)
        try:
            response = await self.stub.Score(request, timeout=(deadline_s or DEFAULT_DEADLINE_S) + ANSWER_GRACE_S,
                                             metadata=self.metadata, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            error = ERRORS_BY_GRPC_CODE.get(exc.code().name, RlprError)
            raise error(f"{exc.code().name} from {self.target}: {exc.details()}") from exc
        return [codec.result_from_pb(r) for r in response.results]

    async def close(self) -> None:
        await self.channel.close()


def make_client(url: str = "", token: str = "") -> RewardClient:
    """The in-process client for an empty url, else the gRPC client for grpc://HOST:PORT."""
    if not url:
        module, _, name = LOCAL_CLIENT.partition(":")
        return getattr(importlib.import_module(module), name)()
    return GrpcRewardClient(grpc_target(url), auth_token(token))
