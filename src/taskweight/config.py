"""Validated run configuration (pydantic) loaded from YAML presets or files.

Every option has a default and a range check; a bad value in a YAML file is reported with
the file, the line and the option's dotted name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskweight.classes import DEFAULT_TASKS, check_tasks
from taskweight.durable import atomic_write_text
from taskweight.errors import ConfigError
from taskweight.yamlio import load_yaml, yaml_error_location


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the data is and how it is read."""

    format: str = Field(
        "kitti", description="dataset layout: kitti, cityscapes or woodscape (more formats register themselves)"
    )
    root: Path | None = Field(None, description="dataset root folder")
    image_size: tuple[int, int] = Field((128, 416), description="network input H, W (multiples of 32)")
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    augment: bool = Field(True, description="random horizontal flips on the training split")
    cache: bool = Field(True, description="keep decoded samples in memory (small datasets)")
    num_workers: int = Field(0, ge=0)
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="bad samples: raise (name file and line) or skip them, counted and reported"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="format-specific loader options, e.g. split_seed")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, value: tuple[int, int]) -> tuple[int, int]:
        if any(v <= 0 or v % 32 for v in value):
            raise ValueError(f"image_size {list(value)} must be positive multiples of 32")
        return value


class ModelConfig(_Strict):
    """Network shape (paper §V-A)."""

    width: float = Field(0.5, gt=0, le=4, description="encoder width multiplier (1.0 = ResNet10)")
    head_channels: int | None = Field(None, gt=0, description="decoder width (default: encoder stride-8 width)")
    num_anchors: int = Field(5, ge=1, le=12, description="anchors, clustered from the training boxes")
    anchors: list[tuple[float, float]] | None = Field(None, description="explicit anchors (w, h) in input pixels")
    pretrained: Path | None = Field(None, description="local ImageNet ResNet checkpoint for the encoder")
    det_assignment: Literal["centre", "neighbours", "neighbours_ratio"] = Field(
        "centre",
        description="detection target assignment: centre — each ground truth goes to the stride-8 cell holding its "
        "centre, box centre c = (j + σ(t))·s (YOLOv2/v3); neighbours — also to the horizontal and the vertical "
        "neighbour cell nearest its centre (inside the grid), with c = (j + 2σ(t) − 0.5)·s (YOLOv5); "
        "neighbours_ratio — as neighbours, with YOLOv5's anchor matching (every anchor whose width and height "
        "ratios to the box are under 4, instead of a shape IoU over 0.3). Changes the loss and the box decoding, "
        "not the parameters",
    )
    det_stride: Literal[8, 4] = Field(
        8,
        description="the detection grid's stride in input pixels: 8 (the paper's decoder on the fused stride-8 map) "
        "or 4 (the top-down sum goes on to the encoder's stride-4 map: a cell of its own for objects a few pixels "
        "wide, for about 4× the detection head's and loss's work)",
    )


class OptimConfig(_Strict):
    """Optimiser and learning-rate schedule."""

    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = Field(50, ge=0, description="linear warm-up iterations")
    step_epochs: int = Field(10, ge=1, description="for schedule=step: decay by 10 every N epochs")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm")


class MethodConfig(_Strict):
    """Task-weighting strategy (taskweight.weighting registry name and its options)."""

    name: str = "equal"
    options: dict[str, Any] = Field(default_factory=dict)
    gradients: Literal["parameters", "representation"] = Field(
        "parameters",
        description="a gradient aggregation's per-task gradients: with respect to the shared parameters, or to "
        "the shared representation, the encoder's feature maps (MGDA-UB, Sener & Koltun 2018: one backward pass "
        "through the encoder instead of T)",
    )


class EvalConfig(_Strict):
    score_threshold: float = Field(0.01, ge=0, lt=1)
    nms_iou: float = Field(0.5, gt=0, le=1)


