"""MoCo, gradient tracking against the bias of stochastic multi-objective steps (Fernando, Shen, Liu,
Chaudhury, Murugesan & Chen, "Mitigating Gradient Bias in Multi-objective Learning: A Provably Convergent
Approach", ICLR 2023, Algorithm 1; LibMTL's ``MoCo``).

MGDA's weights computed from one mini-batch's gradients are a biased estimate of the full-batch ones.
MoCo tracks each task gradient g_τ = ∇_shared L_τ with a moving estimate y_τ and moves the weights
λ by one projected gradient step of the min-norm problem per step:

    y_τ ← y_τ − β_t (y_τ − g_τ),                      β_t = β / t^{σ_β}   (y_τ = 0 before the first step)
    λ ← Π_Δ(λ − γ_t (Y Yᵀ + ρ I) λ),                  γ_t = γ / t^{σ_γ}   (λ = 1/T at first)
    d = Yᵀ λ

with Π_Δ the Euclidean projection onto the simplex {λ ≥ 0, Σ λ = 1} (:mod:`.simplex`)
and Y the T × P matrix of the y_τ. The shared parameters receive d, the task-specific ones ∇L_τ.
The reported weight of task τ is the coefficient its current raw gradient ∇L_τ receives in d,
w_τ = λ_τ β_t (times L_τ / (‖g_τ‖ + ε) under ``normalize_gradients``): d = Σ_τ w_τ ∇L_τ plus the
tracked part of the earlier steps.

Differences from LibMTL. (1) LibMTL replaces the projection by a softmax of λ − γ_t(Y Yᵀ + ρI)λ;
that is not the paper's step (nor the multiplicative-weights one, which would take the softmax of
log λ − …): it pulls λ towards uniform at every step even where the gradient is zero. This
strategy follows the paper. (2) LibMTL rescales each gradient to the norm of its loss first,
g_τ ← L_τ g_τ / (‖g_τ‖ + ε), ε = 1e-8; that keeps γ_t ‖y‖² in a sensible range whatever the
gradients' scale (with raw gradients of norm 100 and γ = 0.1 the step sends λ to a vertex, MoCo
then following a single task), so it is offered as the option ``normalize_gradients``, off by
default (the paper's rule). Defaults β = 0.5, σ_β = 0.5, γ = 0.1, σ_γ = 0.5, ρ = 0 are LibMTL's
(``MoCo_*`` in its ``config.py``).

A batch that lacks a task leaves that task's y_τ, its count t and its λ_τ as they were: the tasks
present take the step on their own simplex, λ_P/m with m = Σ_{τ present} λ_τ (uniform if m = 0),
and give back m times the result, so λ stays on the simplex; β_t counts each task's updates, γ_t
the updates of λ (with every task in every batch both are LibMTL's step count). With fewer than
two tasks present the base back-propagates Σ L_τ and nothing is updated. Under fp16 loss scaling
the tracked gradients are kept unscaled (the Jacobian is divided by :attr:`gradient_scale`, d
multiplied back). Y (T × P, P known at the first step) is a lazily shaped buffer
(:mod:`.lazy_buffer`); Y, λ and the counts travel in the ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GradientAggregation
from taskweight.weighting.lazy_buffer import lazy_buffer, register_lazy_buffer
from taskweight.weighting.registry import register
from taskweight.weighting.simplex import project_onto_simplex

EPS = 1e-8


@register("moco", title="MoCo")
class MoCoWeighting(GradientAggregation):
    """MoCo: tracked task gradients combined by one projected min-norm step per batch (Fernando et al. 2023)."""

    representation_gradients = False  # y is kept per shared coordinate across steps
    tracked: Tensor  # Y, T × P (lazy buffer)
    lambdas: Tensor  # λ, on the simplex
    updates: Tensor  # t of β_t per task (int64 buffer)
    lambda_updates: Tensor  # t of γ_t (0-dim int64 buffer)

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
        normalize_gradients: bool = False,
    ) -> None:
        super().__init__(tasks)
        if not 0 < beta <= 1:
            raise ValueError(f"option 'beta' must lie in (0, 1], got {beta}")
        if not gamma > 0:
            raise ValueError(f"option 'gamma' must be > 0, got {gamma}")
        for option, value in (("beta_sigma", beta_sigma), ("gamma_sigma", gamma_sigma), ("rho", rho)):
            if not value >= 0:
                raise ValueError(f"option {option!r} must be >= 0, got {value}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        self.gamma = float(gamma)
        self.gamma_sigma = float(gamma_sigma)
        self.rho = float(rho)
        self.normalize_gradients = bool(normalize_gradients)
        n = len(self.tasks)
        register_lazy_buffer(self, "tracked", n)
        self.register_buffer("lambdas", torch.full((n,), 1.0 / n))
        self.register_buffer("updates", torch.zeros(n, dtype=torch.long))
        self.register_buffer("lambda_updates", torch.zeros((), dtype=torch.long))

    def aggregate(self, jacobian: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """d = Y_Pᵀ λ_P after the y and λ steps of the tasks present P; weights λ_τ β_t (module docstring)."""
        tracked = lazy_buffer(self, "tracked", jacobian.shape[1])
        rows = torch.tensor([self.tasks.index(t) for t in self.present], device=tracked.device)
        grads = (jacobian / self.gradient_scale).to(tracked.dtype)
        factor = torch.ones_like(losses, dtype=tracked.dtype)
        if self.normalize_gradients:
            factor = losses.to(tracked.dtype) / (grads.norm(dim=1) + EPS)
            grads = grads * factor[:, None]
        self.updates[rows] += 1
        beta_t = self.beta / self.updates[rows].to(tracked.dtype) ** self.beta_sigma
        y = tracked[rows] - beta_t[:, None] * (tracked[rows] - grads)
        tracked[rows] = y
        self.lambda_updates += 1
        gamma_t = self.gamma / self.lambda_updates.to(tracked.dtype) ** self.gamma_sigma
        held = self.lambdas[rows]
        mass = held.sum()
        share = torch.where(mass > 0, held / mass.clamp_min(torch.finfo(held.dtype).tiny), 1.0 / len(rows))
        step = (y @ y.T + self.rho * torch.eye(len(rows), dtype=y.dtype, device=y.device)) @ share
        share = project_onto_simplex(share - gamma_t * step)
        self.lambdas[rows] = share if len(rows) == len(self.tasks) else mass * share  # exactly on the simplex
        combined = (share @ y) * self.gradient_scale
        weights = share * beta_t * factor
        return combined.to(jacobian.dtype), weights.to(jacobian.dtype)
