"""Configuration of the service processes, validated at start-up.

Defaults come from the environment where one is named, so the same image can be configured
by flags or by `REDIS_URL`, `RLPR_REST_ADDR`, `RLPR_GRPC_ADDR`, `RLPR_AUTH_TOKEN`. The token's
flag defaults to empty and is read from the environment when used, so `--help` never shows it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from reward_contract.errors import ConfigError

DEFAULT_REST_ADDR = os.environ.get("RLPR_REST_ADDR", "127.0.0.1:8000")
DEFAULT_GRPC_ADDR = os.environ.get("RLPR_GRPC_ADDR", "127.0.0.1:50051")
DEFAULT_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# A worker silent this long is dead: the API stops routing to it, and (as the worker's own
# `--dead-after-s`) its running chunk goes back on the queue. Idle workers beat every 5 s and busy
# ones every second, so a GC pause, a swap storm or a brief SIGSTOP is not taken for death: a chunk
# declared dead too soon runs twice (tests/test_faults.py, bench/faults.py).
DEAD_AFTER_S = 20.0


def _env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment; NaN (refused at start, naming the flag) if it is not one."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return math.nan


# How long a stopping worker's running job may go on before it goes back on its queue. The default
# fits Kubernetes' default terminationGracePeriodSeconds (30 s); deployments whose jobs run longer
# (Ludii: up to 600 s) raise both together (deploy/kubernetes, docker-compose.yml).
STOP_GRACE_S = _env_seconds("RLPR_STOP_GRACE_S", 25.0)


def split_addr(addr: str, what: str) -> tuple[str, int]:
    """'host:port' -> (host, port), with a message that says how to fix a bad value."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {addr!r} is not HOST:PORT; use e.g. 127.0.0.1:8000 (port 0 picks a free one)")
    return host.strip("[]"), int(port)


def check_redis_url(url: str) -> None:
    if urlparse(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"redis url {url!r} must start with redis://, rediss:// or unix://, e.g. {DEFAULT_REDIS_URL}")


def _at_least(config, minimum, *names: str) -> None:
    for name in names:
        if not getattr(config, name) >= minimum:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {minimum}, got {getattr(config, name)}")


@dataclass
class ApiConfig:
    """Where the reward API listens and what it uses: shared by `rlpr serve` and `rlpr up`."""

    rest_addr: str = DEFAULT_REST_ADDR
    """REST listen address HOST:PORT (env RLPR_REST_ADDR)."""
    grpc_addr: str = DEFAULT_GRPC_ADDR
    """gRPC listen address HOST:PORT (env RLPR_GRPC_ADDR)."""
    redis_url: str = DEFAULT_REDIS_URL
    """Redis holding the queues and the result cache (env REDIS_URL)."""
    auth_token: str = ""
    """Shared bearer token for both fronts; empty reads $RLPR_AUTH_TOKEN; none at all disables auth."""
    cache: bool = True
    """Serve identical (reward, options, prompt, completion, reference) items from Redis."""

    def __post_init__(self):
        split_addr(self.rest_addr, "--rest-addr")
        split_addr(self.grpc_addr, "--grpc-addr")
        check_redis_url(self.redis_url)


@dataclass
class ServeConfig(ApiConfig):
    """Run the reward API: gRPC and REST fronts over Redis/RQ workers (or in-process scoring)."""

    backend: str = "queue"
    """`queue`: fan out to RQ workers; `inprocess`: score inside the API process."""
    cache_ttl_s: int = 24 * 3600
    """Lifetime of a small (<= 1 KiB) cached result; bigger entries live proportionally shorter."""
    cache_min_ttl_s: int = 600
    """Shortest lifetime of a cached result, however big."""
    deadline_s: float = 120.0
    """Default per-request deadline when the request names none."""
    max_deadline_s: float = 3600.0
    """Longest deadline a request may ask for; more is INVALID_ARGUMENT / 422."""
    retries: int = 2
    """How often RQ retries a chunk whose worker failed or died."""
    max_batch_items: int = 4096
    """Largest batch accepted."""
    max_field_chars: int = 65536
    """Largest prompt, completion or reference value, in characters."""
    max_request_bytes: int = 32 * 1024 * 1024
    """Largest request body (REST) or message (gRPC), in bytes."""
    max_inflight_requests: int = 2048
    """Requests this process waits on at once; more are refused with RESOURCE_EXHAUSTED / 429 and a retry hint."""
    inprocess_threads: int = 4
    """Threads that run rewards with --backend inprocess (the event loop never runs them itself)."""

    def __post_init__(self):
        super().__post_init__()
        if self.backend not in ("queue", "inprocess"):
            raise ConfigError(f"--backend {self.backend!r} is not one of: queue, inprocess")
        _at_least(self, 1, "cache_ttl_s", "cache_min_ttl_s", "max_batch_items", "max_field_chars",
                  "max_request_bytes", "max_inflight_requests", "inprocess_threads")
        _at_least(self, 0, "retries")
        if not 0 < self.deadline_s <= self.max_deadline_s:
            raise ConfigError(f"--deadline-s must be in (0, --max-deadline-s={self.max_deadline_s}], "
                              f"got {self.deadline_s}")


@dataclass
class WorkerConfig:
    """Run one RQ worker that scores the named reward queues in its own process (it never forks)."""

    queues: str = "arithmetic,sentiment_vader"
    """Comma-separated queues, e.g. `ludii` or `arithmetic,sentiment_vader`."""
    redis_url: str = DEFAULT_REDIS_URL
    """Redis holding the queues (env REDIS_URL)."""
    name: str = ""
    """Worker name; empty picks a unique one."""
    heartbeat_s: float = 1.0
    """How often a busy worker proves it is alive."""
    dead_after_s: float = DEAD_AFTER_S
    """A busy worker silent this long is declared dead and its chunk is run again (delivery is at least
    once). Shorter recovers from a killed worker sooner; longer runs a briefly stalled worker's chunk
    twice less often. The API stops routing to a worker after the same 20 s."""
    stop_grace_s: float = STOP_GRACE_S
    """On SIGTERM or Ctrl-C the worker takes no new job, and its running job has this long to finish before
    it goes back to the front of its queue, unscored (env RLPR_STOP_GRACE_S). Keep it below the platform's
    grace (Kubernetes' terminationGracePeriodSeconds, compose's stop_grace_period)."""
    burst: bool = False
    """Exit when the queues are empty (for scripts and tests)."""
    log_level: str = "WARNING"
    """RQ's log level; INFO prints three lines per job, which costs throughput at scale."""

    def __post_init__(self):
        from reward_service.rewards import REGISTRY

        check_redis_url(self.redis_url)
        valid = sorted({s.queue for s in REGISTRY.values()})
        unknown = [q for q in self.queue_list if q not in valid]
        if not self.queue_list or unknown:
            raise ConfigError(f"unknown queue(s) {unknown or [self.queues]}; valid queues: {', '.join(valid)}")
        if self.heartbeat_s <= 0:
            raise ConfigError(f"--heartbeat-s must be > 0, got {self.heartbeat_s}")
        if not self.dead_after_s >= 2 * self.heartbeat_s:
            raise ConfigError(f"--dead-after-s must be at least twice --heartbeat-s ({self.heartbeat_s:g}), so one "
                              f"late beat is not death; got {self.dead_after_s:g}")
        if not self.stop_grace_s >= 0:
            raise ConfigError(f"--stop-grace-s (env RLPR_STOP_GRACE_S) must be a number of seconds >= 0 "
                              f"(0 puts a running job back at once), got {self.stop_grace_s}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"--log-level {self.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")

    @property
    def queue_list(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]
