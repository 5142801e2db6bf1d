"""Configuration of the service processes, validated at start-up.

Defaults come from the environment where one is named, so the same image can be
configured by flags or by `REDIS_URL`, `RLPR_REST_ADDR`, `RLPR_GRPC_ADDR`, `RLPR_AUTH_TOKEN`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from reward_service.errors import ConfigError

DEFAULT_REST_ADDR = os.environ.get("RLPR_REST_ADDR", "127.0.0.1:8000")
DEFAULT_GRPC_ADDR = os.environ.get("RLPR_GRPC_ADDR", "127.0.0.1:50051")
DEFAULT_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DEFAULT_AUTH_TOKEN = os.environ.get("RLPR_AUTH_TOKEN", "")


def split_addr(addr: str, what: str) -> tuple[str, int]:
    """'host:port' -> (host, port), with a message that says how to fix a bad value."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {addr!r} is not HOST:PORT; use e.g. 127.0.0.1:8000 (port 0 picks a free one)")
    return host.strip("[]"), int(port)


def check_redis_url(url: str) -> None:
    if urlparse(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"redis url {url!r} must start with redis://, rediss:// or unix://, e.g. {DEFAULT_REDIS_URL}")


@dataclass
class ServeConfig:
    """Run the reward API: gRPC and REST fronts over Redis/RQ workers (or in-process scoring)."""

    rest_addr: str = DEFAULT_REST_ADDR
    """REST listen address HOST:PORT (env RLPR_REST_ADDR)."""
    grpc_addr: str = DEFAULT_GRPC_ADDR
    """gRPC listen address HOST:PORT (env RLPR_GRPC_ADDR)."""
    redis_url: str = DEFAULT_REDIS_URL
    """Redis holding the queues and the result cache (env REDIS_URL)."""
    backend: str = "queue"
    """`queue`: fan out to RQ workers; `inprocess`: score inside the API process."""
    auth_token: str = DEFAULT_AUTH_TOKEN
    """Shared bearer token; empty disables auth (env RLPR_AUTH_TOKEN)."""
    cache: bool = True
    """Serve identical (reward, options, prompt, completion, reference) items from Redis."""
    cache_ttl_s: int = 24 * 3600
    """Lifetime of a cached result in seconds."""
    deadline_s: float = 120.0
    """Default per-request deadline when the request names none."""
    retries: int = 2
    """How often RQ retries a chunk whose worker failed or died."""
    max_batch_items: int = 4096
    """Largest batch accepted."""
    max_field_chars: int = 65536
    """Largest prompt, completion or reference value, in characters."""
    max_request_bytes: int = 32 * 1024 * 1024
    """Largest request body (REST) or message (gRPC), in bytes."""
    grpc_threads: int = 32
    """gRPC handler threads; each waits on one batch."""

    def __post_init__(self):
        split_addr(self.rest_addr, "rest_addr")
        split_addr(self.grpc_addr, "grpc_addr")
        check_redis_url(self.redis_url)
        if self.backend not in ("queue", "inprocess"):
            raise ConfigError(f"backend {self.backend!r} is not one of: queue, inprocess")
        for name in ("cache_ttl_s", "max_batch_items", "max_field_chars", "max_request_bytes", "grpc_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.deadline_s <= 0:
            raise ConfigError(f"deadline_s must be > 0 seconds, got {self.deadline_s}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")


@dataclass
class WorkerConfig:
    """Run one RQ worker that scores the named reward queues in-process (it never forks)."""

    queues: str = "arithmetic,sentiment_vader"
    """Comma-separated queues, e.g. `ludii` or `arithmetic,sentiment_vader`."""
    redis_url: str = DEFAULT_REDIS_URL
    """Redis holding the queues (env REDIS_URL)."""
    name: str = ""
    """Worker name; empty picks a unique one."""
    heartbeat_s: float = 1.0
    """How often a busy worker proves it is alive; a dead one is noticed within ~3x this."""
    burst: bool = False
    """Exit when the queues are empty (for scripts and tests)."""
    log_level: str = "WARNING"
    """RQ's log level; INFO prints three lines per job, which costs throughput at scale."""

    def __post_init__(self):
        from reward_service.rewards import REGISTRY

        check_redis_url(self.redis_url)
        unknown = [q for q in self.queue_list if q not in {s.queue for s in REGISTRY.values()}]
        if not self.queue_list or unknown:
            valid = ", ".join(sorted({s.queue for s in REGISTRY.values()}))
            raise ConfigError(f"unknown queue(s) {unknown or [self.queues]}; valid queues: {valid}")
        if self.heartbeat_s <= 0:
            raise ConfigError(f"heartbeat_s must be > 0, got {self.heartbeat_s}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level {self.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")

    @property
    def queue_list(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]
