"""The `rlpr` command: one sub-command per component, each configured by a dataclass.

Sub-commands are imported lazily so `rlpr worker` never loads torch. A config class may
offer `defaults_for(argv)`: the defaults a preset implies (`rlpr train --preset paper`),
which the other flags then override.
"""
from __future__ import annotations

import importlib
import logging
import sys

# name -> (config class, runner, one-line help)
COMMANDS = {
    "serve": ("reward_service.config:ServeConfig", "reward_service.fronts.server:serve",
              "run the gRPC + REST reward API"),
    "worker": ("reward_service.config:WorkerConfig", "reward_service.worker.worker:run_worker", "run one reward worker"),
    "up": ("rlpr.launcher:UpConfig", "rlpr.launcher:run_up",
           "start redis, the API and workers locally (the no-Docker twin of docker compose up)"),
    "score": ("rlpr.score_cli:ScoreConfig", "rlpr.score_cli:run_score", "score one output"),
    "rewards": ("rlpr.rewards_cli:RewardsConfig", "rlpr.rewards_cli:run_rewards",
                "list every reward with its options and reference fields"),
    "train": ("trainer.config:TrainConfig", "trainer.cli:run_train", "train a model with PPO, GRPO or RLOO"),
    "sft": ("trainer.config:SFTConfig", "trainer.cli:run_sft", "supervised baseline / pre-training"),
    "export": ("trainer.export:ExportConfig", "trainer.export:run_export",
               "write a checkpoint as a standalone model (--merge folds LoRA adapters in)"),
    "ludii-data": ("trainer.tasks.ludii_data:LudiiDataConfig", "trainer.tasks.ludii_data:run_export",
                   "build the Ludii fill-in-the-middle dataset"),
}


def _load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _usage() -> str:
    lines = ["usage: rlpr COMMAND [--help] [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tyro

    from reward_contract.errors import ConfigError, RlprError

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"rlpr: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    name = argv[0]
    config_path, runner_path, _ = COMMANDS[name]
    from rlpr.logs import setup

    setup(logging.INFO)
    try:
        config_class = _load(config_path)
        defaults = config_class.defaults_for(argv[1:]) if hasattr(config_class, "defaults_for") else None
        config = tyro.cli(config_class, args=argv[1:], prog=f"rlpr {name}", default=defaults)
        result = _load(runner_path)(config)
    except ConfigError as exc:
        print(f"rlpr {name}: error: {exc}", file=sys.stderr)
        return 2
    except RlprError as exc:
        print(f"rlpr {name}: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where a command turns it into one
        return getattr(exc, "exit_code", 130)
    return result if isinstance(result, int) else 0
