"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, "Independent Component Alignment for
Multi-Task Learning", CVPR 2023).

The task gradients are made orthogonal and of equal norm, their condition number brought to 1,
before they are combined. With the Gramian G = J Jᵀ = V Λ Vᵀ (eigenvalues λ_1 ≥ … ≥ λ_r > tol of
its rank r, tol = λ_1 · T · ε_machine),

    B = √λ_r · V_r Λ_r^{-1/2} V_rᵀ,     α = B w,     d = αᵀ J

with preference weights w = 1/T (TorchJD's default; the paper's Algorithm 1). ``scale_mode``
picks the scale √λ: the smallest eigenvalue (``min``, the paper's), the ``median`` or the mean
(``rmse``, the authors' code). No host synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register

SCALE_MODES = ("min", "median", "rmse")


def aligned_mtl_weights(gramian: Tensor, scale_mode: str = "min") -> Tensor:
    """α = B·(1/T) with the balance transformation B of the Gramian."""
    t = gramian.shape[0]
    lam, vec = torch.linalg.eigh(gramian)  # ascending
    tol = lam.max() * t * torch.finfo(gramian.dtype).eps
    kept = lam > tol
    inv_sqrt = torch.where(kept, 1.0 / lam.clamp_min(torch.finfo(gramian.dtype).tiny).sqrt(), torch.zeros_like(lam))
    if scale_mode == "min":
        scale = torch.where(kept, lam, torch.full_like(lam, float("inf"))).min()
    elif scale_mode == "median":
        # torch.median of the kept eigenvalues (the lower of the two middle ones), without a host sync
        ranks = kept.long().cumsum(0) - 1  # position among the kept, ascending
        count = kept.long().sum()
        want = (count - 1) // 2
        scale = torch.where(kept & (ranks == want), lam, torch.zeros_like(lam)).sum()
    else:
        scale = torch.where(kept, lam, torch.zeros_like(lam)).sum() / kept.sum().clamp_min(1)
    balance = scale.clamp_min(0).sqrt() * (vec * inv_sqrt) @ vec.T
    balance = torch.where(kept.any(), balance, torch.eye(t, dtype=gramian.dtype, device=gramian.device))
    return balance @ torch.full((t,), 1.0 / t, dtype=gramian.dtype, device=gramian.device)


@register("aligned_mtl", title="Aligned-MTL")
class AlignedMTLWeighting(GramianAggregation):
    """Aligned-MTL: combine the task gradients after aligning their principal components (Senushkin et al. 2023)."""

    def __init__(self, tasks: Sequence[str], *, scale_mode: str = "min") -> None:
        super().__init__(tasks)
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"option 'scale_mode' must be one of {SCALE_MODES}, got {scale_mode!r}")
        self.scale_mode = scale_mode

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return aligned_mtl_weights(gramian, self.scale_mode)
