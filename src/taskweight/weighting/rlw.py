"""Random Loss Weighting (Lin, Ye, Xu, Cao, Xu & Zhang, "Reasonable Effectiveness of Random Weighting:
A Litmus Test for Multi-Task Learning", TMLR 2022).

    λ ~ N(0, I_T) drawn afresh every step,    w = softmax(λ)        (Σ_τ w_τ = 1)

the RLW variant the paper recommends (normal λ, softmax normalisation; LibMTL's ``RLW``). The
draws come from the strategy's own seeded generator, whose state travels in the ``state_dict``,
so a resumed run draws the same weights. T numbers are drawn every step whatever the tasks
present; on a batch with some tasks missing the softmax runs over the tasks present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("rlw", title="RLW")
class RLWWeighting(LossWeighting):
    """RLW: w = softmax(λ), λ ~ N(0, I) drawn every step from a seeded generator (Lin et al. 2022)."""

    def __init__(self, tasks: Sequence[str], *, seed: int = 0) -> None:
        super().__init__(tasks)
        self.seed_draws(seed)
        self._last: dict[str, float | Tensor] = {t: 1.0 / len(self.tasks) for t in self.tasks}

    def current_weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in self._last.items()}

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        draw = torch.randn(len(self.tasks), generator=self.generator, dtype=torch.float64)
        present = [i for i, t in enumerate(self.tasks) if t in losses]
        first = losses[self.tasks[present[0]]]
        w = torch.softmax(draw[present], dim=0).to(device=first.device, dtype=first.dtype, non_blocking=True)
        used = {self.tasks[i]: w[k] for k, i in enumerate(present)}
        self._last.update(used)
        return used
