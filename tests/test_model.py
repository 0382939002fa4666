"""Model: shapes, shared/last layer exposure, decoding + NMS, loss masking, learning."""

from __future__ import annotations

import math

import pytest
import torch

from taskweight.errors import DataFormatError
from taskweight.models import (
    ResNet10Encoder,
    kmeans_anchors,
    load_imagenet_weights,
    resnet10_multitask,
)
from taskweight.models.detection import DetectionLossWeights, YoloDetectionHead


def _batch(n: int = 2, h: int = 64, w: int = 192, has_det=None, has_seg=None) -> dict:
    g = torch.Generator().manual_seed(0)
    boxes = [torch.tensor([[20.0, 10.0, 60.0, 40.0], [100.0, 20.0, 116.0, 56.0]]) for _ in range(n)]
    labels = [torch.tensor([0, 1]) for _ in range(n)]
    seg = torch.zeros(n, h, w, dtype=torch.long)
    seg[:, h // 2 :, :] = 1
    seg[:, h // 2 :, : w // 6] = 2
    return {
        "image": torch.rand(n, 3, h, w, generator=g),
        "boxes": boxes,
        "labels": labels,
        "ignore_boxes": [torch.zeros(0, 4) for _ in range(n)],
        "seg": seg,
        "has_det": torch.tensor(has_det if has_det is not None else [True] * n),
        "has_seg": torch.tensor(has_seg if has_seg is not None else [True] * n),
    }


def test_resnet10_structure_and_strides():
    enc = ResNet10Encoder(width=1.0)
    assert [len(getattr(enc, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    feats = enc(torch.rand(1, 3, 64, 128))
    assert feats["s4"].shape == (1, 64, 16, 32)
    assert feats["s8"].shape == (1, 128, 8, 16)
    assert feats["s16"].shape == (1, 256, 4, 8)
    assert feats["s32"].shape == (1, 512, 2, 4)
    assert ResNet10Encoder(width=0.5).out_channels == {"s4": 32, "s8": 64, "s16": 128, "s32": 256}


def test_model_outputs_and_parameter_groups():
    model = resnet10_multitask(width=0.25, image_height=64)
    out = model(torch.rand(2, 3, 64, 192))
    a = model.det_head.num_anchors
    assert out["det"].shape == (2, a, 8, 24, 5 + 3)
    assert out["seg"].shape == (2, 3, 64, 192)
    shared = {id(p) for p in model.shared_parameters()}
    heads = {id(p) for t in model.tasks for p in model.task_parameters(t)}
    assert shared and heads and not shared & heads
    assert shared | heads == {id(p) for p in model.parameters()}
    last = {id(p) for p in model.last_shared_layer.parameters()}
    assert last < shared
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 60, 192))


def test_pretrained_weights_load_from_local_file_only(tmp_path):
    donor = ResNet10Encoder(width=1.0)
    torch.nn.init.constant_(donor.layer2[0].conv1.weight, 0.123)
    path = tmp_path / "resnet.pth"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}, "fc.weight": torch.zeros(2)}, path
    )
    enc = ResNet10Encoder(width=1.0)
    missing = load_imagenet_weights(enc, path)
    assert missing == []
    assert torch.allclose(enc.layer2[0].conv1.weight, torch.full_like(enc.layer2[0].conv1.weight, 0.123))
    with pytest.raises(DataFormatError, match="expects"):
        load_imagenet_weights(ResNet10Encoder(width=0.5), path)
    with pytest.raises(DataFormatError, match="not found"):
        load_imagenet_weights(enc, tmp_path / "missing.pth")


def test_decode_recovers_encoded_box_and_nms_suppresses_duplicates():
    anchors = torch.tensor([[16.0, 16.0], [32.0, 64.0]])
    head = YoloDetectionHead({"s8": 8, "s16": 8, "s32": 8}, num_classes=3, anchors=anchors)
    raw = torch.full((1, 2, 4, 6, 8), -10.0)
    # anchor 1 at cell (row 2, col 3): centre offset 0.5 → (28, 20); w = 32·e^0 = 32, h = 64·e^{ln 0.5} = 32
    raw[0, 1, 2, 3, :4] = torch.tensor([0.0, 0.0, 0.0, math.log(0.5)])
    raw[0, 1, 2, 3, 4] = 5.0  # objectness
    raw[0, 1, 2, 3, 5 + 2] = 5.0  # class cyclist
    # a duplicate with a slightly lower score in the neighbouring anchor 0 of the same cell
    raw[0, 0, 2, 3, :4] = torch.tensor([0.0, 0.0, math.log(2.0), math.log(2.0)])
    raw[0, 0, 2, 3, 4] = 4.0
    raw[0, 0, 2, 3, 5 + 2] = 4.0
    (det,) = head.decode(raw, (32, 48), score_threshold=0.05)
    assert det.labels.tolist() == [2] and det.boxes.shape == (1, 4) and det.scores.shape == (1,)
    # centre (28, 20), 32×32 → (12, 4, 44, 36), clipped to the 32-pixel-high image
    assert torch.allclose(det.boxes[0], torch.tensor([12.0, 4.0, 44.0, 32.0]), atol=1e-4)
    expected = torch.sigmoid(torch.tensor(5.0)) ** 2
    assert det.scores[0].item() == pytest.approx(expected.item(), rel=1e-5)
    # a different class at the same place is not suppressed (class-wise NMS)
    raw[0, 0, 2, 3, 5 + 0] = 6.0
    (det2,) = head.decode(raw, (32, 48), score_threshold=0.05)
    assert sorted(det2.labels.tolist()) == [0, 2]


