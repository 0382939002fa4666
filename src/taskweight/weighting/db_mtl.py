"""DB-MTL, Dual-Balancing Multi-Task Learning (Lin, Jiang, Ye, Zhang, Chen, Chen, Liu & Kwok, "Dual-Balancing
for Multi-Task Learning", arXiv:2308.12029, 2023, Algorithm 1; LibMTL's ``DB_MTL``).

Two balancings. Loss scale: each task contributes the gradient of log L_τ, g̃_τ = ∇L_τ / (L_τ + ε)
(ε = 1e-8), so that a task's loss scale no longer sets its gradient's. Gradient magnitude: each
g̃_τ is tracked by an exponential moving average, and every tracked gradient is rescaled to the
largest one's norm:

    ĝ_τ ← g̃_τ + β_t (ĝ_τ − g̃_τ),     β_t = β / t^σ   (ĝ_τ = 0 before the first step)
    α_τ = max_k ‖ĝ_k‖ / (‖ĝ_τ‖ + ε),   d = Σ_τ α_τ ĝ_τ

with t the number of updates of ĝ_τ (1 at the first). The shared parameters receive d, the
task-specific ones ∇L_τ. The reported weight of task τ is the coefficient its current raw gradient
∇L_τ receives in d, w_τ = α_τ (1 − β_t) / (L_τ + ε): d = Σ_τ w_τ ∇L_τ + Σ_τ α_τ β_t ĝ_τ(previous).

Defaults β = 0.9, σ = 0 are LibMTL's (``DB_beta``, ``DB_beta_sigma`` in its ``config.py``): a
constant EMA rate, with no bias correction, as there. Differences from LibMTL, which needs every
task in every batch: a batch that lacks a task leaves that task's ĝ_τ and t as they were, and the
max and the sum run over the tasks present (with fewer than two present the base back-propagates
Σ L_τ and ĝ is not updated). Under fp16 loss scaling the tracked gradients are kept unscaled
(the Jacobian is divided by :attr:`gradient_scale`, d multiplied back), so a change of the scale
does not mix units in the average. ĝ (T × P, P known at the first step) is a lazily shaped buffer
(:mod:`.lazy_buffer`); ĝ and the update counts travel in the ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GradientAggregation
from taskweight.weighting.lazy_buffer import lazy_buffer, register_lazy_buffer
from taskweight.weighting.registry import register

EPS = 1e-8


@register("db_mtl", title="DB-MTL")
class DBMTLWeighting(GradientAggregation):
    """DB-MTL: EMA gradients of log L_τ, each rescaled to the largest one's norm (Lin et al. 2023)."""

    representation_gradients = False  # ĝ is kept per shared coordinate across steps
    tracked: Tensor  # ĝ, T × P (lazy buffer)
    updates: Tensor  # t per task (int64 buffer)

    def __init__(self, tasks: Sequence[str], *, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        super().__init__(tasks)
        if not 0 <= beta < 1:
            raise ValueError(f"option 'beta' must lie in [0, 1), got {beta}")
        if not beta_sigma >= 0:
            raise ValueError(f"option 'beta_sigma' must be >= 0, got {beta_sigma}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        register_lazy_buffer(self, "tracked", len(self.tasks))
        self.register_buffer("updates", torch.zeros(len(self.tasks), dtype=torch.long))

    def aggregate(self, jacobian: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """d = Σ_τ α_τ ĝ_τ over the tasks present; weights α_τ (1 − β_t) / (L_τ + ε)."""
        tracked = lazy_buffer(self, "tracked", jacobian.shape[1])
        rows = torch.tensor([self.tasks.index(t) for t in self.present], device=tracked.device)
        values = losses.to(tracked.dtype)
        log_grads = (jacobian / self.gradient_scale).to(tracked.dtype) / (values + EPS)[:, None]
        self.updates[rows] += 1
        beta_t = self.beta / self.updates[rows].to(tracked.dtype) ** self.beta_sigma
        updated = log_grads + beta_t[:, None] * (tracked[rows] - log_grads)
        tracked[rows] = updated
        norms = updated.norm(dim=1)
        alpha = norms.max() / (norms + EPS)
        combined = (alpha @ updated) * self.gradient_scale
        weights = alpha * (1 - beta_t) / (values + EPS)
        return combined.to(jacobian.dtype), weights.to(jacobian.dtype)
