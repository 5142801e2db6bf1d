"""Save and resume PPO runs: model, tokenizer, value head, optimizer, KL state, step and RNG."""
from __future__ import annotations

import contextlib
import json
import pathlib
import random

import torch


def checkpoint_dir(out: pathlib.Path) -> pathlib.Path:
    return out / "checkpoint"


def save(out: pathlib.Path, trainer, step: int, rng: random.Random) -> pathlib.Path:
    path = checkpoint_dir(out)
    tmp = path.with_name("checkpoint.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    with _no_shard_bar():
        trainer.policy.lm.save_pretrained(tmp)
    trainer.tokenizer.save_pretrained(tmp)
    torch.save({"value_head": trainer.policy.value_head.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(
        {"step": step, "kl_coef": trainer.kl.value, "python_rng": repr(rng.getstate())}))
    if path.exists():  # swap in the finished checkpoint so a crash never leaves half of one
        old = path.with_name("checkpoint.old")
        path.rename(old)
        tmp.rename(path)
        _remove(old)
    else:
        tmp.rename(path)
    return path


@contextlib.contextmanager
def _no_shard_bar():
    """A checkpoint taken mid-run would draw transformers' "Writing model shards" bar through the run's own."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _remove(path: pathlib.Path) -> None:
    for child in path.iterdir():
        _remove(child) if child.is_dir() else child.unlink()
    path.rmdir()


def load_state(out: pathlib.Path, trainer, rng: random.Random) -> int:
    """Restore everything but the LM weights (loaded by from_pretrained); return the next step."""
    path = checkpoint_dir(out)
    state = torch.load(path / "trainer_state.pt", map_location=trainer.device, weights_only=False)
    trainer.policy.value_head.load_state_dict(state["value_head"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    meta = json.loads((path / "trainer_state.json").read_text())
    trainer.kl.value = meta["kl_coef"]
    import ast

    rng.setstate(ast.literal_eval(meta["python_rng"]))
    return meta["step"] + 1
