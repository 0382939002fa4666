"""PCGrad, projecting conflicting gradients (Yu et al., NeurIPS 2020).

Not one of the paper's nine strategies: it proves that gradient-manipulation methods fit
the same ``backward`` contract with no trainer change. With g_τ = ∇_shared L_τ, for each task
i and the other tasks j in random order:

    if g_i^PC · g_j < 0:   g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j

and the shared parameters receive Σ_i g_i^PC; task-specific parameters receive ∇L_τ. The
random order comes from the strategy's own seeded generator (saved with its state), so runs
are reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from taskweight.weighting.base import ParamsLike, WeightingStrategy, as_param_list
from taskweight.weighting.gradients import add_shared_gradient, per_task_shared_gradients
from taskweight.weighting.registry import register


def project_conflicting(grads: Tensor, orders: Sequence[Sequence[int]]) -> Tensor:
    """PCGrad projection of a T × P gradient matrix; ``orders[i]`` = order of the other tasks for i."""
    projected = grads.clone()
    sq_norms = (grads * grads).sum(dim=1)
    for i in range(grads.shape[0]):
        for j in orders[i]:
            if j == i or sq_norms[j] == 0:
                continue
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] = projected[i] - (dot / sq_norms[j]) * grads[j]
    return projected


@register("pcgrad")
class PCGradWeighting(WeightingStrategy):
    """PCGrad: drop the conflicting component of each task gradient on the shared layers (Yu et al. 2020)."""

    def __init__(self, tasks: Sequence[str], *, seed: int = 0) -> None:
        super().__init__(tasks)
        self.generator = torch.Generator().manual_seed(int(seed))

    def current_weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: ParamsLike | None = None,
        last_shared_layer: ParamsLike | None = None,
    ) -> dict[str, float]:
        self._check_losses(losses)
        tasks = [t for t in self.tasks if t in losses]
        used = {t: 1.0 for t in tasks}
        shared = as_param_list(shared_params)
        if len(tasks) < 2 or not shared:
            self._weighted_backward(losses, used)
            return used
        grads = per_task_shared_gradients(losses, tasks, shared)
        orders = [torch.randperm(len(tasks), generator=self.generator).tolist() for _ in tasks]
        add_shared_gradient(shared, project_conflicting(grads, orders).sum(dim=0))
        return used

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "generator" in state:
            self.generator.set_state(state["generator"])
