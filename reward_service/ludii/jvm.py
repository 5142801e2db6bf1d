"""One JVM per process, through JPype, started once and never forked.

A JVM does not survive `fork`: the child gets the memory but not the JVM's threads. The
Ludii engine therefore hosts its JVM in a spawned child process (reward_service/ludii/host.py)
that starts it once, and every call checks it is still in the process that started it. The
project's Java helpers are compiled here with `javac` (against the Ludii jar when one is
given) and cached by content.

Each JVM is held to `RLPR_JVM_PROCESSORS` cores (default 1): with N workers on N cores, a
JVM that believes it owns the whole machine runs JIT and GC threads that steal from the
other workers. The serial collector and the smallest compiler thread count follow from it.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import threading

JAVA_SOURCES = pathlib.Path(__file__).parent / "java"
CACHE = pathlib.Path(os.environ.get("RLPR_CACHE", pathlib.Path.home() / ".cache" / "rlpr")) / "java"
DEFAULT_HEAP = os.environ.get("RLPR_JVM_HEAP", "2g")
PROCESSORS = os.environ.get("RLPR_JVM_PROCESSORS", "1")

_lock = threading.Lock()
_state: dict = {"pid": None, "classpath": None, "forked": False}


def _mark_forked() -> None:
    _state["forked"] = True


os.register_at_fork(after_in_child=_mark_forked)


class JvmError(RuntimeError):
    pass


def javac() -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = pathlib.Path(home, "bin", "javac") if home else None
    found = str(candidate) if candidate and candidate.exists() else shutil.which("javac")
    if not found:
        raise JvmError("javac not found: install a JDK (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME")
    return found


def build_helpers(jar: str | None) -> pathlib.Path:
    """Compile our Java helpers (the Ludii ones only when a jar is given); cached by content."""
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    if jar is None:
        sources = [s for s in sources if "Ludii" not in s.name]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    if jar:
        stat = pathlib.Path(jar).stat()
        digest.update(f"{pathlib.Path(jar).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    out = CACHE / digest.hexdigest()[:16]
    if (out / ".built").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    command = [javac(), "-nowarn", "-d", str(out)] + (["-cp", jar] if jar else []) + [str(s) for s in sources]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise JvmError(f"compiling the Java helpers failed:\n{result.stderr[-4000:]}")
    (out / ".built").touch()
    return out


def start(classpath: list[str], heap: str = DEFAULT_HEAP) -> None:
    """Start this process's JVM once. Calling again with the same classpath is a no-op."""
    import jpype

    with _lock:
        if _state["pid"] is not None:
            if _state["classpath"] != classpath:
                raise JvmError(f"the JVM already runs with classpath {_state['classpath']}; it cannot change")
            check()
            return
        jpype.startJVM(*jvm_options(heap), classpath=classpath, convertStrings=True)
        _state.update(pid=os.getpid(), classpath=list(classpath), forked=False)


def jvm_options(heap: str) -> list[str]:
    # Half the heap for the young generation: playouts make short-lived garbage fast, and with the
    # default third of a heap that starts small the collector took 12% of a Reversi evaluation
    # (2% with half; Reversi 84 -> 76 ms, at ~0.6 GB more resident memory per worker).
    options = [f"-Xmx{heap}", f"-Xmn{heap_megabytes(heap) // 2}m", "-Xss16m", "-Djava.awt.headless=true",
               "-XX:+UseSerialGC"]
    if PROCESSORS:
        options.append(f"-XX:ActiveProcessorCount={PROCESSORS}")
    return options


_BYTES_PER_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def heap_megabytes(heap: str) -> int:
    """A JVM size such as 2g, 1536m or 2097152k, in megabytes."""
    match = re.fullmatch(r"(\d+)([kmg]?)", heap.strip().lower())
    megabytes = int(match[1]) * _BYTES_PER_UNIT[match[2]] >> 20 if match else 0
    if megabytes < 64:
        raise JvmError(f"RLPR_JVM_HEAP={heap!r} is not a JVM heap size of at least 64m: write e.g. 2g or 1536m")
    return megabytes


def check() -> None:
    """Refuse to touch the JVM from a process forked after it started."""
    if _state["pid"] is None:
        raise JvmError("the JVM has not been started in this process")
    if _state["forked"] or os.getpid() != _state["pid"]:
        raise JvmError(f"this process was forked from pid {_state['pid']} after its JVM started; "
                       "a JVM does not survive fork, so start workers that never fork")


def jclass(name: str):
    import jpype

    check()
    return jpype.JClass(name)


def started_pid() -> int | None:
    return _state["pid"]
