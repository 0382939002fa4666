"""One training loader for a run: the epoch order (:class:`taskweight.data.EpochSampler`), the
seed of each visit's flip, and loader workers that live across epochs and still resume exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from taskweight.build import make_loader
from taskweight.config import TrainConfig
from taskweight.data import EpochSampler, SampleKey, open_dataset
from taskweight.data.sampler import augmentation_seed, epoch_seed
from taskweight.trainer import Trainer


class _Indices(Dataset):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


@pytest.mark.parametrize(("seed", "epoch"), [(0, 0), (0, 1), (3, 2), (7, 11)])
def test_epoch_orders_are_those_of_a_loader_rebuilt_every_epoch(seed: int, epoch: int):
    """Earlier versions built ``DataLoader(shuffle=True, generator=Generator(seed·1,000,003 + epoch))``
    each epoch; torch's own loader is the reference for the order."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    reference = [int(i) for i in DataLoader(_Indices(23), batch_size=None, shuffle=True, generator=generator)]
    sampler = EpochSampler(23, seed=seed)
    sampler.set_epoch(epoch)
    assert list(sampler) == reference
    assert sorted(reference) == list(range(23))


def test_seeds_worked_by_hand():
    assert epoch_seed(2, 3) == 2_000_009  # 2·1,000,003 + 3
    # 2,000,009·1,000,033 + 5 = 2,000,009,000,000 + 66,000,297 + 5
    assert augmentation_seed(2, 3, 5) == 2_000_075_000_302
    assert augmentation_seed(10**15, 0, 0) == (10**15 * 1_000_003 * 1_000_033) % 2**63  # kept below 2⁶³


def test_keyed_sampler_hands_each_visit_its_seed():
    sampler = EpochSampler(5, seed=4, keyed=True, epoch=2)
    keys = list(sampler)
    assert [k.index for k in keys] == EpochSampler(5, seed=4, epoch=2).order()
    assert all(k.seed == augmentation_seed(4, 2, k.index) for k in keys)
    assert EpochSampler(5, seed=4, shuffle=False).order() == [0, 1, 2, 3, 4]
    assert len(sampler) == 5


def test_a_keyed_flip_does_not_depend_on_the_global_generator(tiny_kitti: Path):
    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192), augment=True)
    plain = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    flipped = 0
    for index in range(8):
        key = SampleKey(index, augmentation_seed(0, 1, index))
        torch.manual_seed(1)
        first = data[key]
        torch.manual_seed(2)
        second = data[key]
        assert torch.equal(first["image"], second["image"]) and torch.equal(first["boxes"], second["boxes"])
        original = plain[index]["image"]
        expected_flip = float(torch.rand((), generator=torch.Generator().manual_seed(key.seed))) < 0.5
        assert torch.equal(first["image"], original.flip(-1) if expected_flip else original)
        flipped += expected_flip
    assert 0 < flipped < 8  # both outcomes occur among these eight


def _batches(loader: DataLoader, epoch: int) -> list[dict]:
    loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    return list(loader)


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x["names"] == y["names"] and torch.equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True)
    )


def test_worker_processes_make_the_items_the_training_process_would(tiny_config: TrainConfig):
    config = tiny_config.model_copy(
        update={"data": tiny_config.data.model_copy(update={"num_workers": 2, "augment": True})}
    )
    dataset = open_dataset("kitti", config.data.root, "train", image_size=config.data.image_size, augment=True)
    loader = make_loader(dataset, config, shuffle=True)
    assert loader.persistent_workers
    first = _batches(loader, 1)
    again = _batches(make_loader(dataset, config, shuffle=True), 1)  # new workers, same epoch
    assert _same(first, again)
    expected = [
        dataset[SampleKey(i, augmentation_seed(config.seed, 1, i))] for i in EpochSampler(24, seed=0, epoch=1).order()
    ]
    got = [image for batch in first for image in batch["image"]]
    assert all(torch.equal(g, e["image"]) for g, e in zip(got, expected, strict=True))
    assert not _same(_batches(loader, 2), first)  # another epoch, another order


def test_a_run_with_loader_workers_resumes_bit_for_bit(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
):
    data = tiny_config.data.model_copy(update={"num_workers": 2, "augment": True})
    config = tiny_config.model_copy(update={"epochs": 3, "data": data})
    reference = Trainer(config, tmp_path / "ref", show_progress=False)
    reference.fit()

    class Stop(Exception):
        pass

    calls = {"n": 0}

    def failpoint(name: str) -> None:
        if name == "train_step":
            calls["n"] += 1
            if calls["n"] == 5:  # tiny: 3 steps an epoch → inside epoch 2
                raise Stop

    monkeypatch.setattr("taskweight.trainer.failpoint", failpoint)
    with pytest.raises(Stop):
        Trainer(config, tmp_path / "cut", show_progress=False).fit()
    monkeypatch.undo()
    resumed = Trainer(config, tmp_path / "cut", show_progress=False)
    resumed.fit(resume=True)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert reference.best == resumed.best
