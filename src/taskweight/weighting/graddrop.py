"""Gradient Sign Dropout (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just Pick a Sign:
Optimizing Deep Multitask Models with Gradient Sign Dropout", NeurIPS 2020, Algorithm 1 lines 10–15;
an aggregator of TorchJD).

Per shared parameter element k, the positive sign purity of the task gradients and a uniform draw
decide which sign survives there:

    P_k = ½ (1 + Σ_i g_ik / Σ_i |g_ik|)          (½ where every g_ik is 0)
    U_k ~ U(0, 1)
    M_ik = [P_k > U_k]·[g_ik > 0] + [P_k < U_k]·[g_ik < 0]
    d = Σ_i (ℓ_i + (1 − ℓ_i) M_i) ⊙ g_i           (leak ℓ_i ∈ [0, 1], 0 by default)

so at each element the gradients of one sign pass and the others are dropped, the sign chosen with
the probability of its share. The paper applies this to the gradients at a shared activation; here
it acts on the per-task gradients of the shared parameters (as the other aggregations do). The
draws come from the strategy's own seeded CPU generator (state in the ``state_dict``). The weight
reported for task i is ⟨kept part of g_i, g_i⟩ / ‖g_i‖², the share of its gradient that passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GradientAggregation
from taskweight.weighting.registry import register


def graddrop_combine(jacobian: Tensor, uniform: Tensor, leak: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(d, the share of each task's gradient kept) for the T × P ``jacobian`` and P ``uniform`` draws."""
    magnitude = jacobian.abs().sum(dim=0)
    purity = torch.where(magnitude > 0, 0.5 * (1 + jacobian.sum(dim=0) / magnitude.clamp_min(1e-30)), 0.5)
    positive = purity > uniform
    negative = purity < uniform
    keep = (positive & (jacobian > 0)) | (negative & (jacobian < 0))
    leak = torch.zeros(len(jacobian), dtype=jacobian.dtype, device=jacobian.device) if leak is None else leak
    factors = leak[:, None] + (1 - leak[:, None]) * keep.to(jacobian.dtype)
    kept = factors * jacobian
    squared = (jacobian * jacobian).sum(dim=1)
    shares = torch.where(squared > 0, (kept * jacobian).sum(dim=1) / squared.clamp_min(1e-30), 1.0)
    return kept.sum(dim=0), shares


@register("graddrop", title="GradDrop")
class GradDropWeighting(GradientAggregation):
    """GradDrop: at each shared parameter, keep the gradients of one sign, drawn by its purity (Chen et al. 2020)."""

    def __init__(self, tasks: Sequence[str], *, leak: float = 0.0, seed: int = 0) -> None:
        super().__init__(tasks)
        if not 0 <= leak <= 1:
            raise ValueError(f"option 'leak' must lie in [0, 1], got {leak}")
        self.leak = float(leak)
        self.seed_draws(seed)

    def aggregate(self, jacobian: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        uniform = torch.rand(jacobian.shape[1], generator=self.generator, dtype=torch.float64)
        uniform = uniform.to(device=jacobian.device, dtype=jacobian.dtype, non_blocking=True)
        leak = torch.full((len(jacobian),), self.leak, dtype=jacobian.dtype, device=jacobian.device)
        return graddrop_combine(jacobian, uniform, leak)
