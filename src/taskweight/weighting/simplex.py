"""The Euclidean projection onto the probability simplex, shared by the strategies that step weights on it
(MoCo's λ, SDMGrad's w).

    Π_Δ(v) = argmin_{λ ≥ 0, Σλ = 1} ‖λ − v‖ = max(v − θ, 0)

With u = v sorted in decreasing order, the support is the first ρ entries, where
u_j − (Σ_{i≤j} u_i − 1)/j > 0 (a prefix, ρ ≥ 1), and θ = (Σ_{i≤ρ} u_i − 1)/ρ (Held, Wolfe & Crowder,
"Validation of subgradient optimization", Math. Programming 6, 1974). Computed on the tensor's
device without a host synchronisation.
"""

from __future__ import annotations

import torch
from torch import Tensor


def project_onto_simplex(v: Tensor) -> Tensor:
    """Π_Δ(v) for a vector ``v`` (module docstring), in ``v``'s dtype and on its device."""
    u = torch.sort(v, descending=True).values
    shifted = u.cumsum(0) - 1
    k = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    rho = (u - shifted / k > 0).sum()
    theta = shifted.gather(0, (rho - 1).reshape(1)) / rho.to(v.dtype)
    return (v - theta).clamp_min(0)
