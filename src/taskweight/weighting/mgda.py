"""MGDA, the multiple-gradient descent algorithm (Désidéri 2012; Sener & Koltun, NeurIPS 2018).

Not one of the paper's nine strategies: a second proof that gradient manipulation fits the
``backward`` contract. With g_τ = ∇_shared L_τ (optionally normalised, see below), find the
minimum-norm point of their convex hull,

    min_α ‖Σ_τ α_τ g_τ‖²   s.t. α_τ ≥ 0, Σ α_τ = 1,

in closed form for two tasks, α_1 = clip(((g_2 − g_1)·g_2) / ‖g_1 − g_2‖², 0, 1), and by
Frank-Wolfe for T > 2. The closed form is device arithmetic only, so with two tasks a CUDA graph
can replay the step; Frank-Wolfe decides on the host when to stop. The shared parameters
receive Σ_τ α_τ ∇_shared L_τ (un-normalised gradients, as in Sener & Koltun's code) and the
task-specific parameters ∇L_τ.

Normalisation of g_τ before solving (``normalization``): ``none``; ``l2`` (g/‖g‖);
``loss`` (g/L_τ); ``loss+`` (g/(L_τ‖g‖)), Sener & Koltun's choice and our default: it makes
α independent of the two losses' very different scales.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def _line_search(aa: Tensor, ab: Tensor, bb: Tensor) -> Tensor:
    """γ ∈ [0, 1] minimising ‖γa + (1−γ)b‖² given the dot products a·a, a·b, b·b."""
    denom = aa + bb - 2 * ab
    gamma = ((bb - ab) / denom.clamp_min(1e-20)).clamp(0.0, 1.0)
    return torch.where(denom <= 1e-20, torch.full_like(gamma, 0.5), gamma)  # no host sync


def min_norm_coefficients(gram: Tensor, max_iter: int = 250, tol: float = 1e-6) -> Tensor:
    """α on the simplex minimising αᵀ M α for the Gram matrix M = G Gᵀ (T × T).

    T = 2: closed form. T > 2: Frank-Wolfe started from the best pair's solution; each step
    moves towards the vertex e_k with k = argmin (Mα)_k by the exact line search.
    """
    t = gram.shape[0]
    if t == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    if t == 2:
        gamma = _line_search(gram[0, 0], gram[0, 1], gram[1, 1])
        return torch.stack([gamma, 1 - gamma])
    best, alpha = None, None
    for i in range(t):
        for j in range(i + 1, t):
            gamma = _line_search(gram[i, i], gram[i, j], gram[j, j])
            cost = gamma**2 * gram[i, i] + 2 * gamma * (1 - gamma) * gram[i, j] + (1 - gamma) ** 2 * gram[j, j]
            if best is None or cost < best:
                best = cost
                alpha = torch.zeros(t, dtype=gram.dtype, device=gram.device)
                alpha[i], alpha[j] = gamma, 1 - gamma
    assert alpha is not None
    for _ in range(max_iter):
        k = int(torch.argmin(gram @ alpha))
        aa = alpha @ gram @ alpha
        ab = alpha @ gram[:, k]
        bb = gram[k, k]
        gamma = _line_search(aa, ab, bb)
        new = gamma * alpha
        new[k] += 1 - gamma
        if (new - alpha).abs().sum() < tol:
            alpha = new
            break
        alpha = new
    return alpha


@register("mgda", title="MGDA")
class MGDAWeighting(GramianAggregation):
    """MGDA: the min-norm convex combination of the task gradients on the shared layers (Sener & Koltun 2018)."""

    def __init__(self, tasks: Sequence[str], *, normalization: str = "loss+", max_iter: int = 250) -> None:
        super().__init__(tasks)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"option 'normalization' must be one of {NORMALIZATIONS}, got {normalization!r}")
        if int(max_iter) < 1:
            raise ValueError(f"option 'max_iter' must be an integer >= 1, got {max_iter}")
        self.normalization = normalization
        self.max_iter = int(max_iter)
        self._last = {t: 1.0 / len(self.tasks) for t in self.tasks}
        self.cuda_graph_safe = len(self.tasks) <= 2  # the closed form: no host-side loop

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        """α minimising ‖Σ α_τ ĝ_τ‖² with ĝ_τ = g_τ/n_τ normalised: the Gramian of ĝ is G/(n nᵀ)."""
        if self.normalization == "none":
            scale = torch.ones_like(losses)
        else:
            norms = gramian.diagonal().clamp_min(0).sqrt().clamp_min(1e-12)
            scale = {"l2": norms, "loss": losses, "loss+": losses * norms}[self.normalization]
        return min_norm_coefficients(gramian / (scale[:, None] * scale[None, :]), self.max_iter)
