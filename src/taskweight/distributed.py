"""Training on N processes with PyTorch's own distributed stack (gloo on CPU, NCCL on GPU).

Launched by ``taskweight train --nproc N`` (which runs ``torch.distributed.run --standalone``)
or by ``torchrun --nproc-per-node N -m taskweight.cli train ...``: every rank runs the same
trainer on its own share of each epoch (a ``DistributedSampler``); :class:`Distributed` holds
the process group and the three reductions that make N ranks with batch b take the step one
process takes with batch N·b.

1. **Losses.** Rank r computes its task losses L_τ,r over its n_τ,r labelled images. One
   all-reduce gives the global loss L_τ = Σ_r n_τ,r L_τ,r / Σ_r n_τ,r. The strategy receives, on
   every rank, a tensor whose *value* is L_τ and whose *gradient* is that of
   (N n_τ,r / Σ_r n_τ,r) · L_τ,r, so that averaging the gradients over the ranks yields ∇L_τ. Every
   strategy that reads loss values (dynamic scaling, DWA, handcrafted, FAMO, GradNorm's ratios…)
   therefore holds the same state on every rank. A task labelled on some ranks only is given a
   zero loss with a graph on the others, so that every rank runs the same backward passes.
2. **Per-task gradients.** Strategies that combine per-task gradients (every
   :class:`~taskweight.weighting.base.GradientAggregation`, GradNorm's ∇_W L_τ) average them over
   the ranks *before* combining them, through the strategy's ``reduce_gradients`` hook. Each rank
   thus applies the combination of the global per-task gradients, not of its local ones (LibMTL's
   missing piece).
3. **Parameter gradients.** After the strategy's backward pass the parameters' gradients are
   averaged (one flat all-reduce); the shared ones already agree, so this is a no-op for them.

Batch normalisation: on CUDA the network's BatchNorm layers become ``SyncBatchNorm``; on the
CPU (which SyncBatchNorm does not support) each rank normalises with its own batch statistics,
as DistributedDataParallel without SyncBatchNorm does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
from torch import Tensor

WORLD_ENV = "WORLD_SIZE"


def launched() -> bool:
    """Whether this process is a rank of a ``torch.distributed.run`` launch with more than one process."""
    return int(os.environ.get(WORLD_ENV, "1")) > 1


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``taskweight ARGV`` on ``nproc`` local processes through ``torch.distributed.run``; its exit status."""
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "taskweight.cli",
        *argv,
    ]
    return subprocess.call(command)


@dataclass
class Distributed:
    """This process's place in the process group: ``rank`` of ``world_size``."""

    rank: int
    world_size: int

    @classmethod
    def from_environment(cls, device: torch.device) -> tuple[Distributed | None, torch.device]:
        """Join the process group that ``torch.distributed.run`` describes in the environment.

        Returns ``(None, device)`` outside a multi-process launch. Inside one it returns the group and
        the device of this rank: ``cuda:LOCAL_RANK`` when ``device`` is CUDA, else ``device``."""
        if not launched():
            return None, device
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size()), device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run's files and validates."""
        return self.rank == 0

    # ------------------------------------------------------------------ reductions
    def global_losses(
        self, losses: Mapping[str, Tensor], counts: Mapping[str, Tensor], placeholders: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """The losses the strategy sees on every rank (module docstring, point 1).

        ``losses``: this rank's task losses; ``counts``: for every task of the network, the number of
        this rank's images labelled for it (0-dim tensors, 0 where the task has no loss here);
        ``placeholders``: per task, a tensor of the network's output to build a zero loss from."""
        tasks = list(counts)
        device = next(iter(counts.values())).device
        local = torch.stack(
            [losses[t].detach().float() if t in losses else torch.zeros((), device=device) for t in tasks]
        )
        n = torch.stack([counts[t].float() for t in tasks])
        packed = torch.cat([local * n, n])
        dist.all_reduce(packed)
        sums, totals = packed[: len(tasks)], packed[len(tasks) :]
        present = [t for t, total in zip(tasks, totals.tolist(), strict=True) if total > 0]  # one host read per step
        out: dict[str, Tensor] = {}
        for t in present:
            i = tasks.index(t)
            mean = sums[i] / totals[i]
            mine = losses[t] if t in losses else placeholders[t].float().sum() * 0.0
            scaled = mine * (self.world_size * n[i] / totals[i])
            out[t] = scaled + (mean - scaled).detach()
        return out

    def average(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """The element-wise mean of each tensor over the ranks (one all-reduce); new tensors."""
        if not tensors:
            return []
        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        out: list[Tensor] = []
        offset = 0
        for t in tensors:
            out.append(flat[offset : offset + t.numel()].view(t.shape).to(t.dtype))
            offset += t.numel()
        return out

    def average_gradients_(self, params: Iterable[Tensor]) -> None:
        """Average the ``.grad`` of ``params`` over the ranks, in place (their memory layout kept)."""
        with_grad = [p for p in params if p.grad is not None]
        for p, mean in zip(with_grad, self.average([p.grad for p in with_grad]), strict=True):  # type: ignore[misc]
            p.grad.copy_(mean)  # type: ignore[union-attr]

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def convert_batch_norm(model: ModuleT, device: torch.device) -> ModuleT:
    """BatchNorm → SyncBatchNorm on CUDA (statistics over every rank's batch); unchanged on the CPU.
    The state dict keeps its keys, so checkpoints load either way."""
    if device.type != "cuda":
        return model
    return cast(ModuleT, torch.nn.SyncBatchNorm.convert_sync_batchnorm(model))


def shutdown() -> None:
    """Leave the process group (at the end of a rank's run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
