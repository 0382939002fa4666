"""FAMO, Fast Adaptive Multitask Optimization (Liu, Liu, Stone & Liu, NeurIPS 2023).

The network receives the gradient of a weighted sum of *log* losses, with task logits ξ:

    z = softmax(ξ),   c = Σ_τ z_τ / L_τ,   L_FAMO = Σ_τ (z_τ / c) log L_τ
    ∇_θ L_FAMO = Σ_τ w_τ ∇_θ L_τ,     w_τ = (z_τ / L_τ) / Σ_j (z_j / L_j)        (Σ_τ w_τ = 1)

and ξ takes one step of its own Adam (``lr``, weight decay ``gamma``) on the gradient
J_softmax(ξ)ᵀ δ with δ_τ = log L_τ(previous step) − log L_τ(this step), the observed decrease of
each log loss: tasks whose loss fell least get more weight. The paper's code measures the new
loss on the same batch after the step (one more forward pass); this strategy uses
the next step's losses instead, so that FAMO costs no more than ``equal``. The logits' update
is skipped on a batch that lacks a task. L_τ + 1e-8 stands for L_τ (the paper's min-loss
offset is 0). Defaults lr = 0.025, γ = 0.01 are those of the paper's code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register

EPS = 1e-8


def famo_logit_gradient(logits: Tensor, previous: Tensor, current: Tensor) -> Tensor:
    """J_softmax(ξ)ᵀ δ = z ⊙ (δ − z·δ), δ = log(previous + ε) − log(current + ε)."""
    z = torch.softmax(logits, dim=0)
    delta = torch.log(previous + EPS) - torch.log(current + EPS)
    return z * (delta - (z * delta).sum())


def famo_weights(logits: Tensor, losses: Tensor) -> Tensor:
    """w_τ = (z_τ/L_τ) / Σ_j (z_j/L_j), z = softmax(ξ): the weights of ∇ Σ (z_τ/c) log L_τ."""
    ratio = torch.softmax(logits, dim=0) / (losses + EPS)
    return ratio / ratio.sum()


@register("famo", title="FAMO")
class FAMOWeighting(LossWeighting):
    """FAMO: weights of ∇Σ(z/c) log L, logits stepped on the decrease of the log losses (Liu et al. 2023)."""

    previous_losses: Tensor

    def __init__(self, tasks: Sequence[str], *, lr: float = 0.025, gamma: float = 0.01) -> None:
        super().__init__(tasks)
        if not lr > 0:
            raise ValueError(f"option 'lr' must be > 0, got {lr}")
        if not gamma >= 0:
            raise ValueError(f"option 'gamma' (weight decay of the logits) must be >= 0, got {gamma}")
        self.lr = float(lr)
        self.gamma = float(gamma)
        # the logits have their own optimiser: keep them out of the main one
        self.logits = nn.Parameter(torch.zeros(len(self.tasks)))
        self.register_buffer("previous_losses", torch.zeros(len(self.tasks)))
        self.has_previous = False
        self.logit_optimizer = torch.optim.Adam([self.logits], lr=self.lr, weight_decay=self.gamma)

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.softmax(self.logits.detach(), dim=0).tolist(), strict=True))

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> FAMOWeighting:
        module: FAMOWeighting = super()._apply(fn, recurse)  # type: ignore[no-untyped-call]  # torch: unannotated
        self.logit_optimizer.param_groups[0]["params"] = [self.logits]
        return module

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        present = [i for i, t in enumerate(self.tasks) if t in losses]
        values = torch.stack([losses[self.tasks[i]].detach() for i in present]).to(self.logits.dtype)
        if len(present) == len(self.tasks):
            if self.has_previous:
                self.logit_optimizer.zero_grad(set_to_none=True)
                self.logits.grad = famo_logit_gradient(self.logits.detach(), self.previous_losses, values)
                self.logit_optimizer.step()
            self.previous_losses.copy_(values)
            self.has_previous = True
        w = famo_weights(self.logits.detach()[present], values)
        return {self.tasks[i]: w[k].to(losses[self.tasks[i]].dtype) for k, i in enumerate(present)}

    def get_extra_state(self) -> dict[str, Any]:
        return {
            **super().get_extra_state(),
            "has_previous": self.has_previous,
            "logit_optimizer": self.logit_optimizer.state_dict(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.has_previous = bool(state.get("has_previous", self.has_previous))
        if "logit_optimizer" in state:
            self.logit_optimizer.load_state_dict(state["logit_optimizer"])
