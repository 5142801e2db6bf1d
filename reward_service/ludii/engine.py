"""The Ludii engine of a worker: the official jar and our Java evaluator, in a supervised JVM.

The JVM lives in a child process (`host.py`, a fresh interpreter, talking over a socket
pair); this process never starts a JVM and never forks. An evaluation is bounded end to end: the Java evaluator stops at its deadline
after any move, and what Java cannot stop by itself (one enormous compile, `game.start` on a
huge board, a single explosive move) the supervisor stops by killing the child, once the
limit plus KILL_GRACE_S has passed. A fresh child is started at once, in the background, for
the next item. A request that is withdrawn (its caller gone) also ends its evaluation.
"""
from __future__ import annotations

import logging
import math
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from reward_service.ludii import jvm

log = logging.getLogger(__name__)
HOW_TO_GET_THE_JAR = (
    "Download the official Ludii release jar from https://ludii.games/download.php "
    "(e.g. https://ludii.games/downloads/Ludii-1.3.12.jar), or build it from Ludii's public source with "
    "scripts/build-ludii-jar.sh (git, a JDK and Apache Ant), and set LUDII_JAR=/path/to/Ludii.jar. "
    "Dockerfile.ludii does this at build time."
)
START_TIMEOUT_S = 120.0  # javac of the helpers on first use, then the JVM
KILL_GRACE_S = 2.0  # Java stops within one move of its deadline; past this the child is killed
POLL_S = 0.1  # how often a waiting evaluation checks whether its request was withdrawn


class LudiiUnavailable(RuntimeError):
    """No jar, no JDK, or the JVM would not start: the message says which and how to fix it."""


@dataclass(frozen=True)
class Outcome:
    compiles: bool
    playable: bool
    stopped: str  # "" if every playout ran, else "time_limit", "deadline" (the request's) or "cancelled"
    num_players: int
    failed_playouts: int
    winners: tuple[int, ...]  # per finished playout
    capped: tuple[bool, ...]  # per finished playout
    message: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return bool(self.stopped)


def jar_path() -> str:
    jar = os.environ.get("LUDII_JAR", "")
    if not jar:
        raise LudiiUnavailable("LUDII_JAR is not set. " + HOW_TO_GET_THE_JAR)
    if not pathlib.Path(jar).is_file():
        raise LudiiUnavailable(f"LUDII_JAR={jar} is not a file. " + HOW_TO_GET_THE_JAR)
    return jar


class LudiiEngine:
    """One JVM child at a time; evaluations are serialised (the worker runs one job at a time)."""

    def __init__(self, jar: str, heap: str = jvm.DEFAULT_HEAP):
        self.jar = jar
        self.heap = heap
        self.restarts = 0
        self._lock = threading.Lock()
        self._process = None
        self._conn = None
        self._starting: threading.Thread | None = None
        self._start_error: LudiiUnavailable | None = None

    # -- the child ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the JVM child now (idempotent); LudiiUnavailable says why it cannot."""
        try:
            jvm.javac()  # fail fast, with the fix, when no JDK is installed or the heap size is wrong
            jvm.heap_megabytes(self.heap)
        except jvm.JvmError as exc:
            raise LudiiUnavailable(str(exc)) from None
        with self._lock:
            self._ensure_child()

    def _ensure_child(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            raise error
        if self._process is None or self._process.poll() is not None:
            self._spawn()

    def _spawn(self) -> None:
        """A fresh interpreter runs `reward_service.ludii.host` (exec'd, so nothing of ours is forked,
        and unlike multiprocessing's spawn it never re-imports the caller's __main__)."""
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "reward_service.ludii.host", str(theirs.fileno()), self.jar, self.heap,
             str(os.getpid())], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        conn = Connection(ours.detach())
        if not conn.poll(START_TIMEOUT_S):
            process.kill()
            process.wait()
            raise LudiiUnavailable(f"the Ludii JVM did not start within {START_TIMEOUT_S:g} s")
        try:
            kind, detail = conn.recv()
        except EOFError:
            kind, detail = "error", f"its process exited with code {process.wait()}"
        if kind != "ready":
            process.wait(10)
            raise LudiiUnavailable(f"the Ludii JVM could not start: {detail}")
        self._process, self._conn = process, conn

    def _kill_and_restart(self, why: str) -> None:
        """Kill the child now; start its successor in the background so no caller waits for it."""
        log.warning("stopping the Ludii JVM", extra={"why": why, "pid": self._process.pid})
        self._process.kill()
        self._process.wait()
        self._conn.close()
        self._process = self._conn = None
        self.restarts += 1

        def restart():
            try:
                self._spawn()
            except LudiiUnavailable as exc:
                self._start_error = exc

        self._starting = threading.Thread(target=restart, name="ludii-jvm-restart", daemon=True)
        self._starting.start()

    # -- evaluations --------------------------------------------------------------------------
    def evaluate(self, text: str, playouts: int, max_turns: int, seed: int, time_limit_s: float,
                 deadline: float = math.inf, cancelled=lambda: False) -> Outcome:
        """Compile and play `text` within `time_limit_s`, and never past `deadline` (a time.time()
        instant: the request's) or after `cancelled()` turns true (the request was withdrawn)."""
        with self._lock:
            self._ensure_child()
            started = time.monotonic()
            to_deadline = deadline - time.time()
            budget = min(time_limit_s, to_deadline)
            stopped_by = "time_limit" if time_limit_s <= to_deadline else "deadline"
            if budget <= 0:
                return Outcome(False, False, "deadline", 0, 0, (), (), "the deadline passed before the evaluation", 0.0)
            self._conn.send((text, playouts, max_turns, seed, budget))
            reply = self._wait(started + budget + KILL_GRACE_S, cancelled)
        seconds = time.monotonic() - started
        if reply == "cancelled":
            return Outcome(False, False, "cancelled", 0, 0, (), (), "the request was withdrawn", seconds)
        if reply is None:  # killed: a single compile, start or move ran past the limit
            return Outcome(False, False, stopped_by, 0, 0, (), (), f"stopped after {seconds:.1f} s: one compile, "
                           "start or move ran past the limit, so the JVM was killed", seconds)
        kind, value = reply
        if kind != "ok":
            raise RuntimeError(f"the Ludii evaluator failed: {value}")
        compiles, playable, timed_out, players, failed, winners, capped, message = value
        return Outcome(compiles, playable, stopped_by if timed_out else "", players, failed, winners, capped, message,
                       seconds)

    def _wait(self, kill_at: float, cancelled):
        while True:
            remaining = kill_at - time.monotonic()
            try:
                if self._conn.poll(max(0.0, min(POLL_S, remaining))):
                    return self._conn.recv()
            except (EOFError, OSError):
                code = self._process.poll()
                self._kill_and_restart("the JVM died")
                raise RuntimeError(f"the Ludii JVM died during the evaluation (exit code {code}); "
                                   "a fresh one was started") from None
            if cancelled():
                self._kill_and_restart("request withdrawn")
                return "cancelled"
            if remaining <= 0:
                self._kill_and_restart("evaluation overran its limit")
                return None

    def close(self) -> None:
        with self._lock:
            if self._starting is not None:
                self._starting.join()
            if self._process is not None:
                self._process.kill()
                self._process.wait()
                self._process = None


_engine: LudiiEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> LudiiEngine:
    """This process's engine (its JVM child starts on first use or `start()`)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = LudiiEngine(jar_path())
        return _engine

