"""Nash-MTL, multi-task learning as a bargaining game (Navon, Shamsian, Achituve, Maron, Kawaguchi,
Chechik & Fetaya, "Multi-Task Learning as a Bargaining Game", ICML 2022, §3 and Algorithm 1; an
aggregator of TorchJD).

The tasks bargain over the update d = αᵀJ inside a ball; the Nash bargaining solution maximises
Σ_i log(g_i·d), and its optimality condition on the Gramian G = J Jᵀ is

    G α = 1/α   (elementwise: α_i (Gα)_i = 1),   α > 0

so every task gets the same share α_i (g_i·d) = 1 and ‖αᵀJ‖² = αᵀGα = T. This is FairGrad's
condition G w = w^{−1/a} at a = 1 (proportional fairness), solved exactly by
:func:`.fairgrad.fairgrad_weights` (Newton's method on log α, float64 on the host), on the Gramian
rescaled to unit diagonal (the condition is invariant to a diagonal rescaling, α = Dα'). The authors'
code and TorchJD solve it approximately with a sequence of at most 20 convex programs (cvxpy/ECOS)
linearising the concave part of the objective; the exact solution is the point they converge to.

The practical parts of Algorithm 1's implementation are options:

- ``update_weights_every`` (k): α is solved every k-th aggregation and reused in between, counted
  in aggregation calls as the authors' code and TorchJD count them. The last α (one entry per
  task) and the call counter are buffers, so they travel in the ``state_dict``. A batch whose
  tasks differ from those of the last solve is solved afresh (an α solved for other tasks is not
  their bargaining solution); that solve replaces the stored α of the tasks present only.
- ``max_norm``: if ‖αᵀJ‖ = √(αᵀGα) exceeds it, α is scaled by max_norm/‖αᵀJ‖ (the authors'
  default 1.0; 0 disables), on every step, with the Gramian of that step. Since ‖αᵀJ‖ = √T at
  the solution, with T ≥ 2 and max_norm = 1 every update has norm exactly 1.

The weights reported are the α used (after clipping). A task whose gradient is exactly zero gets
α = 0 (it cannot bargain). Where the problem has no solution otherwise (two exactly opposite
gradients) α diverges, as FairGrad's does, while αᵀJ stays finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taskweight.weighting.base import GramianAggregation
from taskweight.weighting.fairgrad import fairgrad_weights
from taskweight.weighting.registry import register


def nash_mtl_weights(gramian: Tensor) -> Tensor:
    """The α > 0 with G α = 1/α (module docstring), solved on the correlation matrix D G D, D = diag(1/‖g_i‖):
    α_i (Gα)_i = 1 is invariant to that rescaling (α = D α'), which keeps Newton's stopping rule meaningful
    for every task when the gradients' norms differ by orders of magnitude. A task with a zero gradient
    takes no part (its share g_i·d is 0 whatever d): α_i = 0."""
    g = gramian.detach().to("cpu", torch.float64)
    norms = g.diagonal().clamp_min(0).sqrt()
    alpha = torch.zeros(len(norms), dtype=torch.float64)
    rows = torch.where(norms > 0)[0]
    if len(rows):
        scale = norms[rows].reciprocal()
        alpha[rows] = scale * fairgrad_weights(scale[:, None] * g[rows][:, rows] * scale[None, :], 1.0)
    return alpha.to(device=gramian.device, dtype=gramian.dtype)


def clip_norm(weights: Tensor, gramian: Tensor, max_norm: float) -> Tensor:
    """α scaled by max_norm/‖αᵀJ‖ where ‖αᵀJ‖ = √(αᵀGα) exceeds ``max_norm`` > 0; α unchanged for 0."""
    if max_norm <= 0:
        return weights
    norm = (weights @ gramian @ weights).clamp_min(0).sqrt()
    return torch.where(norm > max_norm, weights * (max_norm / norm), weights)


@register("nash_mtl", title="Nash-MTL")
class NashMTLWeighting(GramianAggregation):
    """Nash-MTL: the Nash bargaining solution G α = 1/α, solved exactly (Navon et al. 2022)."""

    alpha: Tensor  # buffers registered in __init__
    solved_for: Tensor
    calls: Tensor

    def __init__(self, tasks: Sequence[str], *, update_weights_every: int = 1, max_norm: float = 1.0) -> None:
        super().__init__(tasks)
        if int(update_weights_every) != update_weights_every or update_weights_every < 1:
            raise ValueError(f"option 'update_weights_every' must be an integer >= 1, got {update_weights_every}")
        if max_norm < 0:
            raise ValueError(f"option 'max_norm' must be >= 0, got {max_norm}")
        self.update_weights_every = int(update_weights_every)
        self.max_norm = float(max_norm)
        self.register_buffer("alpha", torch.ones(len(self.tasks)))
        """The last α solved for each task (before clipping), reused between updates."""
        self.register_buffer("solved_for", torch.zeros(len(self.tasks), dtype=torch.bool))
        """The tasks of the last solve."""
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        """Aggregation calls so far: α is solved on calls 0, k, 2k, …"""

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        rows = torch.tensor([self.tasks.index(t) for t in self.present])
        present = torch.zeros(len(self.tasks), dtype=torch.bool)
        present[rows] = True
        due = int(self.calls) % self.update_weights_every == 0
        if due or not torch.equal(present, self.solved_for.cpu()):
            self.alpha[rows.to(self.alpha.device)] = nash_mtl_weights(gramian).to(self.alpha)
            self.solved_for.copy_(present)
        self.calls += 1
        alpha = self.alpha[rows.to(self.alpha.device)].to(gramian)
        return clip_norm(alpha, gramian, self.max_norm)
