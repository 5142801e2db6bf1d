"""gRPC front (grpc.aio). The servicer only translates between protobuf and the service core.

Requests are registered with raw-bytes deserialisation so that a message that does not
parse (invalid UTF-8 in a string field, say) is answered INVALID_ARGUMENT, not INTERNAL.
Handlers are coroutines: a request waiting on a slow reward holds no thread, and a caller
that goes away cancels its handler, which withdraws the request's queued work.
"""
from __future__ import annotations

import hmac
import logging

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from reward_contract import codec
from reward_contract.errors import InvalidArgument, RlprError
from reward_contract.wire.v1 import reward_pb2 as pb
from reward_service.core.health import Health
from reward_service.core.service import RewardService, internal_error

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RewardService"].full_name
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class RewardServicer:
    def __init__(self, service: RewardService):
        self.service = service
        self.memory = service.memory

    # An abort is an exception whose traceback holds these frames, in a cycle that only the garbage
    # collector frees: no frame of ours on that path may still hold the message.
    async def Score(self, raw: bytes, context) -> pb.ScoreResponse:
        size, call = len(raw), self._score(raw, context)
        del raw
        async with self.memory.request(size):
            return await self._translate_errors(context, call)

    async def ScoreStream(self, raws, context):
        async for raw in raws:
            size, call = len(raw), self._score(raw, context)
            del raw
            async with self.memory.request(size):
                response = await self._translate_errors(context, call)
            yield response

    async def ListRewards(self, raw: bytes, context) -> pb.ListRewardsResponse:
        return pb.ListRewardsResponse(rewards=[codec.kind_to_pb(k) for k in self.service.kinds()])

    async def _score(self, raw: bytes, context) -> pb.ScoreResponse:
        try:
            request = pb.ScoreRequest.FromString(raw)
        except DecodeError as exc:
            raise InvalidArgument(f"request does not parse (strings must be valid UTF-8): {exc}") from exc
        if request.terms and request.reward:
            raise InvalidArgument("set either `reward` or `terms`, not both")
        reward = codec.terms_from_pb(request) if request.terms else request.reward
        resolved = self.service.resolve_choice(reward, codec.items_from_pb(request), dict(request.options),
                                               request.deadline_ms / 1000 or None, not request.no_cache, "grpc",
                                               caller_remaining_s=context.time_remaining())
        results = await self.service.score(resolved)
        return pb.ScoreResponse(results=[codec.result_to_pb(r) for r in results])

    async def _translate_errors(self, context, call):
        try:
            return await call
        except RlprError as exc:
            code, message, retry_after_s = exc.grpc_code, exc.message, exc.retry_after_s
        except Exception:  # noqa: BLE001 - a bug of ours: logged whole, answered without its internals
            code, message, retry_after_s = "INTERNAL", internal_error("grpc").message, None
        # Abort outside the except block: inside it, the abort's exception would chain this one, whose
        # traceback holds the request's frames (a 30 MB message, parsed).
        self.service.metrics.request_errors.labels("grpc", code).inc()
        trailing = (("retry-after-ms", str(round(retry_after_s * 1000))),) if retry_after_s else ()
        await context.abort(grpc.StatusCode[code], message, trailing_metadata=trailing)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without `authorization: Bearer <token>` metadata; health stays open."""

    def __init__(self, token: str):
        self.expected = f"Bearer {token}".encode()

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing or wrong bearer token in 'authorization' metadata")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_OPEN_PREFIXES):
            return await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(given, self.expected):
            return await continuation(handler_call_details)
        return self._deny


def _handlers(servicer: RewardServicer) -> grpc.GenericRpcHandler:
    serialize = lambda message: message.SerializeToString()  # noqa: E731
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Score": grpc.unary_unary_rpc_method_handler(servicer.Score, response_serializer=serialize),
        "ScoreStream": grpc.stream_stream_rpc_method_handler(servicer.ScoreStream, response_serializer=serialize),
        "ListRewards": grpc.unary_unary_rpc_method_handler(servicer.ListRewards, response_serializer=serialize),
    })


class HealthReporter:
    """gRPC health that follows the service's: '' and the RewardService are SERVING while Redis
    answers (readiness); 'rlpr.reward.v1.RewardService/<reward>' is SERVING while a live worker
    serves that reward's queue."""

    def __init__(self, service: RewardService):
        self.service = service
        self.servicer = health.aio.HealthServicer()

    async def update(self, state: Health) -> None:
        ready = SERVING if state.redis else NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.servicer.set(name, ready)
        for kind in self.service.kinds():
            await self.servicer.set(f"{SERVICE_NAME}/{kind.name}", SERVING if state.serves(kind.queue) else NOT_SERVING)


def create_server(service: RewardService, addr: str, token: str = "", max_message_bytes: int = 32 << 20,
                  health_reporter: HealthReporter | None = None) -> tuple[grpc.aio.Server, int]:
    """Build and bind (not start) the gRPC server; `addr` may use port 0. Returns (server, port).

    A port another server holds is an error: SO_REUSEPORT is off, so two servers never share one."""
    service.memory.limit_arenas()
    server = grpc.aio.server(
        interceptors=[TokenAuthInterceptor(token)] if token else [],
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", max_message_bytes), ("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers([_handlers(RewardServicer(service))])
    reporter = health_reporter or HealthReporter(service)
    health_pb2_grpc.add_HealthServicer_to_server(reporter.servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        port = server.add_insecure_port(addr)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {addr}: the address is in use or not local ({exc})") from None
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {addr}: the address is in use or not local")
    return server, port
