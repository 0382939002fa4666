"""GradNorm (Chen et al., ICML 2018; paper §IV-A5).

With W the parameters of the *last shared layer* only:

    G_τ = ‖∇_W w_τ L_τ‖₂,   Ḡ = mean_τ G_τ
    r_τ = (L_τ(t)/L_τ(0)) / mean_j (L_j(t)/L_j(0))                 (relative inverse rate)
    L_grad = Σ_τ | G_τ − stopgrad(Ḡ · r_τ^α) |                      (α = 1.5 by default)

L_grad is differentiated with respect to the weights w only, and the weights take a step of
their own optimiser (Adam, ``lr``); afterwards they are clamped positive and renormalised to
Σ_τ w_τ = T. The network receives ∇ Σ_τ w_τ L_τ with the weights *before* that step.
L_τ(0) is the loss of the first step on which every task is labelled.

Cost: one backward pass of Σ w_τ L_τ for the network, plus, for T − 1 tasks, a gradient of
L_τ with respect to W alone (through that task's head and the last shared layer, never the
rest of the encoder); the last task's ∇_W L_τ follows by subtraction from the total.
Because G_τ = w_τ‖∇_W L_τ‖ is linear in w_τ, ∂L_grad/∂w_τ = sign(G_τ − target_τ)‖∇_W L_τ‖
needs no second-order backward.

Place in the contract: GradNorm gives the network the gradient of a *weighted loss*, so it is a
loss weighting in effect, but it is neither a :class:`~.base.LossWeighting` (it needs per-task
gradients of the last shared layer, taken from the same backward pass, and its learnable weights
are the public ``weights`` parameter) nor a :class:`~.base.GradientAggregation` (it never forms
the shared Jacobian: ∇_W for W the last shared layer only, T − 1 small gradients, is what keeps
it cheap). It implements :meth:`backward` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from taskweight.weighting.base import ParamsLike, WeightingStrategy, as_param_list
from taskweight.weighting.registry import register


def gradnorm_loss(weights: Tensor, grad_norms: Tensor, loss_ratios: Tensor, alpha: float) -> Tensor:
    """L_grad = Σ_τ |w_τ n_τ − stopgrad(Ḡ r_τ^α)| with n_τ = ‖∇_W L_τ‖ and loss_ratios = L_τ(t)/L_τ(0)."""
    g = weights * grad_norms
    r = loss_ratios / loss_ratios.mean()
    target = (g.mean() * r.pow(alpha)).detach()
    return (g - target).abs().sum()


@register("gradnorm", title="GradNorm")
class GradNormWeighting(WeightingStrategy):
    """GradNorm: weights balancing ‖∇_W w_τL_τ‖ on the last shared layer, Σw = T (Chen et al. 2018)."""

    cuda_graph_safe = True  # device arithmetic only: see WeightingStrategy.cuda_graph_safe

    initial_losses: Tensor  # buffer registered in __init__

    def __init__(
        self, tasks: Sequence[str], *, alpha: float = 1.5, lr: float = 0.025, min_weight: float = 1e-3
    ) -> None:
        super().__init__(tasks)
        if alpha < 0:
            raise ValueError(f"option 'alpha' must be >= 0, got {alpha}")
        if lr <= 0:
            raise ValueError(f"option 'lr' must be > 0, got {lr}")
        if not 0 < min_weight < 1:
            raise ValueError(f"option 'min_weight' must lie in (0, 1), got {min_weight}")
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.min_weight = float(min_weight)
        # the weights have their own optimiser: keep them out of parameters() of the main one
        self.weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.register_buffer("initial_losses", torch.full((len(self.tasks),), float("nan")))
        self.weight_optimizer = torch.optim.Adam([self.weights], lr=self.lr)
        self.last_grad_loss: Tensor | None = None

    def current_weights(self) -> dict[str, float]:
        return {t: float(self.weights[i].detach()) for i, t in enumerate(self.tasks)}

    def own_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.weight_optimizer]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> GradNormWeighting:
        # keep the optimiser bound to the moved parameter
        module: GradNormWeighting = super()._apply(fn, recurse)  # type: ignore[no-untyped-call]  # torch: unannotated
        self.weight_optimizer.param_groups[0]["params"] = [self.weights]
        return module

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: ParamsLike | None = None,
        last_shared_layer: ParamsLike | None = None,
    ) -> dict[str, Tensor]:
        self._check_losses(losses)
        before_update = self.weights.detach().clone()  # the step uses the weights before GradNorm's own step
        used = {t: before_update[i] for i, t in enumerate(self.tasks) if t in losses}
        layer = as_param_list(last_shared_layer)
        if len(losses) < len(self.tasks) or len(self.tasks) < 2 or not layer:
            # a batch without every task (or no layer given): plain weighted step, no update
            torch.stack([used[t].to(losses[t].dtype) * losses[t] for t in losses]).sum().backward()
            return used
        # what the layer's .grad held before this step (nothing after the usual zero_grad(set_to_none=True))
        before = [None if p.grad is None else p.grad.detach().clone() for p in layer]
        total = sum(used[t] * losses[t] for t in self.tasks)
        assert isinstance(total, Tensor)
        total.backward(retain_graph=True)
        # Σ_τ w_τ ∇_W L_τ from the network's own backward pass (multi-tensor ops: few kernels per step)
        summed = [p.grad if p.grad is not None else torch.zeros_like(p) for p in layer]
        remaining = [g if b is None else g - b for g, b in zip(summed, before, strict=True)]
        per_task: list[list[Tensor]] = []
        for i, task in enumerate(self.tasks[:-1]):
            maybe = torch.autograd.grad(losses[task], layer, retain_graph=i < len(self.tasks) - 2, allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(maybe, layer, strict=True)]
            per_task.append(grads)
            remaining = list(torch._foreach_sub(remaining, torch._foreach_mul(grads, used[task])))
        per_task.append(remaining)
        # over several processes: the norms of the global ∇_W L_τ, the same on every rank
        reduced = self.reduce_gradients([g for grads in per_task for g in grads])
        per_task = [reduced[i * len(layer) : (i + 1) * len(layer)] for i in range(len(self.tasks))]
        # ‖∇_W L_τ‖ over the layer's tensors: the norm of their norms (`layer` is not empty, checked above)
        norms = [torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) for grads in per_task]
        last = self.tasks[-1]
        norms[-1] = norms[-1] / used[last]
        grad_norms = torch.stack(norms).detach() / self.gradient_scale  # true norms under fp16 loss scaling
        current = torch.stack([losses[t].detach() for t in self.tasks]).to(self.initial_losses)
        # L_τ(0): the first full step's losses (NaN until then), set without the host reading the device
        self.initial_losses.copy_(torch.where(torch.isnan(self.initial_losses), current, self.initial_losses))
        ratios = current / self.initial_losses
        self.weight_optimizer.zero_grad(set_to_none=True)
        grad_loss = gradnorm_loss(self.weights, grad_norms.to(self.weights), ratios.to(self.weights), self.alpha)
        self.weights.grad = torch.autograd.grad(grad_loss, self.weights)[0]
        self.weight_optimizer.step()
        with torch.no_grad():
            self.weights.clamp_(min=self.min_weight)
            self.weights.mul_(len(self.tasks) / self.weights.sum())
        self.last_grad_loss = grad_loss.detach()
        return used

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "weight_optimizer": self.weight_optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "weight_optimizer" in state:
            self.weight_optimizer.load_state_dict(state["weight_optimizer"])
