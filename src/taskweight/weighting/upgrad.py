"""UPGrad, unconflicting projection of gradients (Quinton & Rey, "Jacobian Descent for Multi-Objective
Optimization", arXiv 2406.16232, 2024; the aggregator of TorchJD).

Each task gradient g_i is projected onto the dual cone {x : g_j·x ≥ 0 ∀j} of all the task
gradients, and the projections are averaged:

    d = (1/T) Σ_i π(g_i),    π(Jᵀu) = Jᵀv*,    v* = argmin_{v ≥ u} vᵀ G v     (G = J Jᵀ, u = e_i)

so d conflicts with no task (g_j·d ≥ 0 for every j) and, where the gradients do not conflict,
d is their mean. The T quadratic programs live on the T × T Gramian, which is normalised by its
trace and regularised by ``reg_eps``·I first (TorchJD's defaults: norm, then 1e-4), and each is
solved exactly by an active-set method for non-negative least squares (Lawson & Hanson 1974)
on the host, in float64: a T × T matrix crosses to the host once per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register


def nonnegative_quadratic(gram: Tensor, linear: Tensor, max_iter: int = 500, tol: float = 1e-12) -> Tensor:
    """x ≥ 0 minimising ½ xᵀ G x + bᵀx for a positive-definite G (T × T): Lawson-Hanson active set, exact."""
    n = len(linear)
    x = torch.zeros_like(linear)
    free = torch.zeros(n, dtype=torch.bool)
    scale = float(gram.diagonal().max()) * tol + tol
    for _ in range(max_iter):
        w = -(gram @ x + linear)  # −∇: positive entries would lower the objective if raised
        candidates = torch.where(~free & (w > scale))[0]
        if len(candidates) == 0:
            break
        free[candidates[torch.argmax(w[candidates])]] = True
        while True:
            idx = torch.where(free)[0]
            s = torch.zeros_like(x)
            s[idx] = torch.linalg.solve(gram[idx][:, idx], -linear[idx])
            if bool((s[idx] > 0).all()):
                break
            blocked = idx[s[idx] <= 0]
            alpha = torch.min(x[blocked] / (x[blocked] - s[blocked]))
            x = x + alpha * (s - x)
            free &= x > scale
            x[~free] = 0.0
        x = s
    return x


def dual_cone_weights(gram: Tensor, u: Tensor) -> Tensor:
    """v* = argmin_{v ≥ u} vᵀGv (then π(Jᵀu) = Jᵀv*): v = u + x, x ≥ 0 minimising ½xᵀGx + (Gu)ᵀx."""
    return u + nonnegative_quadratic(gram, gram @ u)


def projection_gramian(gramian: Tensor, reg_eps: float) -> Tensor:
    """The Gramian the dual-cone programs solve on: divided by its trace, plus ``reg_eps``·I, in float64
    on the host (TorchJD's default normalisation and regularisation)."""
    t = gramian.shape[0]
    g = gramian.detach().to("cpu", torch.float64)
    trace = float(g.diagonal().sum())
    return (g / trace if trace > 0 else torch.zeros_like(g)) + reg_eps * torch.eye(t, dtype=torch.float64)


def upgrad_weights(gramian: Tensor, reg_eps: float = 1e-4) -> Tensor:
    """The T weights of d = wᵀJ: w = (1/T) Σ_i v*(e_i) on the trace-normalised, regularised Gramian."""
    t = gramian.shape[0]
    g = projection_gramian(gramian, reg_eps)
    eye = torch.eye(t, dtype=torch.float64) / t
    w = torch.stack([dual_cone_weights(g, eye[i]) for i in range(t)]).sum(dim=0)
    return w.to(device=gramian.device, dtype=gramian.dtype)


class DualConeAggregation(GramianAggregation):
    """A combination built from projections onto the dual cone of the task gradients (UPGrad,
    DualProj); ``reg_eps`` regularises the trace-normalised Gramian (:func:`projection_gramian`)."""

    def __init__(self, tasks: Sequence[str], *, reg_eps: float = 1e-4) -> None:
        super().__init__(tasks)
        if not 0 <= reg_eps < 1:
            raise ValueError(f"option 'reg_eps' must lie in [0, 1), got {reg_eps}")
        self.reg_eps = float(reg_eps)


@register("upgrad", title="UPGrad")
class UPGradWeighting(DualConeAggregation):
    """UPGrad: the mean of the task gradients each projected onto the dual cone of all (Quinton & Rey 2024)."""

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return upgrad_weights(gramian, self.reg_eps)
