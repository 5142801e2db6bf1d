"""Give the memory of big requests back to the operating system once they are done.

A gRPC message is read in many small pieces on gRPC's own threads, then joined; glibc keeps
what those threads freed in per-thread arenas and returns little of it by itself. Twenty rejected
30 MB messages once left the API at 2.3 GB (its baseline: 80 MB) for good. So the API caps the
arenas (gRPC's threads share two instead of one each) and, when the last big request in flight is
done, collects cyclic garbage and asks glibc to return every free page (`malloc_trim`).
Measured in tests/test_hostile_input.py.
Elsewhere than glibc (musl, macOS) both are no-ops.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)

BIG_REQUEST_BYTES = 1 << 20  # a request this big leaves enough behind to be worth a trim
TRIM_AFTER_S = 0.5  # gRPC frees a message's buffers after its handler returns: trim after that
ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


class MemoryReleaser:
    def __init__(self):
        self._libc = _glibc()
        self._big_in_flight = 0
        self._ended_at = 0.0  # the event loop's time when the latest big request ended
        self._trim_due = False  # a trim is scheduled or running

    def limit_arenas(self) -> None:
        """Call before the server starts its threads: arenas already made stay."""
        if self._libc is not None:
            self._libc.mallopt(_M_ARENA_MAX, ARENAS)

    @asynccontextmanager
    async def request(self, size: int):
        """Around the handling of one request of `size` bytes."""
        if size < BIG_REQUEST_BYTES or self._libc is None:
            yield
            return
        self._big_in_flight += 1
        try:
            yield
        finally:
            self._big_in_flight -= 1
            self._ended_at = asyncio.get_running_loop().time()
            if not self._trim_due:
                self._trim_due = True
                asyncio.get_running_loop().call_later(TRIM_AFTER_S, self._start_trim)

    def _start_trim(self) -> None:
        """Trim once TRIM_AFTER_S passed since the latest big request ended and none is in flight.
        A big one in flight will schedule its own trim; one that ended meanwhile postpones this one."""
        if self._big_in_flight:
            self._trim_due = False
            return
        wait = self._ended_at + TRIM_AFTER_S - asyncio.get_running_loop().time()
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._start_trim)
            return
        # On a thread: trimming a large heap takes milliseconds the event loop should not wait.
        started_at = asyncio.get_running_loop().time()
        trim = asyncio.ensure_future(asyncio.to_thread(self._release))
        trim.add_done_callback(lambda done: self._trimmed(done, started_at))

    def _release(self) -> None:
        # An aborted gRPC call leaves a cycle (its exception's traceback holds gRPC's own frames, and
        # they hold the message) that only the collector frees: collect, then give the pages back.
        gc.collect()
        self._libc.malloc_trim(0)

    def _trimmed(self, trim: asyncio.Future, started_at: float) -> None:
        if not trim.cancelled() and trim.exception() is not None:
            log.warning("malloc_trim failed", extra={"error": repr(trim.exception())})
        if self._ended_at > started_at and not self._big_in_flight:  # one ended while trimming
            asyncio.get_running_loop().call_later(TRIM_AFTER_S, self._start_trim)
        else:
            self._trim_due = False