def test_loss_masks_unlabelled_samples():
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64).eval()
    batch = _batch(n=3, has_det=[True, False, True], has_seg=[False, True, False])
    out = model(batch["image"])
    losses = model.compute_losses(out, batch)
    # the detection loss equals the loss over samples 0 and 2 alone; segmentation over sample 1
    sub = {k: (v[[0, 2]] if isinstance(v, torch.Tensor) else [v[0], v[2]]) for k, v in batch.items()}
    expected_det = model.det_head.loss(out["det"][[0, 2]], sub["boxes"], sub["labels"], sub["ignore_boxes"])
    expected_seg = model.seg_head.loss(out["seg"][[1]], batch["seg"][[1]])
    assert losses["det"].item() == pytest.approx(expected_det.item(), rel=1e-6)
    assert losses["seg"].item() == pytest.approx(expected_seg.item(), rel=1e-6)
    # corrupting labels of unlabelled samples changes nothing
    batch["seg"][0] = 2
    batch["boxes"][1] = torch.tensor([[0.0, 0.0, 50.0, 50.0]])
    again = model.compute_losses(out, batch)
    assert again["det"].item() == pytest.approx(losses["det"].item()) and again["seg"].item() == pytest.approx(
        losses["seg"].item()
    )
    only_seg = model.compute_losses(out, {**batch, "has_det": torch.zeros(3, dtype=torch.bool)})
    assert set(only_seg) == {"seg"}


def test_dontcare_regions_are_not_penalised():
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64).eval()
    batch = _batch(n=1)
    out = model(batch["image"])
    base = model.det_head.loss(out["det"], batch["boxes"], batch["labels"], [torch.zeros(0, 4)])
    region = torch.tensor([[120.0, 0.0, 192.0, 64.0]])  # right of both ground truths (x ≤ 116)
    ignored = model.det_head.loss(out["det"], batch["boxes"], batch["labels"], [region])
    # exactly the no-object terms of the cells whose predicted centre lies in the region drop out
    boxes = model.det_head.decode_boxes(out["det"])[0]
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
    inside = (cx >= 120) & (cx <= 192) & (cy >= 0) & (cy <= 64)
    assert 0 < int(inside.sum()) < inside.numel()
    noobj = torch.nn.functional.softplus(out["det"][0, ..., 4])[inside].sum()  # BCE(x, 0) = softplus(x)
    w = DetectionLossWeights().noobj
    assert (base - ignored).item() == pytest.approx(w * noobj.item(), rel=1e-4)


def test_a_few_steps_lower_both_losses():
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64)
    batch = _batch(n=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        losses = model.compute_losses(model(batch["image"]), batch)
        first = first or {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    final = {k: v.item() for k, v in model.compute_losses(model(batch["image"]), batch).items()}
    assert final["det"] < 0.5 * first["det"]
    assert final["seg"] < 0.5 * first["seg"]


def test_initial_detection_loss_dominates_segmentation_loss():
    """The YOLO loss sums over cells: L_det(0) is tens of times L_seg(0), as in the paper."""
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64)
    losses = model.compute_losses(model(_batch(n=2)["image"]), _batch(n=2))
    assert losses["det"].item() / losses["seg"].item() > 5


def test_kmeans_anchors_recover_clusters():
    g = torch.Generator().manual_seed(1)
    small = torch.tensor([10.0, 20.0]) * (1 + 0.05 * torch.randn(50, 2, generator=g))
    large = torch.tensor([60.0, 40.0]) * (1 + 0.05 * torch.randn(50, 2, generator=g))
    anchors = kmeans_anchors(torch.cat([small, large]), 2, seed=0)
    assert torch.allclose(anchors[0], torch.tensor([10.0, 20.0]), rtol=0.1)
    assert torch.allclose(anchors[1], torch.tensor([60.0, 40.0]), rtol=0.1)
    assert torch.equal(anchors, kmeans_anchors(torch.cat([small, large]), 2, seed=0))
    with pytest.raises(ValueError):
        kmeans_anchors(small[:1], 2)


def test_factory_passes_its_arguments_through():
    # default anchors: fractions of the image height (64 px) from default_anchors
    model = resnet10_multitask(width=0.25, image_height=64)
    expected = torch.tensor([[5.12, 3.84], [3.84, 8.96], [11.52, 8.32], [8.96, 19.2], [25.6, 19.2]])
    assert torch.allclose(model.det_head.anchors, expected)
    assert model.det_head.pred.in_channels == 32  # head width defaults to the encoder's stride-8 width (128·0.25)
    anchors = torch.tensor([[10.0, 20.0], [30.0, 15.0], [40.0, 40.0]])
    model = resnet10_multitask(
        width=0.25, image_height=64, anchors=anchors, num_det_classes=2, num_seg_classes=4, head_channels=16
    )
    assert torch.equal(model.det_head.anchors, anchors)
    assert model.det_head.pred.in_channels == 16
    out = model(torch.rand(1, 3, 64, 192))
    assert out["det"].shape == (1, 3, 8, 24, 5 + 2)
    assert out["seg"].shape == (1, 4, 64, 192)
