"""Gradient Vaccine (Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and Improving
Multi-task Optimization in Massively Multilingual Models", ICLR 2021; an aggregator of TorchJD).

PCGrad corrects a pair of task gradients only when they conflict (cosine < 0). GradVac instead
keeps, per ordered pair (i, j), an EMA target φ̂_ij of their cosine and lifts g_i towards g_j
whenever their cosine falls below it. For each task i, with the other tasks j in a random order,
g_i^PC (starting at g_i) is changed as follows:

    φ = cos(g_i^PC, g_j)
    if φ < φ̂_ij:  g_i^PC += ‖g_i^PC‖ (φ̂ √(1−φ²) − φ √(1−φ̂²)) / (‖g_j‖ √(1−φ̂²)) · g_j
    φ̂_ij ← (1−β) φ̂_ij + β φ

The update is d = Σ_i g_i^PC. The targets start at 0: at first GradVac corrects conflicting
pairs only, like PCGrad, but towards a target instead of onto the normal plane. It works on the
T × T Gramian alone: with g_i^PC = Σ_k c_ik g_k, ‖g_i^PC‖² = c_iᵀGc_i and g_i^PC·g_j = (c_iG)_j,
so d = wᵀJ with w = Σ_i c_i. The targets (a T × T buffer) and the order generator travel in the
``state_dict``. A batch that lacks a task leaves that task's targets as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register


def gradvac_weights(
    gramian: Tensor, targets: Tensor, orders: Sequence[Sequence[int]], beta: float, eps: float = 1e-8
) -> tuple[Tensor, Tensor]:
    """(w with d = wᵀJ, the updated targets) for the Gramian G (T × T), the cosine targets φ̂ (T × T)
    and, for each task i, the order in which the others are visited (module docstring)."""
    g = gramian.detach().to("cpu", torch.float64)
    phi_hat = targets.detach().to("cpu", torch.float64).clone()
    t = g.shape[0]
    coefficients = torch.eye(t, dtype=torch.float64)
    norms = g.diagonal().clamp_min(0).sqrt()
    for i in range(t):
        dots = coefficients[i] @ g  # g_i^PC · g_k for every k
        for j in orders[i]:
            norm_i = (dots @ coefficients[i]).clamp_min(0).sqrt()
            phi = dots[j] / (norm_i * norms[j] + eps)
            target = phi_hat[i, j]
            if phi < target:
                lift = norm_i * (target * (1 - phi**2).clamp_min(0).sqrt() - phi * (1 - target**2).clamp_min(0).sqrt())
                step = lift / (norms[j] * (1 - target**2).clamp_min(0).sqrt() + eps)
                coefficients[i, j] += step
                dots = dots + step * g[j]
            phi_hat[i, j] = (1 - beta) * target + beta * phi
    weights = coefficients.sum(dim=0)
    return weights.to(device=gramian.device, dtype=gramian.dtype), phi_hat


@register("gradvac", title="GradVac")
class GradVacWeighting(GramianAggregation):
    """GradVac: lift each task gradient towards the others up to an EMA target cosine (Wang et al. 2021)."""

    targets: Tensor  # buffer registered in __init__

    def __init__(self, tasks: Sequence[str], *, beta: float = 0.5, seed: int = 0) -> None:
        super().__init__(tasks)
        if not 0 <= beta <= 1:
            raise ValueError(f"option 'beta' must lie in [0, 1], got {beta}")
        self.beta = float(beta)
        self.register_buffer("targets", torch.zeros(len(self.tasks), len(self.tasks)))
        self.seed_draws(seed)

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        rows = [self.tasks.index(t) for t in self.present]
        index = torch.tensor(rows)
        orders = []
        for i in range(len(rows)):
            others = [j for j in range(len(rows)) if j != i]
            orders.append([others[k] for k in torch.randperm(len(others), generator=self.generator).tolist()])
        weights, updated = gradvac_weights(gramian, self.targets[index][:, index], orders, self.beta)
        self.targets[index[:, None], index[None, :]] = updated.to(self.targets)
        return weights
