"""One exception hierarchy for the whole service.

Every error knows both the gRPC status code and the HTTP status it maps to, so the
gRPC servicer and the REST app translate errors the same way and never guess.
"""
from __future__ import annotations

import grpc


class RlprError(Exception):
    """Base class. Subclasses set the two status codes."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidArgument(RlprError):
    """The request is malformed: missing field, bad value, empty batch."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 422


class UnknownReward(InvalidArgument):
    """The reward name is not in the registry; the message lists the valid names."""

    http_status = 404


class RequestTooLarge(InvalidArgument):
    """A request, batch or field is over its configured size limit."""

    http_status = 413


class Unauthenticated(RlprError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401


class Unavailable(RlprError):
    """A dependency (Redis, the workers) cannot be reached; the client may retry."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class DeadlineExceeded(RlprError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504


class InvalidItem(Exception):
    """Raised by a reward function when one item cannot be scored.

    It is not an RlprError: it never fails a batch, it marks one item `invalid`.
    """


class ConfigError(ValueError):
    """A configuration value is wrong; the message says how to fix it."""
