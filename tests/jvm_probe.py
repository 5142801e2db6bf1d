"""Runs JVM-host checks in a fresh process (one JVM per process) and prints JSON. Used by test_jvm_host."""
import json
import os
import sys
import threading
import time

from reward_service.ludii import jvm


def main(mode: str) -> dict:
    helpers = jvm.build_helpers(None)
    jvm.start([str(helpers)], heap="256m")
    deadline = jvm.jclass("rlpr.Deadline")
    if mode == "threads":
        t0 = time.perf_counter()
        deadline.spin(400)
        one = time.perf_counter() - t0
        threads = [threading.Thread(target=deadline.spin, args=(400,)) for _ in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"one": one, "two_threads": time.perf_counter() - t0, "pid": jvm.started_pid(), "me": os.getpid()}
    if mode == "timeout":
        t0 = time.perf_counter()
        steps = deadline.sleepSteps(1000, 10, 0.3)
        return {"steps": int(steps), "elapsed": time.perf_counter() - t0}
    if mode == "restart":
        jvm.start([str(helpers)], heap="256m")  # a second start is a no-op
        try:
            jvm.start([str(helpers), "/other.jar"], heap="256m")
            return {"refused": False}
        except jvm.JvmError as exc:
            return {"refused": True, "message": str(exc)}
    if mode == "fork":
        pid = os.fork()
        if pid == 0:
            try:
                jvm.jclass("rlpr.Deadline")
                os._exit(0)
            except jvm.JvmError:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        return {"child_exit": os.waitstatus_to_exitcode(status)}
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
