"""The contract every task-weighting strategy fulfils, and its two families.

A strategy turns the task losses of one mini-batch into parameter gradients (paper §III,
Eq. 2: L_total = Σ_τ w_τ L_τ) and reports the weights it used. It is a small ``nn.Module``
so that learnable weights (uncertainty, weight learning) live in its ``state_dict`` and any
training loop can use it::

    strategy = taskweight.weighting.get("uncertainty", tasks=config.tasks)
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.trainable_parameters()])
    for batch in loader:
        losses = {"det": det_loss, "seg": seg_loss}
        optimizer.zero_grad()
        weights = strategy.backward(losses, shared_params, last_shared_layer)
        optimizer.step()
        strategy.on_step_end()
    strategy.on_epoch_end()

Two families, in the spirit of TorchJD's weighting/aggregator split:

- :class:`LossWeighting` computes the weights from the losses and its own state; a subclass
  implements :meth:`LossWeighting.weights` only, the base runs the one backward pass of
  Σ_τ w_τ L_τ (equal, handcrafted, dynamic scaling, uncertainty, geometric, weight learning,
  static, async, GradNorm, DWA, RLW, IMTL-L, FAMO, STCH);
- :class:`GradientAggregation` combines the per-task gradients on the shared parameters, the
  T × P Jacobian J computed once per step in one place (:mod:`.gradients`, fp32 at least); a
  subclass implements :meth:`GradientAggregation.aggregate` (PCGrad), or
  :meth:`GramianAggregation.gramian_weights` when the combination is wᵀJ with w a function of
  the Gramian J Jᵀ (MGDA, UPGrad, IMTL-G, Aligned-MTL, CAGrad, Nash-MTL, SDMGrad, ...). DB-MTL and MoCo
  keep per-task gradients across steps and implement :meth:`GradientAggregation.aggregate`.

With ``method.gradients: representation`` the training step hands a gradient aggregation the shared
representation (the encoder's feature maps, detached) in place of the shared parameters, and passes
the combined gradient through the encoder once (:mod:`taskweight.engine`, MGDA-UB).

Weights come back as 0-dim tensors on the losses' device: reading one with ``float()`` is a
host synchronisation, so loops do that only where they log.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from taskweight.weighting.gradients import add_shared_gradient, per_task_shared_gradients

ParamsLike = Iterable[Tensor] | nn.Module


def local_gradients(gradients: Sequence[Tensor]) -> list[Tensor]:
    """The default :attr:`WeightingStrategy.reduce_gradients`: the gradients as they are (one process)."""
    return list(gradients)


def as_param_list(params: ParamsLike | None) -> list[Tensor]:
    """Normalise a module or an iterable of tensors to a list of tensors requiring grad."""
    if params is None:
        return []
    if isinstance(params, nn.Module):
        params = params.parameters()
    return [p for p in params if p.requires_grad]


class WeightingStrategy(nn.Module, metaclass=abc.ABCMeta):
    """Base class: compute a weighted backward pass for T >= 1 tasks.

    ``losses`` holds one scalar tensor per task that is labelled in the current batch: a task
    missing from the dict (its samples carried no label of that kind) simply takes no part in
    this step, and strategies cope with any non-empty subset of ``tasks``.

    Hooks :meth:`on_step_end` and :meth:`on_epoch_end` are called by the loop after each
    optimiser step and after each epoch. Parameters the *main* optimiser must update are
    returned by :meth:`trainable_parameters`; a strategy that optimises its own parameters
    with its own optimiser (GradNorm, FAMO) returns none there.
    """

    name: str = "base"
    title: str = "base"
    """The registry name (``get(name)``) and the human title the tables and plots show."""

    cuda_graph_safe: bool = False
    """True when a CUDA graph replay of :meth:`backward` does what a call does: the step is device
    arithmetic only (no read of a device value on the host, no host-side state that changes with the
    data, no draw from a host generator). The training step captures only such strategies
    (:class:`taskweight.engine.CudaGraphs`); the flag is a promise each strategy makes after review. A
    strategy that is safe for some task counts only sets it per instance (PCGrad and MGDA: T ≤ 2)."""

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
        self.reduce_gradients: Callable[[Sequence[Tensor]], list[Tensor]] = local_gradients
        """Applied to per-task gradients before a strategy combines them or measures their norms.
        Identity in one process; a multi-process loop sets it to the mean over the ranks
        (:meth:`taskweight.distributed.Distributed.average`), so every rank combines the same
        global per-task gradients. Not part of the ``state_dict``."""

    # -- the contract -------------------------------------------------------------------
    @abc.abstractmethod
    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: ParamsLike | None = None,
        last_shared_layer: ParamsLike | None = None,
    ) -> Mapping[str, Tensor]:
        """Run the backward pass for this batch; return the weight used for each task present
        (a 0-dim tensor on the losses' device)."""

    @abc.abstractmethod
    def current_weights(self) -> dict[str, float]:
        """The weights the strategy would use now, as numbers (for logging and ``metrics.json``)."""

    def on_step_end(self) -> None:
        """Called after the optimiser step of every mini-batch."""
        self.step_count += 1

    def on_epoch_end(self) -> None:
        """Called after every training epoch."""
        self.epoch_count += 1

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Learnable strategy parameters for the main optimiser (default: none)."""
        return []

    def own_optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimisers the strategy steps inside :meth:`backward` (GradNorm's weights), which a
        CUDA-graph step makes capturable (default: none)."""
        return []

    # -- random draws: a strategy's own seeded generator -------------------------------
    def seed_draws(self, seed: int) -> torch.Generator:
        """Give the strategy its own CPU generator seeded with ``seed`` (the option), kept in
        ``self.generator``; its state travels in the ``state_dict``, so a resumed run draws the same."""
        if int(seed) != seed or int(seed) < 0:
            raise ValueError(f"option 'seed' must be an integer >= 0, got {seed}")
        self.generator: torch.Generator | None = torch.Generator().manual_seed(int(seed))
        return self.generator

    # -- resumability: counters (and the generator's state) travel with the state_dict --
    def get_extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step_count": self.step_count, "epoch_count": self.epoch_count}
        if getattr(self, "generator", None) is not None:
            state["generator"] = self.generator.get_state()  # type: ignore[union-attr]
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step_count = int(state.get("step_count", 0))
        self.epoch_count = int(state.get("epoch_count", 0))
        if "generator" in state and getattr(self, "generator", None) is not None:
            self.generator.set_state(state["generator"])  # type: ignore[union-attr]

    # -- helpers for subclasses ---------------------------------------------------------
    def _check_losses(self, losses: Mapping[str, Tensor]) -> None:
        if not losses:
            raise ValueError("backward() needs at least one task loss")
        unknown = set(losses) - set(self.tasks)
        if unknown:
            raise KeyError(f"unknown task(s) {sorted(unknown)}; strategy tasks are {list(self.tasks)}")

    def _present(self, losses: Mapping[str, Tensor]) -> list[str]:
        """The tasks of ``losses`` in the strategy's task order."""
        return [t for t in self.tasks if t in losses]

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


class LossWeighting(WeightingStrategy):
    """A strategy that weights the losses: one backward pass of Σ_τ w_τ L_τ.

    Subclasses implement :meth:`weights`. A weight may be differentiable (learned weights:
    its gradient reaches the strategy's parameters through the same backward pass); the
    weights returned by :meth:`backward` are detached. :meth:`active` names the tasks that
    take part in the backward pass (default: every task present; ``async`` leaves out the
    tasks not due, whose heads then keep ``grad=None``), and :meth:`objective` the scalar
    that is differentiated (default Σ_τ w_τ L_τ over the active tasks).
    """

    @abc.abstractmethod
    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """w_τ for every task in ``losses`` (0-dim tensors, dtype and device of the losses)."""

    def active(self, losses: Mapping[str, Tensor]) -> list[str]:
        """The tasks whose term enters the backward pass (decided on the host)."""
        return list(losses)

    def objective(self, losses: Mapping[str, Tensor], weights: Mapping[str, Tensor], active: Sequence[str]) -> Tensor:
        """The scalar to differentiate: Σ_τ w_τ L_τ over the ``active`` tasks."""
        return torch.stack([weights[t] * losses[t] for t in active]).sum()

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: ParamsLike | None = None,
        last_shared_layer: ParamsLike | None = None,
    ) -> dict[str, Tensor]:
        self._check_losses(losses)
        weights = self.weights(losses)
        active = self.active(losses)
        if active:  # nothing due (async): nothing is back-propagated
            self.objective(losses, weights, active).backward()
        return {t: weights[t].detach() for t in losses}

    @staticmethod
    def constant(loss: Tensor, value: float) -> Tensor:
        """A constant weight as a 0-dim tensor beside ``loss`` (a fill on the device, no copy)."""
        return loss.new_full((), value).detach()


