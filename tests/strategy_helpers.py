"""Small drivers the strategy tests share: known linear losses, one step, weights as floats.

Imported by the test modules (``from strategy_helpers import ...``; pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import torch

from taskweight import weighting

F64 = torch.float64


def numbers(used: dict) -> dict[str, float]:
    """The weights a ``backward`` used, as floats."""
    return {t: float(w) for t, w in used.items()}


def linear_losses(x: torch.Tensor, c_det: float = 2.0, c_seg: float = 0.5) -> dict[str, torch.Tensor]:
    """L_det = x_0 + c_det, L_seg = 2·x_1 + c_seg: ∇L_det = (1, 0), ∇L_seg = (0, 2)."""
    return {"det": x[0] + c_det, "seg": 2 * x[1] + c_seg}


def linear_step(
    strategy: weighting.WeightingStrategy, c_det: float, c_seg: float
) -> tuple[dict[str, float], list[float]]:
    """One backward pass of :func:`linear_losses` at x = 0 (float64), x being the shared parameters and
    the last shared layer: (the weights used, the gradient x received)."""
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = numbers(strategy.backward(linear_losses(x, c_det, c_seg), [x], [x]))
    assert x.grad is not None
    return used, x.grad.tolist()


def constant_step(strategy: weighting.WeightingStrategy, **values: float) -> dict[str, float]:
    """One backward (and step end) of constant losses ``task=value``; the weights used, as floats."""
    x = torch.zeros(1, requires_grad=True)
    used = numbers(strategy.backward({t: x.sum() + v for t, v in values.items()}))
    strategy.on_step_end()
    return used


def aggregate(strategy: weighting.WeightingStrategy, jacobian: torch.Tensor, losses: torch.Tensor, present=None):
    """Call a gradient aggregation's ``aggregate`` as the base does, on the rows of ``present`` (default: all)."""
    assert isinstance(strategy, weighting.GradientAggregation), strategy
    strategy.present = tuple(present or strategy.tasks)
    return strategy.aggregate(jacobian, losses)
