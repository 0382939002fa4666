"""Asynchronous backpropagation (paper §IV-D, Eq. 10–12).

Each task τ has a normalised weight w̄_τ (as in §IV-C) and an integer frequency ν_τ ≥ 1:

    w_τ(t) = w̄_τ  if t mod ν_τ = 0,  else 0          (Eq. 10–12)

so a task with ν_τ = 3 back-propagates on one step in three. ``t`` counts optimiser steps
by default (``unit="step"``) or epochs (``unit="epoch"``); the paper's text uses both.
``offset`` is ``t`` at the start of the run (default 0): a run that fine-tunes a model
already trained for k epochs can go on counting from k (the meta-learning search does so with
``unit="epoch"``, whose evaluations continue one model's training). A task
whose weight is 0 on a step is left out of the backward pass entirely, so its head receives
no gradient (and the optimiser does not move it); when no task is due, nothing is updated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register
from taskweight.weighting.static import normalised_weights


@register("async", title="Async backprop")
class AsyncWeighting(LossWeighting):
    """Static weights back-propagated only every ν_τ steps or epochs (§IV-D, Eq. 10–12)."""

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        weights: Mapping[str, float] | Sequence[float] | None = None,
        frequencies: Mapping[str, int] | Sequence[int] | None = None,
        unit: str = "step",
        offset: int = 0,
    ) -> None:
        super().__init__(tasks)
        if unit not in ("step", "epoch"):
            raise ValueError(f"option 'unit' must be 'step' or 'epoch', got {unit!r}")
        if offset != int(offset) or offset < 0:
            raise ValueError(f"option 'offset' must be an integer >= 0, got {offset}")
        self.unit = unit
        self.offset = int(offset)
        self.task_weights = normalised_weights(self._task_mapping(weights, "weights", default=1.0))
        freqs = self._task_mapping(frequencies, "frequencies", default=1)
        self.frequencies: dict[str, int] = {}
        for task, value in freqs.items():
            if value != int(value) or value < 1:
                raise ValueError(f"option 'frequencies': {task!r} must be an integer >= 1, got {value}")
            self.frequencies[task] = int(value)

    @property
    def clock(self) -> int:
        """t of Eq. 10: ``offset`` plus the number of steps (or epochs) completed so far."""
        return self.offset + (self.step_count if self.unit == "step" else self.epoch_count)

    def weights_at(self, t: int) -> dict[str, float]:
        """w_τ(t) for every task (Eq. 10–12)."""
        return {task: (self.task_weights[task] if t % self.frequencies[task] == 0 else 0.0) for task in self.tasks}

    def current_weights(self) -> dict[str, float]:
        return dict(self.task_weights)

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        now = self.weights_at(self.clock)
        return {t: self.constant(loss, now[t]) for t, loss in losses.items()}

    def active(self, losses: Mapping[str, Tensor]) -> list[str]:
        """The tasks due on this step: a task weighted 0 is left out of the graph (its head keeps
        ``grad=None``, so the optimiser leaves it untouched)."""
        t = self.clock
        return [task for task in losses if t % self.frequencies[task] == 0]
