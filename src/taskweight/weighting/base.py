"""The one contract every task-weighting strategy fulfils.

A strategy turns the task losses of one mini-batch into parameter gradients (paper §III,
Eq. 2: L_total = Σ_τ w_τ L_τ) and reports the weights it used. It is a small ``nn.Module``
so that learnable weights (uncertainty, weight learning) live in its ``state_dict`` and any
training loop can use it::

    strategy = taskweight.weighting.get("uncertainty", tasks=("det", "seg"))
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.trainable_parameters()])
    for batch in loader:
        losses = {"det": det_loss, "seg": seg_loss}
        optimizer.zero_grad()
        weights = strategy.backward(losses, shared_params, last_shared_layer)
        optimizer.step()
        strategy.on_step_end()
    strategy.on_epoch_end()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

ParamsLike = Iterable[Tensor] | nn.Module


def as_param_list(params: ParamsLike | None) -> list[Tensor]:
    """Normalise a module or an iterable of tensors to a list of tensors requiring grad."""
    if params is None:
        return []
    if isinstance(params, nn.Module):
        params = params.parameters()
    return [p for p in params if p.requires_grad]


class WeightingStrategy(nn.Module):
    """Base class: compute a weighted backward pass for T >= 2 tasks.

    Subclasses implement :meth:`backward`. ``losses`` holds one scalar tensor per task that
    is labelled in the current batch: a task missing from the dict (its samples carried no
    label of that kind) simply takes no part in this step, and strategies must cope with any
    non-empty subset of ``tasks``.

    Hooks :meth:`on_step_end` and :meth:`on_epoch_end` are called by the loop after each
    optimiser step and after each epoch. Parameters the *main* optimiser must update are
    returned by :meth:`trainable_parameters`; a strategy that optimises its own parameters
    with its own optimiser (GradNorm) returns none there.
    """

    name: str = "base"

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if len(tasks) < 1:
            raise ValueError("a weighting strategy needs at least one task")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"duplicate task names in {list(tasks)}")
        self.tasks: tuple[str, ...] = tuple(tasks)
        self.step_count: int = 0
        self.epoch_count: int = 0
        self.gradient_scale: Tensor | float = 1.0
        """Factor S by which the gradients of the losses given to :meth:`backward` are scaled
        (fp16 loss scaling, :class:`taskweight.precision.LossScaler`); a strategy that measures
        gradient norms divides them by S. A plain loop leaves it at 1."""

    # -- the contract -------------------------------------------------------------------
    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: ParamsLike | None = None,
        last_shared_layer: ParamsLike | None = None,
    ) -> Mapping[str, float | Tensor]:
        """Run the backward pass for this batch; return the weight used for each task
        (a Python number, or a 0-dim tensor where the weight lives on the device: reading it
        with ``float()`` is a host synchronisation, so loops do that only where they log)."""
        raise NotImplementedError

    def on_step_end(self) -> None:
        """Called after the optimiser step of every mini-batch."""
        self.step_count += 1

    def on_epoch_end(self) -> None:
        """Called after every training epoch."""
        self.epoch_count += 1

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Learnable strategy parameters for the main optimiser (default: none)."""
        return []

    def current_weights(self) -> dict[str, float]:
        """The weights the strategy would use now (for logging and ``metrics.json``)."""
        raise NotImplementedError

    # -- resumability: counters travel with the state_dict -----------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "epoch_count": self.epoch_count}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step_count = int(state.get("step_count", 0))
        self.epoch_count = int(state.get("epoch_count", 0))

    # -- helpers for subclasses ---------------------------------------------------------
    def _check_losses(self, losses: Mapping[str, Tensor]) -> None:
        if not losses:
            raise ValueError("backward() needs at least one task loss")
        unknown = set(losses) - set(self.tasks)
        if unknown:
            raise KeyError(f"unknown task(s) {sorted(unknown)}; strategy tasks are {list(self.tasks)}")

    @staticmethod
    def _weighted_backward(losses: Mapping[str, Tensor], weights: Mapping[str, float | Tensor]) -> None:
        """Backward of Σ_τ w_τ L_τ over the tasks with a non-zero weight.

        Tasks weighted exactly 0 are left out of the graph, so their head parameters keep
        ``grad=None`` and the optimiser leaves them untouched (no momentum drift); when every
        weight is 0 nothing is back-propagated.
        """
        terms = [
            weights[t] * losses[t] for t in losses if not (isinstance(weights[t], (int, float)) and weights[t] == 0)
        ]
        if not terms:
            return
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        total.backward()

    def _task_mapping(
        self, value: Mapping[str, float] | Sequence[float] | None, option: str, default: float
    ) -> dict[str, float]:
        """Read a per-task option given as ``{task: value}`` or a list in task order."""
        if value is None:
            return {t: float(default) for t in self.tasks}
        if isinstance(value, Mapping):
            unknown = set(value) - set(self.tasks)
            if unknown:
                raise ValueError(f"option {option!r}: unknown task(s) {sorted(unknown)}; tasks are {list(self.tasks)}")
            missing = [t for t in self.tasks if t not in value]
            if missing:
                raise ValueError(f"option {option!r}: no value for task(s) {missing}")
            return {t: float(value[t]) for t in self.tasks}
        values = list(value)
        if len(values) != len(self.tasks):
            raise ValueError(
                f"option {option!r}: expected {len(self.tasks)} values (tasks {list(self.tasks)}), got {values}"
            )
        return {t: float(v) for t, v in zip(self.tasks, values, strict=True)}


def flat_grad(params: Sequence[Tensor]) -> Tensor:
    """Concatenate the ``.grad`` of ``params`` into one vector (zeros where a grad is None)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def assign_flat_grad(params: Sequence[Tensor], vector: Tensor) -> None:
    """Write the flat ``vector`` back into the ``.grad`` of ``params``."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vector[offset : offset + n].view_as(p).clone()
        offset += n
