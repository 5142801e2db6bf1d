"""Settings every process reads the same way: the auth token, KEY=VALUE pairs, reward URLs."""
from __future__ import annotations

import os
from typing import Iterable

from reward_contract.errors import ConfigError

AUTH_TOKEN_ENV = "RLPR_AUTH_TOKEN"


def auth_token(explicit: str = "") -> str:
    """The token a flag gave, else the environment's. Defaults of CLI flags stay empty, so
    `--help` never prints a secret."""
    return explicit or os.environ.get(AUTH_TOKEN_ENV, "")


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """['a=1', 'b=x=y'] -> {'a': '1', 'b': 'x=y'}; a pair without '=' is a ConfigError naming the flag."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r} is not KEY=VALUE, e.g. {flag} lenient=true")
        parsed[key.strip()] = value
    return parsed


def grpc_target(url: str, flag: str = "--reward-url") -> str:
    """'grpc://host:port' -> 'host:port'; anything else is a ConfigError saying what fits."""
    target = url.removeprefix("grpc://")
    host, sep, port = target.rpartition(":")
    if not url.startswith("grpc://") or not sep or not host or not port.isdigit():
        raise ConfigError(f"{flag} {url!r} must look like grpc://HOST:PORT (or be empty to score in this process)")
    return target
