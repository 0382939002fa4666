"""Static weights: w̄_τ = w'_τ / Σ_j w'_j with user-given (or searched) w'_τ (paper §IV-C).

The weights found by the evolutionary search (``taskweight search``, method ``meta``) are
trained through this strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


def normalised_weights(raw: Mapping[str, float]) -> dict[str, float]:
    """w̄_τ = w'_τ / Σ_j w'_j (§IV-C); every w'_τ must be finite and ≥ 0, and at least one > 0."""
    for task, value in raw.items():
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"option 'weights': task weight for {task!r} must be a finite number >= 0, got {value}")
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"option 'weights': task weights must not all be 0: {dict(raw)}")
    return {t: v / total for t, v in raw.items()}


@register("static", title="Static weights")
class StaticWeighting(LossWeighting):
    """Fixed weights w'_τ normalised to sum 1: L = Σ_τ w̄_τ L_τ (§IV-C); option ``weights``."""

    cuda_graph_safe = True  # device arithmetic only: see WeightingStrategy.cuda_graph_safe

    def __init__(self, tasks: Sequence[str], *, weights: Mapping[str, float] | Sequence[float] | None = None) -> None:
        super().__init__(tasks)
        self.raw_weights = self._task_mapping(weights, "weights", default=1.0)
        self.task_weights = normalised_weights(self.raw_weights)

    def current_weights(self) -> dict[str, float]:
        return dict(self.task_weights)

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {t: self.constant(loss, self.task_weights[t]) for t, loss in losses.items()}
