"""One exception hierarchy for trainers and the service.

Every error knows the gRPC status code (by name, so this module needs no grpc) and the
HTTP status it maps to; both fronts and the client translate errors through these two
attributes and never guess.
"""
from __future__ import annotations


class RlprError(Exception):
    """Base class. Subclasses set the two status codes."""

    grpc_code: str = "INTERNAL"
    http_status: int = 500

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s  # a hint for ResourceExhausted, sent as Retry-After


class InvalidArgument(RlprError):
    """The request is malformed: missing field, bad value, empty batch."""

    grpc_code = "INVALID_ARGUMENT"
    http_status = 422


class UnknownReward(InvalidArgument):
    """The reward name is not in the registry; the message lists the valid names."""

    http_status = 404


class RequestTooLarge(InvalidArgument):
    """A request, batch or field is over its configured size limit."""

    http_status = 413


class Unauthenticated(RlprError):
    grpc_code = "UNAUTHENTICATED"
    http_status = 401


class ResourceExhausted(RlprError):
    """Too much work of this kind is in flight; retry after `retry_after_s`."""

    grpc_code = "RESOURCE_EXHAUSTED"
    http_status = 429


class NoWorker(RlprError):
    """No live worker serves the reward's queue: waiting would only end in a timeout."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 503


class Unavailable(RlprError):
    """A dependency (Redis, the service itself) cannot be reached; the client may retry."""

    grpc_code = "UNAVAILABLE"
    http_status = 503


class DeadlineExceeded(RlprError):
    grpc_code = "DEADLINE_EXCEEDED"
    http_status = 504


class Cancelled(RlprError):
    """The caller went away; its work was withdrawn."""

    grpc_code = "CANCELLED"
    http_status = 499


class Internal(RlprError):
    """A fault of the server's own. Its message is stable and names an error id; the detail is in the
    server's log under that id, never in the answer."""

    @classmethod
    def reported(cls, error_id: str) -> "Internal":
        return cls(f"internal error {error_id}; the server's log has its detail under that id")


ERRORS_BY_GRPC_CODE: dict[str, type[RlprError]] = {
    cls.grpc_code: cls for cls in (InvalidArgument, Unauthenticated, ResourceExhausted, NoWorker, Unavailable,
                                   DeadlineExceeded, Cancelled, Internal)
}


class ConfigError(ValueError):
    """A configuration value is wrong; the message says how to fix it."""


QUOTED_NAMES = 5  # an error message quotes at most this many of a client's names...
QUOTED_CHARS = 60  # ...and at most this much of any one of its values


def quoted(value: object) -> str:
    """repr(value), cut to QUOTED_CHARS: an error message must not grow with what a client sent
    (10,000 unknown keys once made a gRPC status outgrow the client's metadata limit)."""
    text = repr(value)
    return text if len(text) <= QUOTED_CHARS else f"{text[:QUOTED_CHARS]}... ({len(text):,} characters)"


def quoted_names(names: list[str]) -> str:
    """At most QUOTED_NAMES names, each quoted(), and how many more there were."""
    shown = ", ".join(quoted(name) for name in names[:QUOTED_NAMES])
    return shown + (f" and {len(names) - QUOTED_NAMES:,} more" if len(names) > QUOTED_NAMES else "")
