"""Batches travel uint8 to the step's device and become the network's input there.

The arithmetic must be the one the datasets used before images stayed uint8 (per image
``x.float() / 255``), so that a run trains on exactly the same numbers; the masks must become the
int64 the losses and metrics index with; and a user's float batch must pass through untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from taskweight.data import batch_to_device, collate_batch, network_input, open_dataset
from taskweight.synth import generate_dataset

DEVICE = torch.device(os.environ.get("TASKWEIGHT_TEST_DEVICE", "cpu"))
"""Where the conversion runs (``TASKWEIGHT_TEST_DEVICE=cuda`` checks it on a GPU)."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("transport") / "synth"
    generate_dataset(root, train=4, val=1, test=1, seed=3, size=(48, 96), workers=1)
    return open_dataset("kitti", root, "train", image_size=(32, 64))


def test_uint8_images_become_x_over_255_in_float32() -> None:
    images = torch.tensor([0, 1, 2, 127, 128, 254, 255], dtype=torch.uint8).view(1, 1, 1, 7)
    out = network_input(images)
    assert out.dtype == torch.float32
    by_hand = [0.0, 1 / 255, 2 / 255, 127 / 255, 128 / 255, 254 / 255, 1.0]
    assert out.flatten().tolist() == torch.tensor(by_hand, dtype=torch.float32).tolist()  # each ratio rounded once


def test_the_batch_conversion_is_the_per_image_arithmetic(dataset) -> None:
    items = [dataset[i] for i in range(4)]
    assert all(item["image"].dtype == torch.uint8 and item["seg"].dtype == torch.uint8 for item in items)
    batch = collate_batch(items)
    moved = batch_to_device(batch, DEVICE)
    expected = torch.stack([item["image"].float().div_(255.0) for item in items])
    assert moved["image"].device.type == DEVICE.type and moved["image"].dtype == torch.float32
    if DEVICE.type == "cpu":  # the very numbers a run trained on before images stayed uint8
        assert torch.equal(moved["image"], expected)
    else:  # CUDA divides by a scalar as a product with its reciprocal: at most one float32 ulp apart
        torch.testing.assert_close(moved["image"].cpu(), expected, rtol=2**-23, atol=0)
    assert moved["seg"].dtype == torch.int64
    assert torch.equal(moved["seg"].cpu(), torch.stack([item["seg"].long() for item in items]))
    assert all(boxes.device.type == DEVICE.type for boxes in moved["boxes"])
    assert batch["image"].dtype == torch.uint8  # the host batch is not converted in place


def test_channels_last_is_laid_out_in_the_same_pass(dataset) -> None:
    batch = collate_batch([dataset[i] for i in range(2)])
    plain = batch_to_device(batch, DEVICE)["image"]
    nhwc = batch_to_device(batch, DEVICE, channels_last=True)["image"]
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not plain.is_contiguous(
        memory_format=torch.channels_last
    )
    assert torch.equal(nhwc, plain)


def test_float_images_pass_through_and_other_dtypes_are_refused() -> None:
    floats = torch.rand(2, 3, 4, 5)
    assert network_input(floats) is floats
    assert torch.equal(network_input(floats, channels_last=True), floats)
    assert network_input(floats, channels_last=True).is_contiguous(memory_format=torch.channels_last)
    one = torch.rand(3, 4, 5)  # a single image: no NHWC layout for a 3-D tensor, so it passes as it is
    assert network_input(one, channels_last=True) is one
    one_uint8 = (one * 255).to(torch.uint8)
    assert torch.equal(network_input(one_uint8, channels_last=True), one_uint8 / 255)
    with pytest.raises(TypeError, match="uint8 .* or floating point"):
        network_input(torch.zeros(1, 3, 2, 2, dtype=torch.int32))


def test_a_float_batch_built_by_hand_still_trains_as_before() -> None:
    batch = {"image": torch.rand(2, 3, 4, 5), "seg": torch.zeros(2, 4, 5, dtype=torch.int64), "names": ["a", "b"]}
    moved = batch_to_device(batch, torch.device("cpu"))
    assert torch.equal(moved["image"], batch["image"]) and moved["seg"].dtype == torch.int64
    assert moved["names"] == ["a", "b"]


def test_the_dataset_cache_holds_uint8_and_items_are_copies(dataset, tmp_path: Path) -> None:
    cached = open_dataset("kitti", dataset.root, "train", image_size=(32, 64), cache=True)
    first = cached[0]
    first["image"] += 1
    first["seg"] += 1
    again = cached[0]
    assert torch.equal(again["image"], dataset[0]["image"]) and torch.equal(again["seg"], dataset[0]["seg"])
