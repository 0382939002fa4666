"""Hand-crafted loss-ratio weights (paper §IV-A2, Eq. 3–4).

    w_τ = L_ref(0) / L_τ(0)            (w_ref = 1; the paper's reference is detection)

where L(0) is each task's mean loss over the first N iterations (trained with equal weights),
after which the weights are held constant. The paper's Table I values of w_seg (KITTI 70,
Cityscapes 40, WoodScape 100) are exactly this ratio on each dataset. Known weights can be
given directly with ``weights`` (then nothing is measured).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("handcrafted", title="Handcrafted")
class HandcraftedWeighting(LossWeighting):
    """w_τ = L_ref(0)/L_τ(0), L(0) = mean loss of the first N iterations, then constant (Eq. 3–4)."""

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        iterations: int = 10,
        reference: str | None = None,
        weights: Mapping[str, float] | Sequence[float] | None = None,
    ) -> None:
        super().__init__(tasks)
        if int(iterations) < 1:
            raise ValueError(f"option 'iterations' must be >= 1, got {iterations}")
        self.iterations = int(iterations)
        self.reference = reference if reference is not None else self.tasks[0]
        if self.reference not in self.tasks:
            raise ValueError(f"option 'reference': unknown task {self.reference!r}; tasks are {list(self.tasks)}")
        self.sums = {t: 0.0 for t in self.tasks}
        self.counts = {t: 0 for t in self.tasks}
        self.task_weights: dict[str, float] | None = None
        if weights is not None:
            self.task_weights = self._task_mapping(weights, "weights", default=1.0)

    @property
    def initial_losses(self) -> dict[str, float]:
        """L_τ(0): the mean loss of each task over the iterations measured so far."""
        return {t: self.sums[t] / self.counts[t] for t in self.tasks if self.counts[t]}

    def current_weights(self) -> dict[str, float]:
        return dict(self.task_weights) if self.task_weights is not None else {t: 1.0 for t in self.tasks}

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        current = self.current_weights()
        if self.task_weights is None:
            for task, loss in losses.items():
                if self.counts[task] < self.iterations:
                    self.sums[task] += float(loss.detach())  # a host sync, on the first N steps only
                    self.counts[task] += 1
            if all(self.counts[t] >= self.iterations for t in self.tasks):
                l0 = self.initial_losses
                self.task_weights = {t: l0[self.reference] / l0[t] for t in self.tasks}
        return {t: self.constant(loss, current[t]) for t, loss in losses.items()}

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "sums": self.sums, "counts": self.counts, "weights": self.task_weights}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.sums = dict(state.get("sums", self.sums))
        self.counts = dict(state.get("counts", self.counts))
        self.task_weights = state.get("weights", self.task_weights)
