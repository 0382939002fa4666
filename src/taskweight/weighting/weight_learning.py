"""Learned task weights by plain gradient descent (paper §IV-B, Eq. 8–9).

    L = α L_seg + (1 − α) L_det,   α = sigmoid(w)                 (Eq. 8–9)

w is a learnable scalar updated every mini-batch by the main optimiser together with the
network. For T > 2 tasks the weights are softmax(w_1..w_T) over T learnable logits (for
T = 2 this is the same family: α goes to the second task, 1 − α to the first).

What gradient descent does here: ∂L/∂w = α(1 − α)(L_seg − L_det), so w always moves
towards the task whose loss is currently *smaller*; the weighted loss is minimised by putting
all weight on the easiest task, and α drifts towards 0 or 1 (it only slows down as
α(1 − α) → 0). The paper notes the same degenerate solution; the benchmark records α over
training (``weights.csv``) so the drift can be seen and measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("weight_learning", title="Weight learning")
class WeightLearning(LossWeighting):
    """Learn α = sigmoid(w) in L = αL_seg + (1−α)L_det by gradient descent (Eq. 8–9)."""

    cuda_graph_safe = True  # device arithmetic only: see WeightingStrategy.cuda_graph_safe

    def __init__(self, tasks: Sequence[str], *, init: float = 0.5) -> None:
        super().__init__(tasks)
        if len(self.tasks) < 2:
            raise ValueError("weight_learning needs at least two tasks")
        if not 0.0 < float(init) < 1.0:
            raise ValueError(f"option 'init' (initial α) must lie in (0, 1), got {init}")
        if len(self.tasks) == 2:
            self.logits = nn.Parameter(torch.tensor([math.log(init / (1.0 - init))]))
        else:
            self.logits = nn.Parameter(torch.zeros(len(self.tasks)))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.logits]

    def weight_tensor(self) -> Tensor:
        """The T weights as a differentiable tensor (sum 1)."""
        if len(self.tasks) == 2:
            alpha = torch.sigmoid(self.logits[0])
            return torch.stack([1.0 - alpha, alpha])
        return torch.softmax(self.logits, dim=0)

    def current_weights(self) -> dict[str, float]:
        with torch.no_grad():
            w = self.weight_tensor()
            return {t: float(w[i]) for i, t in enumerate(self.tasks)}

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        w = self.weight_tensor()
        return {t: w[i].to(losses[t].dtype) for i, t in enumerate(self.tasks) if t in losses}
