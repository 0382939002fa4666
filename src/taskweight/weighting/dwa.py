"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019).

    r_τ(e−1) = L̄_τ(e−1) / L̄_τ(e−2),     w_τ(e) = T · exp(r_τ(e−1)/T_temp) / Σ_j exp(r_j(e−1)/T_temp)

with L̄_τ(e) the mean training loss of task τ over epoch e and the temperature T_temp = 2
(the paper's value). w_τ = 1 during the first two epochs, when there is no ratio yet; Σ_τ w_τ = T.
The means are accumulated on the device (no host synchronisation); an epoch in which some
task was never labelled leaves the weights and the loss history as they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("dwa", title="DWA")
class DWAWeighting(LossWeighting):
    """DWA: w_τ = T·softmax(r/T_temp)_τ, r_τ = ratio of the last two epochs' mean losses (Liu et al. 2019)."""

    loss_sums: Tensor
    history: Tensor
    task_weights: Tensor

    def __init__(self, tasks: Sequence[str], *, temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if not temperature > 0:
            raise ValueError(f"option 'temperature' must be > 0, got {temperature}")
        self.temperature = float(temperature)
        n = len(self.tasks)
        self.register_buffer("loss_sums", torch.zeros(n))
        self.register_buffer("history", torch.full((2, n), float("nan")))  # mean losses of epochs e−2, e−1
        self.register_buffer("task_weights", torch.ones(n))
        self.counts = [0] * n
        self.epochs_seen = 0

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.task_weights.tolist(), strict=True))

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        for i, task in enumerate(self.tasks):
            if task in losses:
                self.loss_sums[i] += losses[task].detach().to(self.loss_sums.dtype)
                self.counts[i] += 1
        return {t: self.task_weights[i].to(losses[t].dtype) for i, t in enumerate(self.tasks) if t in losses}

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        if all(self.counts):
            means = self.loss_sums / torch.tensor(self.counts, dtype=self.loss_sums.dtype, device=self.loss_sums.device)
            self.history.copy_(torch.stack([self.history[1], means.to(self.history)]))
            self.epochs_seen += 1
            if self.epochs_seen >= 2:
                self.task_weights.copy_(dwa_weights(self.history[1] / self.history[0], self.temperature))
        self.loss_sums.zero_()
        self.counts = [0] * len(self.tasks)

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "counts": list(self.counts), "epochs_seen": self.epochs_seen}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.counts = list(state.get("counts", self.counts))
        self.epochs_seen = int(state.get("epochs_seen", self.epochs_seen))


def dwa_weights(ratios: Tensor, temperature: float) -> Tensor:
    """T · softmax(r / T_temp) for the T loss ratios r."""
    return len(ratios) * torch.softmax(ratios / temperature, dim=0)
