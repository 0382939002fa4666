"""IMTL-G, the gradient-balance half of Impartial Multi-Task Learning (Liu, Li, Kuang, Xue, Chen, Yang,
Liao & Zhang, "Towards Impartial Multi-task Learning", ICLR 2021).

The combined shared gradient g = Σ_τ α_τ g_τ (Σ α = 1) has *equal projections* onto every
task's unit gradient u_τ = g_τ/‖g_τ‖: g·u_τ is the same for all τ. With G = J Jᵀ and
d_τ = ‖g_τ‖ = √G_ττ that is G α ∝ d, so

    α = G⁺ d / 1ᵀ G⁺ d

which for linearly independent gradients equals the paper's closed form
α_{2..T} = g_1 Uᵀ (D Uᵀ)⁻¹, α_1 = 1 − Σ α_{2..T} (D rows g_1 − g_τ, U rows u_1 − u_τ), and
with the pseudo-inverse stays defined for dependent ones (TorchJD's generalisation). α = 0
when 1ᵀG⁺d vanishes. Solved on the trace-normalised Gramian (α is invariant to the scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register


def imtl_g_weights(gramian: Tensor) -> Tensor:
    """α = G⁺d / 1ᵀG⁺d, d = √diag G (0 where the sum vanishes); no host synchronisation."""
    trace = gramian.diagonal().sum()
    g = gramian / torch.where(trace > 0, trace, torch.ones_like(trace))
    d = g.diagonal().clamp_min(0).sqrt()
    v = torch.linalg.pinv(g) @ d
    total = v.sum()
    return torch.where(total.abs() < 1e-12, torch.zeros_like(v), v / torch.where(total == 0, 1.0, total))


@register("imtl_g", title="IMTL-G")
class IMTLGWeighting(GramianAggregation):
    """IMTL-G: the combination of task gradients with equal projections on every unit gradient (Liu et al. 2021)."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return imtl_g_weights(gramian)