class TrainConfig(_Strict):
    """One training run."""

    tasks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TASKS),
        description="the tasks trained, any non-empty subset of the known tasks (det, seg, depth); the model "
        "builds only their heads",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(16, ge=1)
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 autocast on CPUs with native bf16 (AVX-512 BF16/AMX) and bf16-capable CUDA, "
        "fp16 + loss scaling on older CUDA, fp32 otherwise",
    )
    channels_last: bool = Field(
        True, description="NHWC memory layout for the network (faster convolutions on CPU and GPU)"
    )
    compile: bool = Field(False, description="torch.compile the network's forward pass (pays a compile time up front)")
    keep_host_memory: bool = Field(
        True,
        description="on a CPU device, keep freed memory in the process for the next step instead of giving it back "
        "to the system (glibc mallopt; Linux only), where a step would otherwise page-fault its activations in again. "
        "1.00-1.22x the img/s of the quick preset's step on a 2-core CPU (benchmarks/host_memory.py); the resident "
        "memory stays at its peak",
    )
    cuda_graph: Literal["auto", "on", "off"] = Field(
        "auto",
        description="replay the training step from CUDA graphs (one launch instead of ~700 per step): auto where "
        "the device is CUDA, the precision bf16/fp32, one process and the strategy capture-safe; on: the same, "
        "an error otherwise; off: never",
    )
    log_every: int = Field(10, ge=1, description="log losses and weights (TensorBoard, weights.csv) every N steps")
    tensorboard_images: int = Field(
        4, ge=0, description="validation images drawn with their predictions into TensorBoard every epoch (0: none)"
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        return list(check_tasks(value))


PRESETS_DIR = Path(__file__).parent / "configs"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at the pydantic error location ``loc``."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(key)), None)
            if child is None:
                key_node = next((k for k, _ in node.value if k.value == str(key)), None)
                return key_node.start_mark.line + 1 if key_node is not None else line
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = load_yaml(text, str(path)) or {}
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        line, message = yaml_error_location(exc)
        where = f"{path}:{line}" if line is not None else f"{path}"
        raise ConfigError(f"{where}: invalid YAML: {message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of options")
    return data, node


@dataclass(frozen=True)
class ConfigLayer:
    """One source of option values: a preset, a YAML file, a bench preset's overrides, the command line.

    ``node`` is the YAML node of the file the values came from and ``prefix`` the path of
    ``data`` inside it (``("datasets", 0, "train_overrides")``), so an error names its line.
    """

    source: str
    data: dict[str, Any]
    node: yaml.Node | None = None
    prefix: tuple[Any, ...] = ()

    def holds(self, loc: tuple[Any, ...]) -> bool:
        value: Any = self.data
        for key in loc:
            if (
                isinstance(value, dict)
                and key in value
                or isinstance(value, (list, tuple))
                and isinstance(key, int)
                and key < len(value)
            ):
                value = value[key]
            else:
                return False
        return True

    def where(self, loc: tuple[Any, ...]) -> str:
        line = _line_of(self.node, (*self.prefix, *loc)) if self.node is not None else None
        return f"{self.source}:{line}" if line else self.source


def validate(
    data: dict[str, Any],
    source: str = "<options>",
    node: yaml.Node | None = None,
    layers: list[ConfigLayer] | None = None,
) -> TrainConfig:
    """Validate a plain dict; each error names the option, its value and where it was given.

    ``layers`` (later ones override earlier ones) tell where each value came from: the error
    names the last layer that gives the option — its file and YAML line, or the command line —
    not merely the last file read. Without layers, ``source``/``node`` stand for all values.
    """
    layers = layers or [ConfigLayer(source, data, node)]
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            option = ".".join(str(p) for p in loc)
            layer = next((lay for lay in reversed(layers) if lay.holds(loc)), None)
            if layer is None:  # a missing or cross-field value: the nearest layer that names its parent
                layer = next((lay for lay in reversed(layers) if lay.holds(loc[:-1])), layers[-1])
            value = err.get("input")
            got = f", got {value!r}" if err["type"] != "missing" and not isinstance(value, dict) else ""
            lines.append(f"{layer.where(loc)}: option '{option}': {err['msg']}{got}")
        raise ConfigError(
            "invalid configuration: " + "; ".join(lines)
            if len(lines) == 1
            else "invalid configuration:\n" + "\n".join(lines)
        ) from None


def load_config(
    preset: str | None = None,
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    layers: list[ConfigLayer] | None = None,
    overrides_source: str = "command-line options",
) -> TrainConfig:
    """Build a config from a named preset, then a YAML file, then ``layers``, then explicit ``overrides``.

    Errors name where the bad value was given (see :func:`validate`): ``overrides_source``
    describes ``overrides`` (the CLI's options by default).
    """
    stack: list[ConfigLayer] = []
    if preset is not None:
        preset_path = PRESETS_DIR / f"{preset}.yaml"
        if not preset_path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(available_presets())}")
        preset_data, preset_node = _read_yaml(preset_path)
        stack.append(ConfigLayer(str(preset_path), preset_data, preset_node))
    if path is not None:
        file_data, file_node = _read_yaml(Path(path))
        stack.append(ConfigLayer(str(path), file_data, file_node))
    stack.extend(layers or [])
    if overrides:
        stack.append(ConfigLayer(overrides_source, overrides))
    data: dict[str, Any] = {}
    for layer in stack:
        data = _deep_update(data, layer.data)
    return validate(data, layers=stack or None)


def dump_config(config: TrainConfig, path: str | Path) -> None:
    """Write the config as YAML that :func:`load_config` reads back."""
    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
