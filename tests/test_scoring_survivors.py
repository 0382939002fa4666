"""Scoring a checkpoint: what ``score_checkpoint`` hands to the evaluation and what ``load_model`` says about
a checkpoint that does not fit (surviving mutants of ``taskweight.scoring``).

``evaluate`` itself is covered by the metric tests; here it is replaced by a recorder, so each test checks
that scoring uses the run's own settings: by default the *test* split, in file order, without the training
augmentation (random flips), on the device the run's ``device`` option resolves to, in the configured
memory layout, with the run's score threshold and NMS IoU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from taskweight import scoring
from taskweight.build import build_model
from taskweight.checkpoint import CheckpointError
from taskweight.config import TrainConfig, load_config
from taskweight.data import open_dataset
from taskweight.scoring import load_model, score_checkpoint

ANCHORS = torch.tensor([[8.0, 8.0], [16.0, 24.0], [32.0, 16.0]])


def _config(root: Path, *, channels_last: bool) -> TrainConfig:
    return load_config(
        "tiny",
        overrides={
            "data": {"root": str(root), "augment": True},  # the training split would be flipped at random
            "device": "cpu",
            "precision": "fp32",
            "batch_size": 3,
            "channels_last": channels_last,
            "eval": {"score_threshold": 0.3, "nms_iou": 0.7},  # not evaluate()'s defaults (0.01, 0.5)
        },
    )


def _checkpoint(config: TrainConfig, path: Path) -> Path:
    torch.save({"model": build_model(config, ANCHORS).state_dict()}, path)
    return path


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1]


@pytest.mark.parametrize("channels_last", [True, False])
def test_score_checkpoint_evaluates_the_plain_test_split_in_order_with_the_runs_settings(
    tiny_kitti: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels_last: bool
) -> None:
    config = _config(tiny_kitti, channels_last=channels_last)
    checkpoint = _checkpoint(config, tmp_path / "best.pt")
    seen: dict[str, Any] = {}

    def resolve_device(name: str) -> torch.device:
        seen["device option"] = name
        return torch.device("meta")  # a device no tensor is on by accident

    def record(model, loader, device, **settings):
        seen.update(model=model, batches=list(loader), device=device, settings=settings)
        return {"geometric_mean": 0.25}

    monkeypatch.setattr(scoring, "resolve_device", resolve_device)
    monkeypatch.setattr(scoring, "evaluate", record)
    torch.manual_seed(0)  # the flips an augmenting loader would draw
    assert score_checkpoint(config, checkpoint) == {"geometric_mean": 0.25}

    # the test split, in the order of its split file, every image as stored (no flip)
    names = [name for batch in seen["batches"] for name in batch["names"]]
    assert names == (tiny_kitti / "splits" / "test.txt").read_text().split()
    plain = open_dataset("kitti", tiny_kitti, "test", image_size=tuple(config.data.image_size))
    assert torch.equal(
        torch.cat([batch["image"] for batch in seen["batches"]]),
        torch.stack([plain[i]["image"] for i in range(len(plain))]),
    )
    # on the device the run's option resolves to, in the configured memory layout
    assert seen["device option"] == "cpu"
    assert seen["device"] == torch.device("meta")
    assert {p.device.type for p in seen["model"].parameters()} == {"meta"}
    convs = _conv_weights(seen["model"])
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) == channels_last for w in convs)
    assert seen["settings"] == {
        "score_threshold": 0.3,
        "nms_iou": 0.7,
        "precision": "fp32",
        "channels_last": channels_last,
    }


def test_a_checkpoint_that_does_not_fit_names_the_file_the_key_and_the_shapes(tiny_kitti: Path, tmp_path: Path) -> None:
    config = _config(tiny_kitti, channels_last=False)
    state = build_model(config, ANCHORS).state_dict()
    key = next(k for k, v in state.items() if k.startswith("seg_head") and v.dim() == 4)
    wide = state[key]
    state[key] = torch.zeros((wide.shape[0] + 1, *wide.shape[1:]))  # one output channel too many
    path = tmp_path / "wide.pt"
    torch.save({"model": state}, path)
    with pytest.raises(RuntimeError) as torch_error:  # torch's own complaint, as a reference
        build_model(config, ANCHORS).load_state_dict(state)
    headline, detail = str(torch_error.value).strip().splitlines()[:2]
    assert key in detail and key not in headline

    with pytest.raises(CheckpointError) as info:
        load_model(config, path)
    assert info.value.path == path
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "does not fit the run's configuration" in message
    assert headline in message
    # the first mismatch follows: which tensor, and the shape the checkpoint holds
    assert key in message and f"torch.Size({list(state[key].shape)})" in message
