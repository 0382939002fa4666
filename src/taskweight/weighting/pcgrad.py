"""PCGrad, projecting conflicting gradients (Yu et al., NeurIPS 2020).

Not one of the paper's nine strategies: it proves that gradient-manipulation methods fit
the same ``backward`` contract with no trainer change. With g_τ = ∇_shared L_τ, for each task
i and the other tasks j in random order:

    if g_i^PC · g_j < 0:   g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j

and the shared parameters receive Σ_i g_i^PC; task-specific parameters receive ∇L_τ. The
random order comes from the strategy's own seeded generator (saved with its state), so runs
are reproducible. With two tasks each gradient has one other to be projected on, the order
changes nothing and none is drawn: the step is then device arithmetic only, and a CUDA graph
can replay it (:attr:`~taskweight.weighting.base.WeightingStrategy.cuda_graph_safe`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GradientAggregation
from taskweight.weighting.registry import register


def project_conflicting(grads: Tensor, orders: Sequence[Sequence[int]]) -> Tensor:
    """PCGrad projection of a T × P gradient matrix; ``orders[i]`` = order of the other tasks for i."""
    projected = grads.clone()
    sq_norms = (grads * grads).sum(dim=1)
    tiny = torch.finfo(grads.dtype).tiny
    for i in range(grads.shape[0]):
        for j in orders[i]:
            if j == i:
                continue
            dot = projected[i] @ grads[j]
            # no host sync: a coefficient of exactly 0 where there is no conflict (or g_j = 0)
            coef = torch.where((dot < 0) & (sq_norms[j] > 0), dot / sq_norms[j].clamp_min(tiny), 0.0)
            projected[i] = projected[i] - coef * grads[j]
    return projected


@register("pcgrad", title="PCGrad")
class PCGradWeighting(GradientAggregation):
    """PCGrad: drop the conflicting component of each task gradient on the shared layers (Yu et al. 2020)."""

    def __init__(self, tasks: Sequence[str], *, seed: int = 0) -> None:
        super().__init__(tasks)
        self.seed_draws(seed)
        self.cuda_graph_safe = len(self.tasks) <= 2  # no order to draw (see the module docstring)

    def aggregate(self, jacobian: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Σ_i g_i^PC, every task weighted 1 (random orders drawn only for T > 2, where they matter)."""
        count = len(jacobian)
        if count <= 2:
            orders = [list(range(count))] * count
        else:
            orders = [torch.randperm(count, generator=self.generator).tolist() for _ in range(count)]
        return project_conflicting(jacobian, orders).sum(dim=0), torch.ones_like(losses)
