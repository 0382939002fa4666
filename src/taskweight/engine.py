"""One training step: the single place where a mini-batch updates the network.

    batch → device (NHWC when channels-last) → forward under autocast → task losses in fp32
          → [N processes: global losses] → strategy.backward (paper Eq. 2: ∇ Σ_τ w_τ L_τ, or a
          gradient aggregation) → [N processes: gradients averaged] → unscale (fp16 only) → clip
          → optimiser step → schedule step → strategy.on_step_end

Over N processes (:mod:`taskweight.distributed`) the step takes the update one process takes on
the N ranks' batches together; one loss all-reduce and one gradient all-reduce per step (two more
inside a strategy that combines per-task gradients).

With ``gradients="representation"`` (MGDA-UB, Sener & Koltun, "Multi-Task Learning as
Multi-Objective Optimization", NeurIPS 2018, §3.3) a gradient aggregation takes its per-task
gradients with respect to the shared representation Z, the encoder's feature maps, instead of the
shared parameters θ: the heads run on a detached copy of Z, the strategy combines the T rows
∂L_τ/∂Z into one gradient d_Z, and a single backward pass of d_Z through the encoder gives
(∂Z/∂θ)ᵀ d_Z. That is T − 1 fewer backward passes through the encoder; the Gramian is that of the
representation Jacobian (an upper bound's surrogate in the paper's argument, not the same update).

The trainer, the throughput and step-overhead benchmarks and the tests all call
:class:`TrainStep`, so a change of precision, memory layout or compilation is made here once.
A step never waits for the device: losses, weights and loss details come back as device
tensors, and a loop converts them to numbers only where it logs (``.item()`` there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from taskweight.data import batch_to_device
from taskweight.distributed import Distributed
from taskweight.errors import ConfigError
from taskweight.models import MultiTaskNet
from taskweight.precision import LossScaler, autocast, resolve_precision
from taskweight.weighting.base import GradientAggregation, WeightingStrategy

GRADIENTS = ("parameters", "representation")
"""What a gradient aggregation differentiates the task losses by (option ``method.gradients``)."""


def check_gradients(gradients: str, strategy: WeightingStrategy, *, distributed: bool = False) -> None:
    """Raise a :class:`ConfigError` naming option ``method.gradients`` when ``strategy`` cannot take its
    per-task gradients with respect to ``gradients`` (``parameters`` always works)."""
    if gradients not in GRADIENTS:
        raise ConfigError(f"option 'method.gradients' must be one of {', '.join(GRADIENTS)}, got {gradients!r}")
    if gradients == "parameters":
        return
    if not isinstance(strategy, GradientAggregation):
        raise ConfigError(
            f"option 'method.gradients': representation gradients apply to gradient aggregations; "
            f"{strategy.name!r} weights the losses"
        )
    if not strategy.representation_gradients:
        raise ConfigError(
            f"option 'method.gradients': {strategy.name!r} keeps state per shared coordinate across steps, "
            "which a representation (a new batch each step) does not have; use parameters"
        )
    if distributed:
        raise ConfigError(
            "option 'method.gradients': representation gradients run in one process (each rank's representation "
            "holds other images); use parameters with --nproc"
        )


@dataclass
class StepOutput:
    """What one step produced, as device tensors (no host synchronisation).

    ``losses``: the detached fp32 task losses of the tasks labelled in the batch;
    ``weights``: the weight each strategy used (0-dim tensors or Python numbers);
    ``details``: the detection loss's terms (``det_box``, ``det_cls``, ``det_obj``).
    """

    losses: dict[str, Tensor]
    weights: Mapping[str, Tensor | float]
    details: dict[str, Tensor | float] = field(default_factory=dict)


class TrainStep:
    """A callable training step for ``model`` with ``strategy`` and ``optimizer``.

    Args:
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :mod:`taskweight.precision`);
            resolved for ``device`` into :attr:`precision`.
        channels_last: lay the network and its inputs out NHWC.
        compile: run the forward pass through ``torch.compile`` (state dicts keep plain keys).
        grad_clip: clip the global gradient norm of the network's parameters.
        scheduler: stepped after every optimiser step.
        distributed: this rank's process group when the step runs on several processes.
        gradients: ``parameters`` or ``representation`` (module docstring; :func:`check_gradients`).
    """

    def __init__(
        self,
        model: MultiTaskNet,
        strategy: WeightingStrategy,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        grad_clip: float | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        distributed: Distributed | None = None,
        gradients: str = "parameters",
    ) -> None:
        check_gradients(gradients, strategy, distributed=distributed is not None)
        self.model = model
        self.strategy = strategy
        self.optimizer = optimizer
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.channels_last = channels_last
        self.grad_clip = grad_clip
        self.scheduler = scheduler
        self.scaler = LossScaler(self.precision, device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward: Callable[[Tensor], dict[str, Tensor]] = torch.compile(model) if compile else model
        self.gradients = gradients
        self.encode: Callable[[Tensor], dict[str, Tensor]] = torch.compile(model.encode) if compile else model.encode
        self.decode: Callable[[dict[str, Tensor], tuple[int, int]], dict[str, Tensor]] = (
            torch.compile(model.decode) if compile else model.decode
        )
        self.shared = model.shared_parameters()
        self.last_layer = model.last_shared_layer
        self.distributed = distributed
        if distributed is not None:
            strategy.reduce_gradients = distributed.average

    def prepare(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch on the step's device, in the network's memory layout."""
        return batch_to_device(batch, self.device, channels_last=self.channels_last)

    def outputs(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Forward pass under autocast; the outputs in fp32 (``batch`` already prepared)."""
        with autocast(self.precision, self.device):
            outputs = self.forward(batch["image"])
        return {task: value.float() for task, value in outputs.items()}

    def split_outputs(self, batch: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """Forward pass cut at the shared representation: (outputs in fp32, the encoder's features Z,
        the detached copies of Z, requiring grad, that the heads ran on)."""
        images = batch["image"]
        with autocast(self.precision, self.device):
            features = self.encode(images)
            cut = {name: value.detach().requires_grad_() for name, value in features.items()}
            outputs = self.decode(cut, (images.shape[-2], images.shape[-1]))
        return {task: value.float() for task, value in outputs.items()}, features, cut

    def __call__(self, batch: Mapping[str, Any]) -> StepOutput:
        """Run one optimisation step on ``batch`` (a collated batch on any device)."""
        batch = self.prepare(batch)
        details: dict[str, Any] = {}
        features: dict[str, Tensor] = {}
        cut: dict[str, Tensor] = {}
        if self.gradients == "representation":
            outputs, features, cut = self.split_outputs(batch)
        else:
            outputs = self.outputs(batch)
        losses = self.model.compute_losses(outputs, batch, details)
        if self.distributed is not None:
            counts = {
                t: batch[f"has_{t}"].sum() if t in losses else torch.zeros((), device=self.device)
                for t in self.model.tasks
            }
            losses = self.distributed.global_losses(losses, counts, outputs)
        self.optimizer.zero_grad(set_to_none=True)
        self.strategy.gradient_scale = self.scaler.scale()
        shared = self.shared if self.gradients == "parameters" else list(cut.values())
        weights = self.strategy.backward(self.scaler.scale_gradients(losses), shared, self.last_layer)
        if self.gradients == "representation":  # d_Z through the encoder, once
            reached = [(features[name], z.grad) for name, z in cut.items() if z.grad is not None]
            torch.autograd.backward([f for f, _ in reached], [g for _, g in reached])
        if self.distributed is not None:
            self.distributed.average_gradients_(p for group in self.optimizer.param_groups for p in group["params"])
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        if self.scheduler is not None:
            self.scheduler.step()
        self.strategy.on_step_end()
        return StepOutput({t: v.detach() for t, v in losses.items()}, weights, details)

    # -- resumability (the loss scale travels with a checkpoint) -------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scaler.load_state_dict(dict(state.get("scaler", {})))
