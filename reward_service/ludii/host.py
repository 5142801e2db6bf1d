"""The Ludii JVM's own process: started by the engine's supervisor as
`python -m reward_service.ludii.host FD JAR HEAP PARENT_PID` (a fresh interpreter, never a fork),
it answers evaluation requests on the connection FD until it closes or its parent dies."""
from __future__ import annotations

import gc
import os
import threading
import time
import traceback

from reward_service.ludii import jvm

PARENT_CHECK_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """A SIGKILLed worker cannot stop its JVM child; the child notices and leaves."""
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(0)


def serve(conn, jar: str, heap: str, parent_pid: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    try:
        helpers = jvm.build_helpers(jar)
        jvm.start([str(helpers), jar], heap)
        evaluator = jvm.jclass("rlpr.LudiiEvaluator")
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which refuses to start
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    # JPype runs a full Python collection after every Java GC (its GC bridge), and Ludii's playouts
    # make the JVM collect several times a second: without this, a second core went to collecting
    # this interpreter's start-up objects again and again. Frozen, they are skipped.
    gc.freeze()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            text, playouts, max_turns, seed, limit_s = request
            result = evaluator.evaluate(text, playouts, max_turns, seed, float(limit_s))
            conn.send(("ok", (bool(result.compiles), bool(result.playable), bool(result.timedOut),
                              int(result.numPlayers), int(result.failedPlayouts),
                              tuple(int(w) for w in result.winners), tuple(bool(c) for c in result.capped),
                              str(result.message))))
        except Exception:  # noqa: BLE001 - one bad evaluation must not end the host
            conn.send(("error", traceback.format_exc(limit=3)))


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    fd, jar, heap, parent_pid = argv
    serve(Connection(int(fd)), jar, heap, int(parent_pid))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
