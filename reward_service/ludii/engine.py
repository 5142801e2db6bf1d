"""The Ludii engine of a worker: the official jar, our Java evaluator, one JVM per process."""
from __future__ import annotations

import os
import pathlib
import threading
from dataclasses import dataclass

from reward_service.ludii import jvm
from reward_service.ludii.metrics import UNFINISHED

HOW_TO_GET_THE_JAR = (
    "Download the official Ludii release jar from https://ludii.games/download.php "
    "(e.g. https://ludii.games/downloads/Ludii-1.3.12.jar) and set LUDII_JAR=/path/to/Ludii.jar. "
    "Dockerfile.ludii does this at build time."
)


class LudiiJarMissing(jvm.JvmError):
    pass


@dataclass(frozen=True)
class Outcome:
    compiles: bool
    playable: bool
    timed_out: bool
    num_players: int
    failed_playouts: int
    winners: tuple[int, ...]
    message: str


def jar_path() -> str:
    jar = os.environ.get("LUDII_JAR", "")
    if not jar:
        raise LudiiJarMissing("LUDII_JAR is not set. " + HOW_TO_GET_THE_JAR)
    if not pathlib.Path(jar).is_file():
        raise LudiiJarMissing(f"LUDII_JAR={jar} is not a file. " + HOW_TO_GET_THE_JAR)
    return jar


class LudiiEngine:
    def __init__(self, jar: str, heap: str = jvm.DEFAULT_HEAP):
        helpers = jvm.build_helpers(jar)
        jvm.start([str(helpers), jar], heap)
        self._evaluator = jvm.jclass("rlpr.LudiiEvaluator")
        assert self._evaluator.UNFINISHED == UNFINISHED

    def evaluate(self, text: str, playouts: int, max_turns: int, seed: int, time_limit_s: float) -> Outcome:
        jvm.check()
        result = self._evaluator.evaluate(text, playouts, max_turns, seed, float(time_limit_s))
        return Outcome(bool(result.compiles), bool(result.playable), bool(result.timedOut), int(result.numPlayers),
                       int(result.failedPlayouts), tuple(int(w) for w in result.winners), str(result.message))


_engine: LudiiEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> LudiiEngine:
    """This process's engine, created (JVM started) on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = LudiiEngine(jar_path())
        return _engine
