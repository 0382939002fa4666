"""Equal weighting: L = Σ_τ L_τ (paper §IV-A1, "no task weighting")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("equal", title="No task weighting")
class EqualWeighting(LossWeighting):
    """No task weighting: L = Σ_τ L_τ, every w_τ = 1 (§IV-A1)."""

    cuda_graph_safe = True  # device arithmetic only: see WeightingStrategy.cuda_graph_safe

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)

    def current_weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {t: self.constant(loss, 1.0) for t, loss in losses.items()}
