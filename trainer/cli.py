"""`rlpr train` and `rlpr sft`."""
from __future__ import annotations

import os
import pathlib
import signal
import sys

from tqdm import tqdm

from reward_contract.errors import ConfigError
from trainer.config import SFTConfig, TrainConfig


def run_train(config: TrainConfig) -> int:
    if config.processes > 1:
        from trainer.launch import relaunch

        return relaunch(config)
    from trainer import models
    from trainer.distributed import DataParallel
    from trainer.runtime import seed_everything

    models.check_environment(config)
    if config.algo == "ppo" and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise ConfigError("PPO replicates the model on every process and does not shard it with FSDP: launch it "
                          "without the FSDP config, and for a model that does not fit one GPU add --peft lora "
                          "--load-in 4bit (FSDP serves --algo grpo and rloo)")
    parallel = DataParallel()
    rng = seed_everything(config.seed, parallel.rank)
    out = pathlib.Path(config.out)
    if parallel.is_main:
        write_config(out, config)
    if config.algo != "ppo":
        from trainer.trl_algos import run_trl

        return run_trl(config, out, rng)
    return _run_ppo(config, out, rng, parallel)


def _run_ppo(config: TrainConfig, out: pathlib.Path, rng, parallel) -> int:
    """The PPO run: every process trains on its share; the main process alone writes logs,
    samples, the plot and checkpoints, and every process resumes from the same checkpoint."""
    from trainer import checkpoint
    from trainer.logger import MetricsLogger
    from trainer.ppo import PPOTrainer, RewardsFailing, TrainingDiverged, train_steps
    from trainer.runtime import autocast_dtype, pick_device
    from trainer.scorer import make_scorer
    from trainer.summary import baseline_for, closing
    from trainer.tasks import load_task

    resume = config.resume and checkpoint.checkpoint_dir(out).exists()
    task, tokenizer, lm = load_task(config, str(checkpoint.checkpoint_dir(out)) if resume else "")
    device = pick_device(config.device, parallel.local_rank)
    trainer = PPOTrainer(task, tokenizer, lm, config, device, autocast_dtype(device, config.bf16), parallel)
    start = checkpoint.load_state(out, trainer, rng) if resume else 0
    if resume and parallel.rank:  # the checkpoint holds the main process's sampler state; the others differ
        import torch

        torch.manual_seed(config.seed + parallel.rank + 7919 * start)
    scorer = make_scorer(config, task)
    baseline = baseline_for(config, task)
    main = parallel.is_main
    logger = MetricsLogger(out, resume=resume) if main else None
    bar = tqdm(total=config.steps, initial=start, desc=f"ppo {config.task}", unit="step", dynamic_ncols=True,
               disable=not main)
    samples = (out / "samples.jsonl").open("a" if resume else "w", encoding="utf-8") if main else None
    done = {"step": start - 1}

    def save(step: int) -> None:
        if main:
            checkpoint.save(out, trainer, step, rng)

    def on_step(step, rollout, metrics):
        done["step"] = step
        bar.update(1)
        if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
            save(step)
        if not main:
            return
        logger.log(step, metrics)
        write_samples(samples, step, [p.text for p in rollout.prompts], rollout.completions)
        # A fully masked batch (reward service down) has no loss terms: show nan, keep going.
        nan = float("nan")
        bar.set_postfix(reward=f"{metrics.get('reward/mean', nan):.3f}", ent=f"{metrics.get('entropy/token', nan):.2f}",
                        bent=f"{metrics.get('entropy/batch', nan):.2f}", failed=int(metrics["reward/failed_items"]),
                        skipped=int(metrics["train/skipped_updates"]))

    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)  # batch schedulers stop jobs with SIGTERM
    try:
        train_steps(trainer, scorer, rng, range(start, config.steps), config.overlap, on_step)
    except KeyboardInterrupt as exc:
        if done["step"] >= start:  # keep what was learned; --resume continues from here
            save(done["step"])
            if main:
                how = "terminated" if isinstance(exc, Terminated) else "interrupted"
                print(f"\n{how}: saved step {done['step']} to {checkpoint.checkpoint_dir(out)}; "
                      "continue with --resume", flush=True)
        raise
    except (TrainingDiverged, RewardsFailing) as exc:
        # Skipped updates never touched the weights, so the model is that of the last good update.
        save(done["step"])
        print(f"\nrlpr train: stopped: {exc}. Saved the last good weights (step {done['step']}) to "
              f"{checkpoint.checkpoint_dir(out)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        bar.close()
        scorer.close()
        if main:
            samples.close()
            png = logger.close(f"PPO {config.task}: ent={config.ent_coef} bent={config.bent_coef} kl={config.kl_coef}",
                               baseline)
    if main:
        print(closing(logger.path, png, checkpoint.checkpoint_dir(out), baseline))
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (a checkpoint, then exit), with the exit status a shell gives it."""

    exit_code = 143


def _raise_terminated(signum, frame):
    raise Terminated()


def write_samples(handle, step: int, prompts: list[str], completions: list[str], keep: int = 4) -> None:
    """A few prompts and completions per step, and the most common completion: what the policy does."""
    import json
    from collections import Counter

    top, count = Counter(completions).most_common(1)[0]
    handle.write(json.dumps({"step": step, "most_common": top, "share": count / len(completions),
                             "examples": [[p, c] for p, c in zip(prompts[:keep], completions)]}) + "\n")
    handle.flush()


def write_config(out: pathlib.Path, config) -> None:
    """The resolved configuration (preset and flags applied) next to the run, for reproduction.
    The token is left out."""
    import dataclasses
    import json

    out.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in dataclasses.asdict(config).items() if k != "reward_token"}
    (out / "config.json").write_text(json.dumps(values, indent=2, default=list) + "\n")


def run_sft(config: SFTConfig) -> int:
    from trainer import models
    from trainer.sft import run_supervised

    models.check_environment(config)
    write_config(pathlib.Path(config.out), config)
    return run_supervised(config)