class GradientAggregation(WeightingStrategy):
    """A strategy that combines the per-task gradients on the shared parameters.

    The base computes J (T × P, one row ∇_shared L_τ per task present, fp32 at least) once per
    step with :func:`.gradients.per_task_shared_gradients` (the task-specific heads receive their
    own ∇L_τ on the way), calls :meth:`aggregate` and adds the combined gradient to the shared
    parameters' ``.grad``. With fewer than two tasks present, or no shared parameters given,
    it back-propagates Σ_τ L_τ instead.
    """

    representation_gradients: bool = True
    """Whether the per-task gradients may be taken with respect to the shared representation (a new
    batch of feature maps every step) instead of the shared parameters; False for a strategy that
    keeps state per shared coordinate across steps."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self._last: dict[str, Tensor | float] = {t: 1.0 for t in self.tasks}
        self.present: tuple[str, ...] = self.tasks
        """The tasks of the Jacobian's rows in the current :meth:`aggregate` call, in order."""

    @abc.abstractmethod
    def aggregate(self, jacobian: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """(combined gradient of length P, per-task weights of length T) for the T × P ``jacobian``;
        ``losses`` holds the T loss values (detached, same dtype)."""

    def current_weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in self._last.items()}

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: ParamsLike | None = None,
        last_shared_layer: ParamsLike | None = None,
    ) -> dict[str, Tensor]:
        self._check_losses(losses)
        tasks = self._present(losses)
        shared = as_param_list(shared_params)
        if len(tasks) < 2 or not shared:
            torch.stack([losses[t] for t in tasks]).sum().backward()
            return {t: LossWeighting.constant(losses[t], 1.0) for t in tasks}
        jacobian = self.reduce_gradients([per_task_shared_gradients(losses, tasks, shared)])[0]
        values = torch.stack([losses[t].detach() for t in tasks]).to(jacobian)
        self.present = tuple(tasks)  # the tasks of the rows, for an aggregation with per-task state
        combined, weights = self.aggregate(jacobian, values)
        add_shared_gradient(shared, combined)
        used = {t: weights[i].detach() for i, t in enumerate(tasks)}
        self._remember(used)
        return used

    def _remember(self, used: Mapping[str, Tensor]) -> None:
        """Keep the weights for :meth:`current_weights`, in place once a task has a tensor there: a CUDA
        graph replays the copy, so the kept value follows every replay of every captured step."""
        for task, weight in used.items():
            kept = self._last.get(task)
            kind = (weight.shape, weight.dtype, weight.device)
            if isinstance(kept, Tensor) and (kept.shape, kept.dtype, kept.device) == kind:
                kept.copy_(weight)
            else:
                self._last[task] = weight.clone()


class GramianAggregation(GradientAggregation):
    """A gradient aggregation whose combination is wᵀJ, w a function of the Gramian G = J Jᵀ (T × T)
    and of the losses: subclasses implement :meth:`gramian_weights` only."""

    @abc.abstractmethod
    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        """The T weights w of the combination wᵀJ."""

    def aggregate(self, jacobian: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.gramian_weights(jacobian @ jacobian.T, losses)
        return weights @ jacobian, weights
