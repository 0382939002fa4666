"""Every strategy, stepped by the trainer's step on synthetic KITTI scenes, lowers both task losses
(in fp32 and in bf16 autocast)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskweight import weighting
from taskweight.data import batch_to_device, collate_batch, open_dataset
from taskweight.engine import TrainStep
from taskweight.models import resnet10_multitask

OPTIONS = {
    "static": {"weights": {"det": 1, "seg": 30}},
    "async": {"weights": {"det": 1, "seg": 30}, "frequencies": {"det": 1, "seg": 2}},
    "handcrafted": {"iterations": 3},
}
SIGNED = {"aligned_mtl", "imtl_g", "config"}  # combinations whose weights may be negative by design


@pytest.fixture(scope="module")
def batch(tiny_kitti: Path) -> dict:
    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    return batch_to_device(collate_batch([data[i] for i in range(8)]), torch.device("cpu"))


def _losses(model, batch) -> dict[str, float]:
    with torch.no_grad():
        return {k: v.item() for k, v in model.compute_losses(model(batch["image"]), batch).items()}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", weighting.available())
def test_both_losses_fall(name: str, precision: str, batch: dict):
    """20 steps of the trainer's own step (:class:`TrainStep`), in fp32 and in bf16 autocast."""
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64)
    strategy = weighting.get(name, tasks=model.tasks, **OPTIONS.get(name, {}))
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.trainable_parameters()], lr=3e-3)
    step = TrainStep(
        model, strategy, optimizer, device=torch.device("cpu"), precision=precision, channels_last=precision == "bf16"
    )
    model.train()
    before = _losses(model, batch)
    seen_weights = [step(batch).weights for _ in range(20)]
    strategy.on_epoch_end()
    after = _losses(model, batch)
    assert after["det"] < 0.7 * before["det"], (name, before, after)
    assert after["seg"] < 0.7 * before["seg"], (name, before, after)
    low = float("-inf") if name in SIGNED else 0.0
    assert all(low <= float(w) < float("inf") for used in seen_weights for w in used.values()), name
    assert set(strategy.current_weights()) == {"det", "seg"}
