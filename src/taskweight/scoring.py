"""Score a finished run's checkpoint on any split (the benchmark scores on the test split)."""

from __future__ import annotations

from pathlib import Path

import torch

from taskweight.build import build_model, make_loader, open_split, resolve_device
from taskweight.checkpoint import CheckpointError, load_checkpoint, load_complaint
from taskweight.config import TrainConfig, load_config
from taskweight.errors import DataFormatError
from taskweight.evaluate import evaluate
from taskweight.models import MultiTaskNet
from taskweight.precision import resolve_precision


def score_run(run_dir: str | Path, *, split: str = "test", checkpoint: str = "best.pt") -> dict[str, float]:
    """Evaluate ``run_dir/checkpoint`` on ``split`` with the run's own config."""
    config, ckpt_path = open_run(run_dir, checkpoint)
    return score_checkpoint(config, ckpt_path, split=split)


def open_run(run_dir: str | Path, checkpoint: str = "best.pt") -> tuple[TrainConfig, Path]:
    """A run folder's configuration and the path of its ``checkpoint`` (errors name the missing file)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    ckpt_path = run_dir / checkpoint
    for path in (config_path, ckpt_path):
        if not path.is_file():
            raise DataFormatError(path, "not found: is this a run folder written by `taskweight train`?")
    return load_config(path=config_path), ckpt_path


def load_model(config: TrainConfig, checkpoint: str | Path) -> MultiTaskNet:
    """The network of ``config`` with the weights of ``checkpoint`` (``{"model": state_dict}``), on the CPU."""
    state = load_checkpoint(checkpoint)["model"]
    if not isinstance(state, dict) or ("det" in config.tasks and "det_head.anchors" not in state):
        raise CheckpointError(checkpoint, "its 'model' entry is not a taskweight model state_dict")
    model = build_model(config, state.get("det_head.anchors"))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(checkpoint, f"does not fit the run's configuration: {load_complaint(exc)}") from None
    return model


def score_checkpoint(config: TrainConfig, checkpoint: str | Path, *, split: str = "test") -> dict[str, float]:
    """Evaluate a checkpoint (``{"model": state_dict}``) on ``split`` of ``config``'s dataset."""
    model = load_model(config, checkpoint)
    device = resolve_device(config.device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = make_loader(open_split(config, split, train=False), config, shuffle=False, device=device)
    return evaluate(
        model,
        loader,
        device,
        score_threshold=config.eval.score_threshold,
        nms_iou=config.eval.nms_iou,
        precision=resolve_precision(config.precision, device),
        channels_last=config.channels_last,
    )
