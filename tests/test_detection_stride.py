"""``model.det_stride``: the detection grid at stride 4 (one more top-down level) or the paper's 8."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
import torch.nn.functional as F

from taskweight.build import build_model
from taskweight.config import ModelConfig, TrainConfig
from taskweight.models import resnet10_multitask
from taskweight.models.detection import DET_STRIDES, YoloDetectionHead

ANCHORS = torch.tensor([[6.0, 14.0], [20.0, 12.0]])


def _head(stride: int) -> YoloDetectionHead:
    chans = {"s4": 2, "s8": 3, "s16": 5, "s32": 7}
    return YoloDetectionHead(chans, num_classes=3, anchors=ANCHORS, channels=4, stride=stride).eval()  # type: ignore[arg-type]


def test_stride_four_sums_on_to_the_stride_four_map() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        head = _head(4)
        features = {
            "s4": torch.randn(1, 2, 12, 20),
            "s8": torch.randn(1, 3, 6, 10),
            "s16": torch.randn(1, 5, 3, 5),
            "s32": torch.randn(1, 7, 2, 3),
        }
    seen: list[torch.Tensor] = []
    head.fuse.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        raw = head(features)
        lat = {k: head.lateral[k](v) for k, v in features.items()}
        p = lat["s32"]
        for level in ("s16", "s8", "s4"):
            p = F.interpolate(p, size=features[level].shape[-2:], mode="nearest") + lat[level]
    assert raw.shape == (1, 2, 12, 20, 8)  # B, A, H/4, W/4, 5 + K
    torch.testing.assert_close(seen[0], p, rtol=0, atol=1e-6)
    assert sorted(head.lateral) == ["s16", "s32", "s4", "s8"]


def test_stride_eight_is_the_paper_head_unchanged() -> None:
    head = _head(8)
    assert head.stride == 8 and list(head.lateral) == ["s8", "s16", "s32"]  # the parameters' order of before
    raw = head({"s8": torch.zeros(1, 3, 6, 10), "s16": torch.zeros(1, 5, 3, 5), "s32": torch.zeros(1, 7, 2, 3)})
    assert raw.shape == (1, 2, 6, 10, 8)


def test_cells_and_boxes_at_stride_four_by_hand() -> None:
    head = _head(4)
    raw = torch.zeros(1, 2, 3, 5, 8)  # σ(0) = 0.5: every box sits at its cell's centre with the anchor's size
    boxes = head.decode_boxes(raw)
    # cell (row 1, column 2): centre ((2 + 0.5)·4, (1 + 0.5)·4) = (10, 6); anchor 0 is 6×14
    assert boxes[0, 0, 1, 2].tolist() == [7.0, -1.0, 13.0, 13.0]
    assert boxes[0, 1, 2, 4].tolist() == [8.0, 4.0, 28.0, 16.0]  # centre (18, 10), anchor 20×12
    # a ground truth centred at (10.5, 6.2) goes to column ⌊10.5 / 4⌋ = 2, row ⌊6.2 / 4⌋ = 1 (at stride 8: 1, 0)
    gt = torch.tensor([[[8.0, 2.0, 13.0, 10.4]]])
    gy, gx = head.target_cells(gt, (3, 5))[:2]
    assert (int(gy.flatten()[0]), int(gx.flatten()[0])) == (1, 2)
    gy8, gx8 = _head(8).target_cells(gt, (3, 5))[:2]
    assert (int(gy8.flatten()[0]), int(gx8.flatten()[0])) == (0, 1)


def test_the_option_reaches_the_head_and_the_config_offers_exactly_its_strides() -> None:
    assert TrainConfig().model.det_stride == 8
    assert get_args(ModelConfig.model_fields["det_stride"].annotation) == DET_STRIDES == (8, 4)
    config = TrainConfig.model_validate({"model": {"det_stride": 4, "width": 0.25}, "data": {"image_size": [64, 96]}})
    model = build_model(config, None)
    assert model.det_head.stride == 4
    assert model(torch.zeros(1, 3, 64, 96))["det"].shape[2:4] == (16, 24)
    # the shared representation is the maps the heads read: s4 joins it only for the stride-4 grid
    assert list(model.encode(torch.zeros(1, 3, 64, 96))) == ["s4", "s8", "s16", "s32"]
    paper = build_model(TrainConfig.model_validate({"model": {"width": 0.25}}), None)
    assert list(paper.encode(torch.zeros(1, 3, 64, 96))) == ["s8", "s16", "s32"]
    # the stride-8 network keeps the parameters it always had (its checkpoints load), stride 4 adds one lateral
    eight = resnet10_multitask(width=0.25, image_height=64).state_dict()
    four = resnet10_multitask(width=0.25, image_height=64, det_stride=4).state_dict()
    assert set(four) - set(eight) == {"det_head.lateral.s4.weight", "det_head.lateral.s4.bias"}
    assert not [k for k in eight if ".s4." in k]
    with pytest.raises(ValueError, match="det_stride"):
        TrainConfig.model_validate({"model": {"det_stride": 16}})
    with pytest.raises(ValueError, match="stride must be one of"):
        _head(16)
