"""Per-task gradients on the shared parameters: computed here, once per step, for every gradient method.

:func:`per_task_shared_gradients` back-propagates each task loss once (retaining the graph
between tasks), copies the shared parameters' gradient into one row of a T × P matrix J on the
parameters' device (in fp32, or the parameters' dtype when wider), and clears it before the
next task. Task-specific (head) parameters keep accumulating as usual, and since each head
depends on its own loss only they end up with their unweighted task gradient ∇L_τ. Whatever
the shared ``.grad`` held before is restored. Nothing goes through host memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def flat_grad(params: Sequence[Tensor], dtype: torch.dtype | None = None) -> Tensor:
    """Concatenate the ``.grad`` of ``params`` into one vector (zeros where a grad is None)."""
    pieces = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    return torch.cat([piece.to(dtype) if dtype is not None else piece for piece in pieces])


def per_task_shared_gradients(losses: Mapping[str, Tensor], tasks: Sequence[str], shared: Sequence[Tensor]) -> Tensor:
    """Return J (T × P): row τ = ∇_shared L_τ, fp32 at least; leaves the shared ``.grad`` as they were."""
    before = [p.grad for p in shared]
    dtype = torch.promote_types(shared[0].dtype, torch.float32)
    rows = []
    for i, task in enumerate(tasks):
        for p in shared:
            p.grad = None
        losses[task].backward(retain_graph=i < len(tasks) - 1)
        rows.append(flat_grad(shared, dtype))
    for p, grad in zip(shared, before, strict=True):
        p.grad = grad
    return torch.stack(rows)


def add_shared_gradient(shared: Sequence[Tensor], vector: Tensor) -> None:
    """Add the flat ``vector`` to the shared parameters' ``.grad`` (in each parameter's dtype).

    Each new ``.grad`` has its parameter's memory layout (autograd's layout contract): a fused
    optimiser reads a parameter, its gradient and its state as flat memory, so a row-major
    gradient of a channels-last weight would be applied to the wrong elements."""
    offset = 0
    for p in shared:
        n = p.numel()
        piece = vector[offset : offset + n].view_as(p).to(p.dtype)
        total = piece if p.grad is None else p.grad + piece
        p.grad = torch.empty_like(p, memory_format=torch.preserve_format).copy_(total)
        offset += n
