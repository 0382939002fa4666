"""Score a finished run's checkpoint on any split (the benchmark scores on the test split)."""

from __future__ import annotations

from pathlib import Path

import torch

from taskweight.config import TrainConfig, load_config
from taskweight.errors import DataFormatError
from taskweight.evaluate import evaluate
from taskweight.build import build_model, make_loader, open_split, resolve_device
from taskweight.precision import resolve_precision


def score_run(run_dir: str | Path, *, split: str = "test", checkpoint: str = "best.pt") -> dict[str, float]:
    """Evaluate ``run_dir/checkpoint`` on ``split`` with the run's own config."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    ckpt_path = run_dir / checkpoint
    for path in (config_path, ckpt_path):
        if not path.is_file():
            raise DataFormatError(path, "not found: is this a run folder written by `taskweight train`?")
    return score_checkpoint(load_config(path=config_path), ckpt_path, split=split)


def score_checkpoint(config: TrainConfig, checkpoint: str | Path, *, split: str = "test") -> dict[str, float]:
    """Evaluate a checkpoint (``{"model": state_dict}``) on ``split`` of ``config``'s dataset."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    model = build_model(config, state["det_head.anchors"])
    model.load_state_dict(state)
    device = resolve_device(config.device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = make_loader(open_split(config, split, train=False), config, shuffle=False, device=device)
    return evaluate(model, loader, device, score_threshold=config.eval.score_threshold, nms_iou=config.eval.nms_iou,
                    precision=resolve_precision(config.precision, device), channels_last=config.channels_last)
