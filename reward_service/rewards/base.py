"""The contract every reward module follows.

A reward module exposes an options dataclass and one function
`score(item: RewardItem, options: <Options>) -> RewardResult`. A bad item raises
`InvalidItem`; a reward whose own time limit passed raises `TimeLimitExceeded`; anything
else raised is a reward error. `core.scoring.score_items` turns each into a per-item
status, never into a failed batch.
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from reward_contract.errors import InvalidArgument, quoted, quoted_names
from reward_contract.types import RewardItem, RewardKind


@dataclass(frozen=True)
class RewardResult:
    """What every reward function returns: the reward and why."""

    reward: float
    components: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""  # human-readable why, e.g. Ludii's compiler message


class InvalidItem(Exception):
    """The item cannot be scored (a missing or malformed reference field): status `invalid`."""


class TimeLimitExceeded(Exception):
    """The reward's own per-item time limit passed: status `time_limit`, with the partial work."""

    def __init__(self, message: str, components: Mapping[str, float] | None = None):
        super().__init__(message)
        self.components = dict(components or {})


class RequestExpired(Exception):
    """The request's deadline passed, or it was withdrawn, while this item was being scored: status `timeout`."""


@dataclass(frozen=True)
class WorkLimits:
    """The request a reward is scoring for: long rewards (Ludii) stop at its deadline or when it is
    withdrawn. `core.scoring.score_items` sets it; `work_limits()` reads it."""

    deadline: float = math.inf  # a time.time() instant, meaningful in every process
    cancelled: Callable[[], bool] = lambda: False


_work_limits: contextvars.ContextVar[WorkLimits] = contextvars.ContextVar("rlpr_work_limits", default=WorkLimits())


def work_limits() -> WorkLimits:
    return _work_limits.get()


class scoring_for:  # noqa: N801 - used like contextlib's context managers
    """Make `limits` what `work_limits()` returns inside this block. A class, not a generator:
    `contextlib.contextmanager` costs about as much as scoring a small arithmetic item."""

    __slots__ = ("limits", "token")

    def __init__(self, limits: WorkLimits):
        self.limits = limits

    def __enter__(self) -> None:
        self.token = _work_limits.set(self.limits)

    def __exit__(self, *exc_info) -> None:
        _work_limits.reset(self.token)


@dataclass(frozen=True)
class NoOptions:
    """For a reward that takes no options."""


_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class RewardSpec:
    """A registry entry: how to score, and how the service should schedule it.

    Only `name` and `score` are required; the rest has defaults that suit a cheap reward:

        LENGTH = RewardSpec("length_penalty", score_length)
    """

    name: str
    """What requests and `--reward` call it: lower case, digits and `_`, e.g. `length_penalty`."""
    score: Callable[[RewardItem, Any], RewardResult]
    """`score(item, options) -> RewardResult`; raise InvalidItem for an item it cannot score."""
    description: str = ""
    """One line for `rlpr rewards` and ListRewards; empty takes the first line of `score`'s docstring."""
    options_type: type = NoOptions
    """A frozen dataclass of the options a request may set; its field docs are the options' docs."""
    reference_fields: tuple[str, ...] = ()
    """The item's reference fields the reward reads, listed by `rlpr rewards`."""
    queue: str = ""
    """The RQ queue its items go to; empty: the reward's name. Rewards may share a queue (and workers)."""
    chunk_size: int = 64
    """Items per RQ job: large for cheap rewards, 1 for one that takes seconds an item (Ludii)."""
    job_timeout_s: int = 60
    """RQ's limit for one job (chunk); a job over it fails its items."""
    cache_identity: Callable[[RewardItem], tuple] | None = None
    """What decides the reward, for the result cache; None: every field of the item."""
    label_field: str = ""
    """The reference field a bare label (OpenRLHF, verl) fills."""
    max_inflight_items: int = 100_000
    """Items in flight per API process; more is refused with RESOURCE_EXHAUSTED."""
    default_deadline_s: float | None = None
    """Deadline of a request that names none; None: the service's default (120 s)."""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"reward name {self.name!r} must be lower case letters, digits and '_', starting "
                             "with a letter (at most 63 characters), e.g. 'length_penalty'")
        if not callable(self.score):
            raise ValueError(f"reward {self.name!r}: score must be a function (item, options) -> RewardResult")
        if not dataclasses.is_dataclass(self.options_type):
            raise ValueError(f"reward {self.name!r}: options_type must be a dataclass, got {self.options_type!r}")
        if self.chunk_size < 1 or self.job_timeout_s < 1:
            raise ValueError(f"reward {self.name!r}: chunk_size and job_timeout_s must be >= 1")
        if not self.description:
            doc = (getattr(self.score, "__doc__", None) or "").strip().splitlines()
            object.__setattr__(self, "description", doc[0] if doc else self.name)
        if not self.queue:
            object.__setattr__(self, "queue", self.name)
        object.__setattr__(self, "reference_fields", tuple(self.reference_fields))

    def options(self, raw: Mapping[str, object] | None) -> Any:
        """The typed options dataclass from strings (gRPC, CLI) or JSON scalars (REST)."""
        return parse_options(self.options_type, raw or {}, self.name)

    def kind(self) -> RewardKind:
        hints = _option_types(self.options_type)
        docs = {f.name: f"{_type_name(hints[f.name])} (default: {f.default!r})"
                for f in dataclasses.fields(self.options_type)}
        return RewardKind(self.name, self.description, self.queue, docs, self.label_field)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(value: object, tp: type) -> Any:
    """One option value -> `tp`. Strings are parsed; JSON scalars must already have the right type
    (a JSON bool is a bool, never an int)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError("expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            raise ValueError("expected a number")
        if not math.isfinite(number):
            raise ValueError("must be finite")
        return number
    if isinstance(value, str):
        return value
    raise ValueError("expected a string")


@functools.lru_cache(maxsize=None)
def _option_types(options_type: type) -> dict[str, Any]:
    """Field name -> type; resolving the hints compiles their strings, too slow to repeat per request."""
    return typing.get_type_hints(options_type)


def parse_options(options_type: type, raw: Mapping[str, object], reward: str) -> Any:
    """Build the options dataclass, naming the option and the fix in every error."""
    hints = _option_types(options_type)
    fields = {f.name for f in dataclasses.fields(options_type)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise InvalidArgument(f"unknown option(s) {quoted_names(unknown)} for reward {reward!r}; "
                              f"valid options: {valid}")
    values = {}
    for key, value in raw.items():
        try:
            values[key] = _convert(value, hints[key])
        except (ValueError, OverflowError) as exc:
            raise InvalidArgument(f"option {key!r} of reward {reward!r}: {quoted(value)} is not a valid "
                                  f"{_type_name(hints[key])} ({quoted(str(exc))[1:-1]})") from None
    try:
        return options_type(**values)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"options for reward {reward!r}: {exc}") from exc
