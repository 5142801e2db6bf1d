"""A worker's graceful stop, shared by the worker loop and the job it is running.

SIGTERM (what Kubernetes, compose and `rlpr up` send) or Ctrl-C asks a worker to stop: it takes
no new job, and the job it is running has `--stop-grace-s` to finish. Past that, the job stops at
its next check (between items, and every 0.1 s of a Ludii evaluation) and goes back to the front of
its queue, unscored, for another worker. A job either finishes and replies, or goes back without a
reply, never both: nothing is lost and no finished job runs again.

The state is this process's: a worker runs one job at a time in its own main thread (it never
forks), and the job's cancel probe asks `overdue()` with no round trip to Redis.
"""
from __future__ import annotations

import math
import time

_deadline = math.inf  # time.monotonic() instant past which the running job must go back


class JobPutBack(Exception):
    """Raised by a job the worker's stop cut short: it goes back on its queue, which is not a failure."""


def request(grace_s: float) -> float:
    """Stop within `grace_s` from now (a second request can only bring the instant forward); returns
    the grace that is left."""
    global _deadline
    _deadline = min(_deadline, time.monotonic() + grace_s)
    return max(0.0, _deadline - time.monotonic())


def overdue() -> bool:
    """True once the running job's grace has passed."""
    return time.monotonic() >= _deadline
