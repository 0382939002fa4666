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
from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


def geometric_loss(losses: Sequence[Tensor]) -> Tensor:
    """(Π L_τ)^{1/T} via exp(mean log L_τ) (Eq. 7)."""
    return torch.exp(torch.stack([torch.log(loss) for loss in losses]).mean())


@register("geometric", title="Geometric loss")
class GeometricWeighting(LossWeighting):
    """Geometric mean of the task losses, (Π L_τ)^{1/T} (Eq. 7); effective w_τ = L/(T·L_τ)."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self._last: dict[str, float | Tensor] = {t: 1.0 / len(self.tasks) for t in self.tasks}

    def current_weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in self._last.items()}

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The effective weights L/(T·L_τ) of the tasks present (checked positive: one host sync)."""
        tasks = list(losses)
        values = torch.stack([losses[t].detach() for t in tasks])
        if not bool(((values > 0) & torch.isfinite(values)).all()):  # the strategy's one host sync per step
            bad = next(t for t, v in zip(tasks, values.tolist(), strict=True) if not (v > 0 and math.isfinite(v)))
            raise TrainingError(
                f"geometric weighting needs positive losses; the {bad} loss is {float(losses[bad].detach())}"
            )
        effective = geometric_loss(list(values)) / (len(tasks) * values)
        used = {t: effective[i] for i, t in enumerate(tasks)}
        self._last.update(used)
        return used

    def objective(self, losses: Mapping[str, Tensor], weights: Mapping[str, Tensor], active: Sequence[str]) -> Tensor:
        """(Π L_τ)^{1/T} itself (Eq. 7), whose gradient carries the effective weights."""
        return geometric_loss([losses[t] for t in active])
