"""Rewards that exist only for tests: slow ones to kill workers under, and one that raises."""
from __future__ import annotations

import time
from dataclasses import dataclass

from reward_contract.types import RewardItem
from reward_service.rewards.base import (NoOptions, RequestExpired, RewardResult, RewardSpec, TimeLimitExceeded,
                                         work_limits)

SCORED_COUNTER = "rlpr:test:scored"  # how many items the slow reward finished, across workers


@dataclass(frozen=True)
class SleepOptions:
    sleep_s: float = 0.0
    """Sleep per item when the item's reference names no sleep_s."""


def _sleepy(item: RewardItem, options: SleepOptions) -> RewardResult:
    """Sleeps like a long evaluation does work: it stops when its request ends, as Ludii's does."""
    limits = work_limits()
    end = time.monotonic() + float(item.reference.get("sleep_s", options.sleep_s))
    while time.monotonic() < end:
        if limits.cancelled() or time.time() > limits.deadline:
            raise RequestExpired("stopped: the request ended")
        time.sleep(max(0.0, min(0.02, end - time.monotonic())))  # the check above may have taken a while
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.connection.incr(SCORED_COUNTER)
    return RewardResult(float(len(item.completion)), {"length": float(len(item.completion))})


def _overtime(item: RewardItem, options: NoOptions) -> RewardResult:
    """Like a Ludii game too slow for its limit: 3 playouts done when the limit passed."""
    if item.completion == "slow":
        raise TimeLimitExceeded("evaluation passed its limit after 3 of 100 playouts", {"playouts": 3.0})
    return RewardResult(0.5, {"playouts": 100.0})


def _explosive(item: RewardItem, options: NoOptions) -> RewardResult:
    if item.completion == "boom":
        raise RuntimeError("this item explodes")
    return RewardResult(1.0)


def _pid(item: RewardItem, options: NoOptions) -> RewardResult:
    import os

    return RewardResult(0.0, {"pid": float(os.getpid())})


PID = RewardSpec("test_pid", _pid, "reports the pid of the process that scored it", chunk_size=1)
SLOW = RewardSpec("test_slow", _sleepy, "sleeps reference.sleep_s, reward = len(completion)", SleepOptions,
                  ("sleep_s",), chunk_size=1)
SLOW_TOO = RewardSpec("test_slow_too", _sleepy, "test_slow on a queue of its own", SleepOptions, ("sleep_s",),
                     chunk_size=1)
LIMITED = RewardSpec("test_limited", _sleepy, "like test_slow, but at most 2 items in flight per API process",
                     SleepOptions, queue="test_slow", chunk_size=1, max_inflight_items=2)
OVERTIME = RewardSpec("test_overtime", _overtime, "time_limit for completion 'slow', else 0.5", chunk_size=4)
EXPLOSIVE = RewardSpec("test_explosive", _explosive, "raises for completion 'boom'", chunk_size=4)
