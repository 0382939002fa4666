"""What a training run records about each epoch, checked against the per-step records it also writes.

``history.csv`` (and ``Trainer.history``) holds one row an epoch: the mean of every per-step loss, loss
term and weight over that epoch's steps, which TensorBoard holds step by step; ``metrics.json``'s
``train_time_s`` is the sum of the epochs' ``epoch_time_s``; the progress bars count epochs and steps;
a non-finite loss stops the run naming the images of its batch.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from rich.progress import Progress

from taskweight.config import TrainConfig, load_config
from taskweight.errors import TrainingError
from taskweight.trainer import Trainer
from test_resume_survivors import _scalars

STEPS_PER_EPOCH = 3  # tiny: 24 training images, batch 8


@pytest.fixture
def uncertainty_run(tmp_path: Path, tiny_kitti: Path) -> tuple[Trainer, Path, float]:
    """Two epochs with a strategy whose weights change every step (so a weight's mean is not its first
    value), flushed every 2 steps (so a flush straddles the epoch boundary); the fit's wall time. One run
    per test: mutmut credits a shared fixture's calls to the first test only, and would skip the others."""
    overrides = {"data": {"root": str(tiny_kitti)}, "epochs": 2, "method": {"name": "uncertainty"}, "log_every": 2}
    config = load_config("tiny", overrides=overrides)
    run = tmp_path / "run"
    trainer = Trainer(config, run, show_progress=False)
    started = time.perf_counter()
    trainer.fit()
    return trainer, run, time.perf_counter() - started


def test_each_history_row_is_the_mean_of_its_epochs_steps(uncertainty_run: tuple[Trainer, Path, float]) -> None:
    trainer, run, _ = uncertainty_run
    per_step = _scalars(run)  # TensorBoard tag → [(global step, value)], float32 as logged
    assert len(trainer.history) == 2
    for epoch, row in enumerate(trainer.history):
        steps = range(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
        step_keys = {k for k in row if k.startswith(("train_", "weight_"))}
        # the losses, the detection loss terms and the weights; no weight under a train_ name
        assert step_keys == {
            "train_loss_det", "train_loss_seg", "train_det_box", "train_det_cls", "train_det_obj",
            "weight_det", "weight_seg",
        }  # fmt: skip
        for key in step_keys:
            tag = key.removeprefix("train_").replace("_", "/", 1)  # train_loss_det → loss/det
            values = [v for s, v in per_step[tag] if s in steps]
            assert len(values) == STEPS_PER_EPOCH
            assert row[key] == pytest.approx(sum(values) / len(values), rel=1e-6), key
        assert row["epoch"] == epoch + 1
    weights = [v for _, v in per_step["weight/det"]]
    assert len(set(weights)) == len(weights)  # the weights did change: a mean is not one of them


def test_train_time_is_the_sum_of_the_epoch_times(uncertainty_run: tuple[Trainer, Path, float]) -> None:
    """Each epoch's time lies between 0 and the fit's wall time; the run's is their sum, not the last one's."""
    trainer, run, wall = uncertainty_run
    epoch_times = [row["epoch_time_s"] for row in trainer.history]
    assert all(t > 0 for t in epoch_times) and sum(epoch_times) < wall
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_time_s"] == pytest.approx(sum(epoch_times), rel=1e-12)
    assert metrics["train_time_s"] > max(epoch_times)


def test_the_progress_bars_count_epochs_and_the_steps_of_each_epoch(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user watches: one bar over the epochs, and one per epoch, labelled "epoch k/N", whose total is
    the number of batches and which advances once a step (tiny: 3 batches an epoch). Every bar starts with an
    empty info column: the losses appear at the first flush, the validation scores after the first epoch."""
    bars: dict[int, dict[str, Any]] = {}

    class Watched(Progress):
        def add_task(self, description: str, *args: Any, **kwargs: Any) -> Any:
            task = super().add_task(description, *args, **kwargs)
            fields = dict(self.tasks[-1].fields)
            bars[task] = {"description": description, "total": kwargs.get("total"), "advanced": 0, "fields": fields}
            return task

        def update(self, task_id: Any, *args: Any, **kwargs: Any) -> None:
            bars[task_id]["advanced"] += kwargs.get("advance") or 0
            super().update(task_id, *args, **kwargs)

    monkeypatch.setattr("taskweight.trainer.Progress", Watched)
    Trainer(tiny_config, tmp_path / "run", show_progress=False).fit()
    assert [(b["description"], b["total"], b["advanced"], b["fields"]) for b in bars.values()] == [
        ("epochs", 2, 0, {"info": ""}),
        ("epoch 1/2", STEPS_PER_EPOCH, STEPS_PER_EPOCH, {"info": ""}),
        ("epoch 2/2", STEPS_PER_EPOCH, STEPS_PER_EPOCH, {"info": ""}),
    ]


def test_a_non_finite_loss_names_the_images_of_its_batch(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(tiny_config, tmp_path / "run", show_progress=False)
    original = trainer.model.compute_losses
    seen: list[list[str]] = []

    def poisoned(outputs: Any, batch: dict[str, Any], details: Any = None) -> Any:
        losses = original(outputs, batch, details)
        seen.append(list(batch["names"]))
        if len(seen) == 2:
            losses["seg"] = losses["seg"] * float("nan")
        return losses

    monkeypatch.setattr(trainer.model, "compute_losses", poisoned)
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    names = seen[1]
    assert len(names) == 8 and all(names)
    assert re.fullmatch(
        rf"epoch 1, step 1: the seg loss is nan \(images {re.escape(', '.join(names))}\); "
        r"lower optim.lr or check the labels",
        str(info.value),
    )
