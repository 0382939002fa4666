"""SDMGrad, stochastic direction-oriented multi-objective gradient descent (Xiao, Ban & Ji,
"Direction-oriented Multi-objective Learning: Simple and Provable Stochastic Algorithms",
NeurIPS 2023, Algorithm 1; an aggregator of TorchJD).

The update d = (w + λw̃)ᵀJ / (1 + λ) leans the MGDA-like combination w towards the target direction
w̃ᵀJ, w̃ = 1/T (the mean gradient), with strength λ (``lam``). The weights w on the simplex minimise
½‖(w + λw̃)ᵀJ‖², and each step takes ``n_iter`` steps of projected momentum SGD on it, on the
Gramian G = J Jᵀ normalised by the square of the mean task-gradient norm:

    A = G / (mean_i √max(G_ii, 0)² + 1e-8)
    v ← μ v + A (w + λw̃),     w ← Π_Δ(w − lr·v)         (v starts at 0 every step)

where Π_Δ is the Euclidean projection onto the simplex (sort-based, Held, Wolfe & Crowder 1974).
The normalisation (paper §6.1, the authors' code, LibMTL and TorchJD) makes ``lr`` independent of
the gradients' scale. Defaults as TorchJD: ``lr`` 10, momentum 0.5, 20 iterations, λ = 0.3 (the
value of the authors' experiments).

What differs from the paper: Algorithm 1 estimates A = J_ξ J_ξ'ᵀ from two independent mini-batches
and steps along the Jacobian of a third, so that the stochastic estimates are unbiased. The
``backward`` contract sees one batch per step, so A is the Gramian of that batch and d combines its
own Jacobian: the same simplification as LibMTL given one batch (biased, but the method's
deterministic form).

State: w persists between steps (a warm start), as in the authors' code and TorchJD; it is a
buffer with one entry per task, beside a mask of the tasks it was computed for, so both travel in
the ``state_dict``. When the tasks present differ from those, w restarts from the uniform 1/T over
the tasks present (TorchJD resets when the number of rows changes): w lives on the simplex of the
tasks present, and a restriction of another simplex point is not a warm start for it. The inner
loop runs in float64 on the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.registry import register
from taskweight.weighting.simplex import project_onto_simplex


def sdmgrad_weights(
    gramian: Tensor, w: Tensor, lam: float, lr: float, momentum: float, n_iter: int
) -> tuple[Tensor, Tensor]:
    """(the weights (w + λw̃)/(1 + λ) of d, the new w) after ``n_iter`` projected momentum steps from ``w``
    (module docstring); the weights in the Gramian's dtype and device, w in float64 on the host."""
    t = gramian.shape[0]
    g = gramian.detach().to("cpu", torch.float64)
    w = w.detach().to("cpu", torch.float64)
    target = torch.full((t,), 1.0 / t, dtype=torch.float64)
    scale = g.diagonal().clamp_min(0).sqrt().mean()
    a = g / (scale**2 + 1e-8)
    velocity = torch.zeros(t, dtype=torch.float64)
    for _ in range(n_iter):
        velocity = momentum * velocity + a @ (w + lam * target)
        w = project_onto_simplex(w - lr * velocity)
    weights = (w + lam * target) / (1 + lam)
    return weights.to(device=gramian.device, dtype=gramian.dtype), w


@register("sdmgrad", title="SDMGrad")
class SDMGradWeighting(GramianAggregation):
    """SDMGrad: MGDA-like weights pulled towards the mean gradient, by projected momentum SGD (Xiao et al. 2023)."""

    w: Tensor  # buffers registered in __init__
    computed_for: Tensor

    def __init__(
        self, tasks: Sequence[str], *, lam: float = 0.3, lr: float = 10.0, momentum: float = 0.5, n_iter: int = 20
    ) -> None:
        super().__init__(tasks)
        if lam < 0:
            raise ValueError(f"option 'lam' must be >= 0, got {lam}")
        if lr <= 0:
            raise ValueError(f"option 'lr' must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"option 'momentum' must lie in [0, 1), got {momentum}")
        if int(n_iter) != n_iter or n_iter < 1:
            raise ValueError(f"option 'n_iter' must be an integer >= 1, got {n_iter}")
        self.lam = float(lam)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.n_iter = int(n_iter)
        self.register_buffer("w", torch.zeros(len(self.tasks)))
        """The inner weights w of the tasks in ``computed_for`` (0 elsewhere), the next step's warm start."""
        self.register_buffer("computed_for", torch.zeros(len(self.tasks), dtype=torch.bool))

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        rows = torch.tensor([self.tasks.index(t) for t in self.present])
        present = torch.zeros(len(self.tasks), dtype=torch.bool)
        present[rows] = True
        if torch.equal(present, self.computed_for.cpu()):
            start = self.w.cpu()[rows]
        else:
            start = torch.full((len(rows),), 1.0 / len(rows), dtype=torch.float64)
        weights, w = sdmgrad_weights(gramian, start, self.lam, self.lr, self.momentum, self.n_iter)
        self.w.zero_()
        self.w[rows.to(self.w.device)] = w.to(self.w)
        self.computed_for.copy_(present)
        return weights
