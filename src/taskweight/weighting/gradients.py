"""Per-task gradients on the shared parameters, for gradient-manipulation strategies.

:func:`per_task_shared_gradients` back-propagates each task loss once (retaining the graph
between tasks), copies the shared parameters' gradient into one row of a T × P matrix on the
parameters' device, and clears it before the next task. Task-specific (head) parameters keep
accumulating as usual, and since each head depends on its own loss only they end up with
their unweighted task gradient ∇L_τ. Nothing goes through host memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import assign_flat_grad, flat_grad


def per_task_shared_gradients(losses: Mapping[str, Tensor], tasks: Sequence[str], shared: Sequence[Tensor]) -> Tensor:
    """Return G (T × P): row τ = ∇_shared L_τ; leaves the shared ``.grad`` as they were before."""
    before = flat_grad(shared) if any(p.grad is not None for p in shared) else None
    for p in shared:
        p.grad = None
    rows = []
    for i, task in enumerate(tasks):
        losses[task].backward(retain_graph=i < len(tasks) - 1)
        rows.append(flat_grad(shared))
        for p in shared:
            p.grad = None
    if before is not None:
        assign_flat_grad(shared, before)
    return torch.stack(rows)


def add_shared_gradient(shared: Sequence[Tensor], vector: Tensor) -> None:
    """Add the flat ``vector`` to the shared parameters' ``.grad``."""
    offset = 0
    for p in shared:
        n = p.numel()
        piece = vector[offset : offset + n].view_as(p)
        p.grad = piece.clone() if p.grad is None else p.grad + piece
        offset += n
