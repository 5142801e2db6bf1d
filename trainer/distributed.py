"""Data parallelism: the one seam through which PPO's processes talk to each other.

Under `accelerate launch --num_processes N` (or `rlpr train --processes N`), each process
generates, scores and learns from its own contiguous share of every batch, and everything that
must not depend on how the batch is split goes through this object:
  - loss terms divide by the *global* number of tokens (`sum` of the local counts), and the
    gradients are summed across processes (`sum_gradients`), so the update equals the
    single-process update on the whole batch;
  - batch entropy's pbar sums the probabilities of every state of the global mini-batch
    (`sum_differentiable`: the forward all-reduces, the backward passes each process's gradient
    to its own states, so the summed gradient is the single-process one);
  - advantage whitening and the KL statistics use global sums.
With one process every method is the identity and nothing else is imported.
"""
from __future__ import annotations

import os

import torch


class _SumAcrossProcesses(torch.autograd.Function):
    """Forward: the sum over processes. Backward: the identity. Each process's loss is a function of
    the global sum, identical on every process, so d(loss)/d(local part) = d(loss)/d(sum) locally;
    summing parameter gradients across processes afterwards counts each path exactly once."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class DataParallel:
    """Rank, world size and the collective operations PPO needs (gloo on CPUs, NCCL on GPUs)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            from accelerate import PartialState

            PartialState()  # reads the launcher's environment and sets up the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This process's contiguous share of a global batch (the world size divides its length)."""
        size = len(items) // self.world
        return items[self.rank * size: (self.rank + 1) * size]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over processes, outside autograd."""
        if self.world == 1:
            return tensor
        out = tensor.detach().clone()
        torch.distributed.all_reduce(out)
        return out

    def maximum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return tensor
        out = tensor.detach().clone()
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.MAX)
        return out

    def sum_differentiable(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.world == 1 else _SumAcrossProcesses.apply(tensor)

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient across processes in one flat all-reduce. A process whose share
        of a mini-batch left a parameter without a gradient contributes zeros."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        offset = 0
        for param in params:
            n = param.numel()
            param.grad = flat[offset: offset + n].view_as(param).to(param.dtype)
            offset += n

    def broadcast_parameters(self, params: list[torch.nn.Parameter]) -> None:
        """Start every process from the main process's weights (fresh LoRA adapters are random)."""
        if self.world == 1:
            return
        with torch.no_grad():
            for param in params:
                torch.distributed.broadcast(param.data, src=0)

    def gather(self, items: list) -> list:
        """Every process's list, concatenated in rank order (rewards, completions: for metrics)."""
        if self.world == 1:
            return list(items)
        parts: list = [None] * self.world
        torch.distributed.all_gather_object(parts, list(items))
        return [item for part in parts for item in part]

    def broadcast_object(self, value):
        """The main process's value, on every process."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()
