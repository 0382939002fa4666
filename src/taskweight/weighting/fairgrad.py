"""FairGrad, α-fair resource allocation between tasks (Ban & Ji, "Fair Resource Allocation in
Multi-Task Learning", ICML 2024, Eq. 4 and Algorithm 1; an aggregator of TorchJD).

The update d = wᵀJ maximises the α-fair utility Σ_i u_α(g_i·d) within a trust region, whose
optimality condition on the T × T Gramian G = J Jᵀ is

    G w = w^{−1/α},   w > 0

(α → 0: equal weights, linear scalarisation; α = 1: proportional fairness; α → ∞: max-min,
MGDA-like). The T equations are solved here by Newton's method on z = log w, where
F(z) = G e^z − e^{−z/α} has the positive-definite Jacobian G·diag(e^z) + diag(e^{−z/α})/α,
with a backtracking line search on ‖F‖, in float64 on the host. The iteration starts from the
uniform 1/T and stops when ‖F‖ is below ``tol`` relative to the scale of G.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register


def fairgrad_weights(gramian: Tensor, alpha: float, max_iter: int = 100, tol: float = 1e-13) -> Tensor:
    """The w > 0 with G w = w^{−1/α} (module docstring); the uniform 1/T for α = 0."""
    t = gramian.shape[0]
    if alpha == 0:
        return torch.full((t,), 1.0 / t, dtype=gramian.dtype, device=gramian.device)
    g = gramian.detach().to("cpu", torch.float64)
    z = torch.full((t,), -torch.log(torch.tensor(float(t), dtype=torch.float64)).item(), dtype=torch.float64)

    def residual(z: Tensor) -> Tensor:
        return g @ z.exp() - (-z / alpha).exp()

    f = residual(z)
    scale = max(float(g.diagonal().max()), 1e-300)
    for _ in range(max_iter):
        if float(f.norm()) <= tol * scale * max(1.0, float(z.exp().norm())):
            break
        jacobian = g * z.exp()[None, :] + torch.diag((-z / alpha).exp() / alpha)
        step = torch.linalg.solve(jacobian, -f)
        size = 1.0
        while size > 1e-8:
            candidate = residual(z + size * step)
            if float(candidate.norm()) < float(f.norm()):
                break
            size /= 2
        z = z + size * step
        f = residual(z)
    return z.exp().to(device=gramian.device, dtype=gramian.dtype)


@register("fairgrad", title="FairGrad")
class FairGradWeighting(GramianAggregation):
    """FairGrad: the α-fair update, G w = w^{−1/α} (Ban & Ji 2024)."""

    def __init__(self, tasks: Sequence[str], *, alpha: float = 1.0) -> None:
        super().__init__(tasks)
        if alpha < 0:
            raise ValueError(f"option 'alpha' must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return fairgrad_weights(gramian, self.alpha)
