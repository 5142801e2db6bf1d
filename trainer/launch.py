"""`rlpr train --processes N`: run the same training under `accelerate launch` with N processes.

The resolved configuration goes back on the command line (every value that differs from its
default, preset already applied), so each process parses exactly what this one did.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys


def config_argv(config) -> list[str]:
    """Command-line flags that rebuild `config`: every field that differs from its default."""
    argv: list[str] = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in ("processes", "preset") or value == field.default:
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def launch_command(config) -> list[str]:
    processes = str(config.processes)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", processes,
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port())]  # not the fixed default: two runs may share a machine
    command.append("--multi_gpu")  # torchrun underneath: gloo between CPU processes, NCCL between GPUs
    return command + ["--module", "rlpr", "train", *config_argv(config)]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def relaunch(config) -> int:
    command = launch_command(config)
    print(f"rlpr train: launching {config.processes} processes: {' '.join(command[1:])}", file=sys.stderr)
    return subprocess.call(command)
