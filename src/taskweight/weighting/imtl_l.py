"""IMTL-L, the loss-balance half of Impartial Multi-Task Learning (Liu, Li, Kuang, Xue, Chen, Yang, Liao
& Zhang, "Towards Impartial Multi-task Learning", ICLR 2021).

Each task learns a scale s_τ (initialised to ``init``), trained by the main optimiser with the
network, on the scaled loss

    L'_τ = e^{s_τ} L_τ − s_τ,        effective weight w_τ = e^{s_τ}

∂L'_τ/∂s_τ = e^{s_τ} L_τ − 1 = 0 at e^{s_τ} = 1/L_τ: the scale drives every scaled loss towards
1, so the tasks' losses stay comparable whatever their raw scale (the paper's Eq. 4 and the
``loss_scale`` of its and LibMTL's code). The gradient half, IMTL-G, is ``imtl_g``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register


@register("imtl_l", title="IMTL-L")
class IMTLLWeighting(LossWeighting):
    """IMTL-L: e^{s_τ}L_τ − s_τ with learned scales s_τ, effective weight e^{s_τ} (Liu et al. 2021)."""

    def __init__(self, tasks: Sequence[str], *, init: float = 0.0) -> None:
        super().__init__(tasks)
        if not -20.0 <= float(init) <= 20.0:
            raise ValueError(f"option 'init' (initial log-scale) must lie in [-20, 20], got {init}")
        self.scales = nn.Parameter(torch.full((len(self.tasks),), float(init)))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.scales]

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.exp(self.scales.detach()).tolist(), strict=True))

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """e^{s_τ}, differentiable in s_τ."""
        return {t: torch.exp(self.scales[i]).to(losses[t].dtype) for i, t in enumerate(self.tasks) if t in losses}

    def objective(self, losses: Mapping[str, Tensor], weights: Mapping[str, Tensor], active: Sequence[str]) -> Tensor:
        """Σ_τ e^{s_τ} L_τ − s_τ over the tasks present."""
        index = {t: i for i, t in enumerate(self.tasks)}
        return torch.stack([weights[t] * losses[t] - self.scales[index[t]] for t in active]).sum()
