"""gRPC front. The servicer only translates between protobuf and the service core.

Requests are registered with raw-bytes deserialisation so that a message that does not
parse (invalid UTF-8 in a string field, say) is answered INVALID_ARGUMENT, not INTERNAL.
"""
from __future__ import annotations

import hmac
import logging
from concurrent import futures

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from reward_service.errors import InvalidArgument, RlprError
from reward_service.proto_convert import items_from_pb, to_pb
from reward_service.service import RewardService
from rlpr_proto.v1 import reward_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RewardService"].full_name
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


class RewardServicer:
    def __init__(self, service: RewardService):
        self.service = service

    def _score(self, raw: bytes, context) -> pb.ScoreResponse:
        try:
            request = pb.ScoreRequest.FromString(raw)
        except DecodeError as exc:
            raise InvalidArgument(f"request does not parse (strings must be valid UTF-8): {exc}") from exc
        deadline_s = request.deadline_ms / 1000 if request.deadline_ms else None
        remaining = context.time_remaining()
        if remaining is not None:  # never outlive the caller's own gRPC deadline
            deadline_s = min(deadline_s or remaining, remaining)
        results = self.service.score(
            request.reward, items_from_pb(request), dict(request.options), deadline_s, not request.no_cache, "grpc"
        )
        return pb.ScoreResponse(results=[to_pb(r) for r in results])

    def Score(self, raw: bytes, context) -> pb.ScoreResponse:
        return self._translate_errors(context, lambda: self._score(raw, context))

    def ScoreStream(self, raws, context):
        for raw in raws:
            yield self._translate_errors(context, lambda: self._score(raw, context))

    def ListRewards(self, raw: bytes, context) -> pb.ListRewardsResponse:
        return pb.ListRewardsResponse(
            rewards=[
                pb.RewardKind(name=s.name, description=s.description, queue=s.queue, options=s.option_docs())
                for s in self.service.rewards()
            ]
        )

    def _translate_errors(self, context, call):
        try:
            return call()
        except RlprError as exc:
            self.service.metrics.request_errors.labels("grpc", exc.grpc_code.name).inc()
            context.abort(exc.grpc_code, exc.message)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without `authorization: Bearer <token>` metadata; health stays open."""

    def __init__(self, token: str):
        self.expected = f"Bearer {token}".encode()

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token in 'authorization' metadata")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_OPEN_PREFIXES):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(given, self.expected):
            return continuation(handler_call_details)
        return self._deny


def _handlers(servicer: RewardServicer) -> grpc.GenericRpcHandler:
    serialize = lambda message: message.SerializeToString()  # noqa: E731
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Score": grpc.unary_unary_rpc_method_handler(servicer.Score, response_serializer=serialize),
            "ScoreStream": grpc.stream_stream_rpc_method_handler(servicer.ScoreStream, response_serializer=serialize),
            "ListRewards": grpc.unary_unary_rpc_method_handler(servicer.ListRewards, response_serializer=serialize),
        },
    )


def create_server(
    service: RewardService, addr: str, token: str = "", max_message_bytes: int = 32 << 20, threads: int = 32
) -> tuple[grpc.Server, int]:
    """Build and bind (not start) the gRPC server; `addr` may use port 0. Returns (server, port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        interceptors=[TokenAuthInterceptor(token)] if token else [],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    server.add_generic_rpc_handlers([_handlers(RewardServicer(service))])
    health_servicer = health.HealthServicer()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(addr)
    if port == 0:
        raise OSError(f"could not bind gRPC to {addr}")
    return server, port
