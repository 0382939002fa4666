"""DualProj: the mean gradient projected onto the dual cone of the task gradients (Lopez-Paz & Ranzato,
"Gradient Episodic Memory for Continual Learning", NeurIPS 2017, Eq. 11; an aggregator of TorchJD).

    d = π(ḡ),   ḡ = (1/T) Σ_i g_i = Jᵀu with u = 1/T,   π(Jᵀu) = Jᵀv*,   v* = argmin_{v ≥ u} vᵀ G v

so d conflicts with no task (g_j·d ≥ 0 for every j) and equals the mean where the mean conflicts
with none. Where UPGrad projects every g_i and averages, DualProj projects the average once: one
quadratic program on the T × T Gramian instead of T (the same solver, normalisation and
regularisation as :mod:`.upgrad`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from taskweight.weighting.registry import register
from taskweight.weighting.upgrad import DualConeAggregation, dual_cone_weights, projection_gramian


def dualproj_weights(gramian: Tensor, reg_eps: float = 1e-4) -> Tensor:
    """The T weights of d = wᵀJ: w = v*(1/T) on the trace-normalised, regularised Gramian."""
    t = gramian.shape[0]
    w = dual_cone_weights(projection_gramian(gramian, reg_eps), torch.full((t,), 1.0 / t, dtype=torch.float64))
    return w.to(device=gramian.device, dtype=gramian.dtype)


@register("dualproj", title="DualProj")
class DualProjWeighting(DualConeAggregation):
    """DualProj: the mean gradient projected onto the dual cone of the task gradients (GEM, Eq. 11)."""

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return dualproj_weights(gramian, self.reg_eps)
