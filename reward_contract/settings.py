"""Settings every process reads the same way: the auth token, KEY=VALUE pairs, reward URLs."""
from __future__ import annotations

import os
from typing import Iterable, Mapping

from reward_contract.errors import ConfigError
from reward_contract.types import RewardChoice, RewardTerm

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


def reward_choice(rewards: Iterable[str], options: Mapping[str, str], reward_flag: str = "--reward",
                  option_flag: str = "--option") -> tuple[RewardChoice, dict[str, str]]:
    """What `--reward` flags name, and the request's top-level options: one reward (`--reward
    arithmetic`, options as given), or the terms of a composite (`--reward arithmetic=1 --reward
    length_penalty=0.1`), each option then named `REWARD.KEY` (`--option length_penalty.budget=8`)
    and carried by its term. Any mistake is a ConfigError with the fix."""
    specs = [spec.strip() for spec in rewards]
    if not specs or not all(specs):
        raise ConfigError(f"{reward_flag} needs a reward name, e.g. {reward_flag} arithmetic")
    if len(specs) == 1 and "=" not in specs[0]:
        return specs[0], dict(options)
    weights: dict[str, float] = {}
    for spec in specs:
        name, _, weight = spec.partition("=")
        try:
            weights[name.strip()] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ConfigError(f"{reward_flag} {spec!r}: the weight must be a number, e.g. {reward_flag} "
                              f"{name.strip()}=0.5") from None
    if len(weights) < len(specs):
        raise ConfigError(f"{reward_flag} names a reward twice ({', '.join(specs)}); give each reward once")
    per_term: dict[str, dict[str, str]] = {name: {} for name in weights}
    for key, value in options.items():
        name, dot, option = key.partition(".")
        if not dot or name not in per_term:
            raise ConfigError(f"{option_flag} {key}=...: with several rewards, name the reward an option is for, "
                              f"e.g. {option_flag} {next(iter(weights))}.{option or key}={value}")
        per_term[name][option] = value
    return tuple(RewardTerm(name, weight, per_term[name]) for name, weight in weights.items()), {}


def choice_names(reward: RewardChoice) -> list[str]:
    """The reward names a choice scores."""
    return [reward] if isinstance(reward, str) else [term.reward for term in reward]
