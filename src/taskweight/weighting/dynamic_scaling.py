"""Dynamic loss scaling from the previous epoch (paper §IV-A3, Eq. 5–6).

    w_det = 1,   w_seg(e) = mean_{epoch e−1} L_det / mean_{epoch e−1} L_seg      (Eq. 5–6)

Equal weights during the first epoch. For T > 2 tasks every task is scaled relative to the
reference task (the first by default): w_τ(e) = mean L_ref / mean L_τ over epoch e−1.
The means are those of the unweighted losses seen during training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("dynamic_scaling", title="Dynamic task loss scaling")
class DynamicScalingWeighting(LossWeighting):
    """w_τ = previous epoch's mean L_ref / mean L_τ, equal weights in epoch 1 (Eq. 5–6)."""

    def __init__(self, tasks: Sequence[str], *, reference: str | None = None) -> None:
        super().__init__(tasks)
        self.reference = reference if reference is not None else self.tasks[0]
        if self.reference not in self.tasks:
            raise ValueError(f"option 'reference': unknown task {self.reference!r}; tasks are {list(self.tasks)}")
        self.task_weights = {t: 1.0 for t in self.tasks}
        self.sums: dict[str, float | Tensor] = {t: 0.0 for t in self.tasks}
        self.counts = {t: 0 for t in self.tasks}

    def current_weights(self) -> dict[str, float]:
        return dict(self.task_weights)

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        for task, loss in losses.items():
            self.sums[task] = self.sums[task] + loss.detach()  # stays on the device until the epoch ends
            self.counts[task] += 1
        return {t: self.constant(loss, self.task_weights[t]) for t, loss in losses.items()}

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        if all(self.counts[t] for t in self.tasks):
            means = {t: float(self.sums[t]) / self.counts[t] for t in self.tasks}
            self.task_weights = {t: means[self.reference] / means[t] for t in self.tasks}
        # a task unseen this epoch keeps the previous weights
        self.sums = {t: 0.0 for t in self.tasks}
        self.counts = {t: 0 for t in self.tasks}

    def get_extra_state(self) -> dict[str, Any]:
        sums = {t: float(v) for t, v in self.sums.items()}
        return {**super().get_extra_state(), "weights": self.task_weights, "sums": sums, "counts": self.counts}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.task_weights = dict(state.get("weights", self.task_weights))
        self.sums = dict(state.get("sums", self.sums))
        self.counts = dict(state.get("counts", self.counts))
