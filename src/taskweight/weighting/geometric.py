"""Geometric loss strategy (Chennupati et al. 2019; paper §IV-A, Eq. 7).

    L = (Π_τ L_τ)^{1/T} = exp( (1/T) Σ_τ log L_τ )

computed in log space. Its gradient is Σ_τ (L / (T L_τ)) ∇L_τ, so the *effective* weight of
task τ is w_τ = L / (T·L_τ): a task with a small loss gets a large weight, which balances the
tasks' scales without a tuned constant. Every loss must stay positive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from taskweight.errors import TrainingError
from taskweight.weighting.base import ParamsLike, WeightingStrategy
from taskweight.weighting.registry import register


def geometric_loss(losses: Sequence[Tensor]) -> Tensor:
    """(Π L_τ)^{1/T} via exp(mean log L_τ) (Eq. 7)."""
    return torch.exp(torch.stack([torch.log(l) for l in losses]).mean())


@register("geometric")
class GeometricWeighting(WeightingStrategy):
    """Geometric mean of the task losses, (Π L_τ)^{1/T} (Eq. 7); effective w_τ = L/(T·L_τ)."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self._last: dict[str, float] = {t: 1.0 / len(self.tasks) for t in self.tasks}

    def current_weights(self) -> dict[str, float]:
        return dict(self._last)

    def backward(self, losses: Mapping[str, Tensor], shared_params: ParamsLike | None = None,
                 last_shared_layer: ParamsLike | None = None) -> dict[str, float]:
        self._check_losses(losses)
        tasks = list(losses)
        for task in tasks:
            value = float(losses[task].detach())
            if not value > 0 or not math.isfinite(value):
                raise TrainingError(f"geometric weighting needs positive losses; the {task} loss is {value}")
        total = geometric_loss([losses[t] for t in tasks])
        total.backward()
        g = float(total.detach())
        used = {t: g / (len(tasks) * float(losses[t].detach())) for t in tasks}
        self._last.update(used)
        return used
