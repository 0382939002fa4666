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

On a CUDA device the step can be captured in CUDA graphs (option ``cuda_graph``,
:class:`CudaGraphs`): a small network's step issues some 700 kernels whose launches, not their
arithmetic, set its time; a graph replays them with one launch. A graph needs fixed shapes, so the
detection targets are padded to a few sizes (:func:`taskweight.models.detection.pad_detection_targets`)
and each (batch shape, tasks present, padded sizes) gets its own graph after two eager warm-up steps.

The trainer, the throughput and step-overhead benchmarks and the tests all call
:class:`TrainStep`, so a change of precision, memory layout or compilation is made here once.
A step never waits for the device: losses, weights and loss details come back as device
tensors, and a loop converts them to numbers only where it logs (``.item()`` there).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from taskweight.data import batch_to_device, network_input
from taskweight.distributed import Distributed
from taskweight.errors import ConfigError
from taskweight.models import MultiTaskNet
from taskweight.models.detection import DetectionTargets, pad_detection_targets
from taskweight.precision import LossScaler, autocast, resolve_precision
from taskweight.weighting.base import GradientAggregation, WeightingStrategy

log = logging.getLogger(__name__)

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
        cuda_graph: ``auto`` (replay the step as CUDA graphs where :func:`use_cuda_graph` finds
            nothing against it), ``on`` (the same, an error where something is) or ``off``.
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
        cuda_graph: str = "off",
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
        self.graphs: CudaGraphs | None = None
        if use_cuda_graph(
            cuda_graph,
            device=device,
            precision=self.precision,
            strategy=strategy,
            distributed=distributed is not None,
            gradients=gradients,
            compile=compile,
        ):
            self.graphs = CudaGraphs(self)

    def prepare(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch on the step's device, in the network's memory layout."""
        return batch_to_device(batch, self.device, channels_last=self.channels_last)

    def outputs(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Forward pass under autocast; the outputs in fp32 (``batch`` already prepared)."""
        with autocast(self.precision, self.device, cache=self.graphs is None):
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
        output = self.graphs(batch) if self.graphs is not None else self.update(self.prepare(batch))
        if self.scheduler is not None:
            self.scheduler.step()
        self.strategy.on_step_end()
        return output

    def update(self, batch: Mapping[str, Any]) -> StepOutput:
        """Forward, losses, the strategy's backward, clipping and the optimiser step on a prepared
        batch: the device work of a step (what a CUDA graph captures), without the host-side
        schedule and strategy hooks."""
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
        return StepOutput({t: v.detach() for t, v in losses.items()}, weights, details)

    # -- resumability (the loss scale travels with a checkpoint) -------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scaler.load_state_dict(dict(state.get("scaler", {})))
        if self.graphs is not None:  # captured graphs point at the tensors being replaced
            self.graphs.clear()


# -- CUDA graphs ---------------------------------------------------------------------------
CUDA_GRAPH_MODES = ("auto", "on", "off")
"""Values of option ``cuda_graph``."""


def cuda_graph_obstacle(
    *,
    device: torch.device,
    precision: str,
    strategy: WeightingStrategy,
    distributed: bool,
    gradients: str,
    compile: bool,
) -> str | None:
    """Why a CUDA graph could not replay this step faithfully, or None when nothing stands against it."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, the step runs on {device}"
    if precision == "fp16":
        return "fp16 loss scaling decides on the host whether a step is skipped; use bf16 or fp32"
    if distributed:
        return "a step over several processes communicates between its kernels; use one process"
    if gradients != "parameters":
        return "representation gradients are not captured; use method.gradients: parameters"
    if compile:
        return "torch.compile and CUDA graphs are alternatives; turn one off"
    if not strategy.cuda_graph_safe:
        return (
            f"strategy {strategy.name!r} keeps host-side state or reads the device during its step, "
            "which a replay would not repeat"
        )
    return None


def use_cuda_graph(
    mode: str,
    *,
    device: torch.device,
    precision: str,
    strategy: WeightingStrategy,
    distributed: bool,
    gradients: str,
    compile: bool,
) -> bool:
    """Resolve option ``cuda_graph``: ``off`` never, ``auto`` where :func:`cuda_graph_obstacle` finds
    none, ``on`` likewise and a :class:`ConfigError` naming the option and the obstacle otherwise."""
    if mode not in CUDA_GRAPH_MODES:
        raise ConfigError(f"option 'cuda_graph' must be one of {', '.join(CUDA_GRAPH_MODES)}, got {mode!r}")
    if mode == "off":
        return False
    obstacle = cuda_graph_obstacle(
        device=device,
        precision=precision,
        strategy=strategy,
        distributed=distributed,
        gradients=gradients,
        compile=compile,
    )
    if obstacle is not None and mode == "on":
        raise ConfigError(f"option 'cuda_graph': on, but {obstacle}")
    return obstacle is None


def padded_size(count: int, minimum: int = 8) -> int:
    """The padded length of a list of ``count`` targets: the next power of two, at least
    ``minimum``, so that a few graphs cover every batch (0 → 8, 9 → 16, 40 → 64)."""
    size = minimum
    while size < count:
        size *= 2
    return size


@dataclass
class _Graph:
    """One captured step: its replay, its input buffers and its output tensors."""

    replay: Callable[[], None]
    inputs: dict[str, Any]
    output: StepOutput


class CudaGraphs:
    """The step of a :class:`TrainStep` replayed from CUDA graphs, one per input signature.

    A signature is the batch's image shape and dtype, its tasks present and its padded target sizes
    (:func:`padded_size`). The first ``warmup`` steps of a signature run eagerly on a side stream
    (they allocate the optimiser's state and choose the convolution algorithms); the next one is
    captured and every later one copies its batch into the graph's input buffers and replays it.
    Eager and replayed steps compute the same kernels on the same padded targets. A capture that
    fails (an operation that waits for the device) leaves that signature eager, with a warning.

    The optimiser runs with ``capturable=True`` and its learning rates become device tensors, which
    the schedule updates in place between replays.
    """

    def __init__(self, step: TrainStep, *, warmup: int = 2, max_graphs: int = 8) -> None:
        self.step = step
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.graphs: dict[tuple[Any, ...], _Graph] = {}
        self.seen: dict[tuple[Any, ...], int] = {}
        self.eager: set[tuple[Any, ...]] = set()
        self.stream: torch.cuda.Stream | None = None  # made at the first warm-up step
        self.prepare_optimizers()

    def prepare_optimizers(self) -> None:
        """Make the step's optimiser and the strategy's own ones capturable: ``capturable=True``,
        step counters on the device, and the main optimiser's learning rates device tensors (a float
        would be frozen into the graph; the schedule fills the tensor in place)."""
        device = self.step.device
        for optimizer in (self.step.optimizer, *self.step.strategy.own_optimizers()):
            for group in optimizer.param_groups:
                group["capturable"] = True
            for state in optimizer.state.values():
                if isinstance(state.get("step"), Tensor) and state["step"].device != device:
                    state["step"] = state["step"].to(device, torch.float32)
        for group in self.step.optimizer.param_groups:
            lr = group["lr"]
            if not isinstance(lr, Tensor) or lr.device != device:
                group["lr"] = torch.tensor(float(lr), device=device)

    def clear(self) -> None:
        """Forget every captured graph (their buffers point at state that is being replaced), and
        make the optimisers capturable again (a loaded state dict brings its own settings)."""
        self.graphs.clear()
        self.seen.clear()
        self.eager.clear()
        self.prepare_optimizers()

    def __call__(self, batch: Mapping[str, Any]) -> StepOutput:
        inputs, key = self.inputs(batch)
        graph = self.graphs.get(key)
        if graph is None:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= self.warmup or key in self.eager or len(self.graphs) >= self.max_graphs:
                return self.run_eager(inputs, key[2])
            graph = self.capture(inputs, key)
            if graph is None:
                return self.run_eager(inputs, key[2])
        else:
            for name, value in inputs.items():
                target = graph.inputs[name]
                if isinstance(value, DetectionTargets):
                    for f in dataclasses.fields(value):
                        getattr(target, f.name).copy_(getattr(value, f.name), non_blocking=True)
                elif isinstance(value, Tensor):
                    target.copy_(value, non_blocking=True)
        graph.replay()
        return _copy_output(graph.output)

    def inputs(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...]]:
        """The batch's tensors on the device (images still uint8), its detection targets padded,
        and its signature."""
        device = self.step.device
        tasks = tuple(t for t in batch.get("labelled_tasks", self.step.model.tasks) if t in self.step.model.tasks)
        inputs: dict[str, Any] = {
            name: batch[name].to(device, non_blocking=True)
            for name in ("image", "seg", "depth", "has_det", "has_seg", "has_depth")
            if isinstance(batch.get(name), Tensor)
        }
        sizes: tuple[int, int] = (0, 0)
        if "det" in tasks:
            counts = [len(b.reshape(-1, 4)) for b in batch["boxes"]]
            ignored = [0 if b is None else len(b.reshape(-1, 4)) for b in batch.get("ignore_boxes") or []]
            sizes = (padded_size(max(counts, default=0)), padded_size(max(ignored, default=0)))
            inputs["det_targets"] = pad_detection_targets(
                batch["boxes"], batch["labels"], batch.get("ignore_boxes"), device=device,
                num_boxes=sizes[0], num_ignore=sizes[1],
            )  # fmt: skip
        image = inputs["image"]
        return inputs, (tuple(image.shape), image.dtype, tasks, sizes, tuple(sorted(inputs)))

    def network_batch(self, inputs: Mapping[str, Any], tasks: tuple[str, ...]) -> dict[str, Any]:
        """What :meth:`TrainStep.update` reads, made from the input buffers on the device."""
        batch: dict[str, Any] = {**inputs, "labelled_tasks": tasks}
        batch["image"] = network_input(inputs["image"], channels_last=self.step.channels_last)
        if "seg" in inputs:
            batch["seg"] = inputs["seg"].long()
        return batch

    def run_eager(self, inputs: Mapping[str, Any], tasks: tuple[str, ...]) -> StepOutput:
        """One step without a graph, on the side stream (a warm-up before capture)."""
        return self.on_side_stream(lambda: self.step.update(self.network_batch(inputs, tasks)))

    def capture(self, inputs: dict[str, Any], key: tuple[Any, ...]) -> _Graph | None:
        """Capture one step on a copy of ``inputs`` (the graph's own buffers: a batch already on the device
        would otherwise be overwritten by the next batch), or None if it cannot be."""
        inputs = {
            name: dataclasses.replace(
                value, **{f.name: getattr(value, f.name).clone() for f in dataclasses.fields(value)}
            )
            if isinstance(value, DetectionTargets)
            else value.clone()
            for name, value in inputs.items()
        }
        try:
            replay, output = self.record(lambda: self.step.update(self.network_batch(inputs, key[2])))
        except RuntimeError as error:
            log.warning("the training step could not be captured in a CUDA graph; it runs eagerly: %s", error)
            self.eager.add(key)
            self.step.optimizer.zero_grad(set_to_none=True)  # gradients allocated during the failed capture
            return None
        captured = _Graph(replay, inputs, output)
        self.graphs[key] = captured
        return captured

    # -- the two places that talk to the CUDA runtime --------------------------------------
    def on_side_stream(self, work: Callable[[], StepOutput]) -> StepOutput:
        """Run ``work`` on the side stream, ordered after and before the current stream's work."""
        if self.stream is None:
            self.stream = torch.cuda.Stream(self.step.device)
        current = torch.cuda.current_stream(self.step.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            output = work()
        current.wait_stream(self.stream)
        return output

    def record(self, work: Callable[[], StepOutput]) -> tuple[Callable[[], None], StepOutput]:
        """Capture ``work`` in a CUDA graph (nothing runs yet): its replay and its output tensors."""
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.step.device)
        # thread-local: the loader's pin-memory thread may call the CUDA runtime while the step is captured
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            output = work()
        return graph.replay, output


def _copy_output(output: StepOutput) -> StepOutput:
    """A replay's outputs copied out of the graph's buffers, which the next replay overwrites."""

    def copy(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.clone() if isinstance(v, Tensor) else v for k, v in values.items()}

    return StepOutput(copy(output.losses), copy(output.weights), copy(output.details))
