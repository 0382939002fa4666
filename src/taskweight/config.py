"""Validated run configuration (pydantic) loaded from YAML presets or files.

Every option has a default and a range check; a bad value in a YAML file is reported with
the file, the line and the option's dotted name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskweight.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the data is and how it is read."""

    format: str = Field("kitti", description="dataset layout: kitti, cityscapes or woodscape (more formats register themselves)")
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


class EvalConfig(_Strict):
    score_threshold: float = Field(0.01, ge=0, lt=1)
    nms_iou: float = Field(0.5, gt=0, le=1)


class TrainConfig(_Strict):
    """One training run."""

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
    channels_last: bool = Field(True, description="NHWC memory layout for the network (faster convolutions on CPU and GPU)")
    compile: bool = Field(False, description="torch.compile the network's forward pass (pays a compile time up front)")
    log_every: int = Field(10, ge=1, description="log losses and weights (TensorBoard, weights.csv) every N steps")


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
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of options")
    return data, node


def validate(data: dict[str, Any], source: str = "<options>", node: yaml.Node | None = None) -> TrainConfig:
    """Validate a plain dict; errors name ``source``, the YAML line and the dotted option."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            option = ".".join(str(p) for p in err["loc"])
            line = _line_of(node, err["loc"]) if node is not None else None
            where = f"{source}:{line}" if line else source
            lines.append(f"{where}: option '{option}': {err['msg']}")
        raise ConfigError("invalid configuration\n" + "\n".join(lines)) from None


def load_config(preset: str | None = None, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Build a config from a named preset, then a YAML file, then explicit overrides."""
    data: dict[str, Any] = {}
    node = None
    source = "<defaults>"
    if preset is not None:
        preset_path = PRESETS_DIR / f"{preset}.yaml"
        if not preset_path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(available_presets())}")
        data, node = _read_yaml(preset_path)
        source = str(preset_path)
    if path is not None:
        path = Path(path)
        file_data, node = _read_yaml(path)
        data = _deep_update(data, file_data)
        source = str(path)
    if overrides:
        data = _deep_update(data, overrides)
    return validate(data, source, node)


def dump_config(config: TrainConfig, path: str | Path) -> None:
    """Write the config as YAML that :func:`load_config` reads back."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
