"""Every strategy, plugged into a plain loop on synthetic KITTI scenes, lowers both task losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskweight import weighting
from taskweight.data import collate_batch, open_dataset
from taskweight.models import resnet10_multitask

OPTIONS = {
    "static": {"weights": {"det": 1, "seg": 30}},
    "async": {"weights": {"det": 1, "seg": 30}, "frequencies": {"det": 1, "seg": 2}},
    "handcrafted": {"iterations": 3},
}


@pytest.fixture(scope="module")
def batch(tiny_kitti: Path) -> dict:
    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    return collate_batch([data[i] for i in range(8)])


def _losses(model, batch) -> dict[str, float]:
    with torch.no_grad():
        return {k: v.item() for k, v in model.compute_losses(model(batch["image"]), batch).items()}


@pytest.mark.parametrize("name", weighting.available())
def test_both_losses_fall(name: str, batch: dict):
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64)
    strategy = weighting.get(name, tasks=model.tasks, **OPTIONS.get(name, {}))
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.trainable_parameters()], lr=3e-3)
    model.train()
    before = _losses(model, batch)
    seen_weights = []
    for _ in range(20):
        losses = model.compute_losses(model(batch["image"]), batch)
        optimizer.zero_grad(set_to_none=True)
        seen_weights.append(strategy.backward(losses, model.shared_parameters(), model.last_shared_layer))
        optimizer.step()
        strategy.on_step_end()
    strategy.on_epoch_end()
    after = _losses(model, batch)
    assert after["det"] < 0.7 * before["det"], (name, before, after)
    assert after["seg"] < 0.7 * before["seg"], (name, before, after)
    assert all(w >= 0 for used in seen_weights for w in used.values())
    assert set(strategy.current_weights()) == {"det", "seg"}
