"""ConFIG, conflict-free updates (Liu, Chu, Thuerey, "ConFIG: Towards Conflict-free Training of Physics
Informed Neural Networks", ICLR 2025, Eq. 2; an aggregator of TorchJD).

With ĝ_i = g_i/‖g_i‖ the unit task gradients (rows of Û = D⁻¹J, D = diag ‖g_i‖):

    v = Û⁺ 1,   v̂ = v/‖v‖,   d = (Σ_i g_i·v̂) v̂

v is the direction with the same cosine to every task gradient (the least-squares one when the
tasks outnumber the directions), and d has the length of the summed projections on it. All of it
lives on the T × T Gramian G = J Jᵀ: since Û⁺ = Ûᵀ(ÛÛᵀ)⁺ and ÛÛᵀ = D⁻¹GD⁻¹ = Ĝ,

    v = Jᵀa,  a = D⁻¹ Ĝ⁺ 1,   ‖v‖² = aᵀGa,   Σ_i g_i·v = 1ᵀGa,   d = wᵀJ with w = (1ᵀGa / aᵀGa) a.

A zero task gradient has a zero unit vector (1/0 read as 0). Solved on the host in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register


def config_weights(gramian: Tensor) -> Tensor:
    """The T weights of ConFIG's d = wᵀJ, from the Gramian G = J Jᵀ (module docstring)."""
    g = gramian.detach().to("cpu", torch.float64)
    norms = g.diagonal().clamp_min(0).sqrt()
    inverse = torch.where(norms > 0, 1.0 / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    unit_gram = inverse[:, None] * g * inverse[None, :]
    a = inverse * (torch.linalg.pinv(unit_gram, hermitian=True) @ torch.ones_like(norms))
    squared = a @ g @ a
    w = (g @ a).sum() / squared * a if squared > 0 else torch.zeros_like(a)
    return w.to(device=gramian.device, dtype=gramian.dtype)


@register("config", title="ConFIG")
class ConFIGWeighting(GramianAggregation):
    """ConFIG: the direction equally aligned with every unit task gradient, scaled by their summed
    projections (Liu et al. 2025)."""

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return config_weights(gramian)
