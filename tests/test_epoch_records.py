"""What a training run records about each epoch, checked against the per-step records it also writes.

``history.csv`` (and ``Trainer.history``) holds one row an epoch: the mean of every per-step loss, loss
term and weight over that epoch's steps, which TensorBoard holds step by step; ``metrics.json``'s
``train_time_s`` is the sum of the epochs' ``epoch_time_s``, and ``fit`` returns what it wrote; the
validation scores reach TensorBoard at their epoch (a NaN left out), its pictures are drawn with the
run's own settings; the progress bars count epochs and steps, and the console shows them only when
asked; a non-finite loss stops the run naming the images of its batch.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from rich.progress import Progress

from taskweight.config import TrainConfig, load_config
from taskweight.engine import StepOutput
from taskweight.errors import TrainingError
from taskweight.evaluate import evaluate
from taskweight.trainer import Trainer, TrainResult, _fmt
from test_resume_every_strategy import _Stop, _stop_at_step
from test_resume_survivors import _scalars, _scripted_validation

STEPS_PER_EPOCH = 3  # tiny: 24 training images, batch 8


@pytest.fixture
def uncertainty_run(tmp_path: Path, tiny_kitti: Path) -> tuple[Trainer, Path, float, TrainResult]:
    """Two epochs with a strategy whose weights change every step (so a weight's mean is not its first
    value), flushed every 2 steps (so a flush straddles the epoch boundary); the fit's wall time. One run
    per test: mutmut credits a shared fixture's calls to the first test only, and would skip the others."""
    overrides = {"data": {"root": str(tiny_kitti)}, "epochs": 2, "method": {"name": "uncertainty"}, "log_every": 2}
    config = load_config("tiny", overrides=overrides)
    run = tmp_path / "run"
    trainer = Trainer(config, run, show_progress=False)
    started = time.perf_counter()
    result = trainer.fit()
    return trainer, run, time.perf_counter() - started, result


def test_each_history_row_is_the_mean_of_its_epochs_steps(uncertainty_run: tuple[Trainer, Path, float, Any]) -> None:
    trainer, run, _, _ = uncertainty_run
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
    # weights.csv holds the same per-step values, to 6 significant digits
    with (run / "weights.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for column in ("loss_det", "loss_seg", "weight_det", "weight_seg"):
        tag = column.replace("_", "/", 1)
        assert [float(r[column]) for r in rows] == pytest.approx([v for _, v in per_step[tag]], rel=1e-5)
    assert [(int(r["step"]), int(r["epoch"])) for r in rows] == [(s, 1 + s // STEPS_PER_EPOCH) for s in range(6)]


def test_train_time_is_the_sum_of_the_epoch_times(uncertainty_run: tuple[Trainer, Path, float, Any]) -> None:
    """Each epoch's time lies between 0 and the fit's wall time; the run's is their sum, not the last one's."""
    trainer, run, wall, _ = uncertainty_run
    epoch_times = [row["epoch_time_s"] for row in trainer.history]
    assert all(t > 0 for t in epoch_times) and sum(epoch_times) < wall
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_time_s"] == pytest.approx(sum(epoch_times), rel=1e-12)
    assert metrics["train_time_s"] > max(epoch_times)


def test_fit_returns_what_it_wrote(uncertainty_run: tuple[Trainer, Path, float, TrainResult]) -> None:
    trainer, run, _, result = uncertainty_run
    assert result.run_dir == run
    assert result.history == trainer.history and len(result.history) == 2
    assert json.loads((run / "metrics.json").read_text()) == json.loads(json.dumps(result.metrics))


def _watch_progress(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict[str, Any]]:
    """Record every bar the trainer's ``Progress`` shows: its description and total, where it starts, how
    many steps it advanced, where it ended, its info fields when it was added and each info shown later."""
    bars: dict[int, dict[str, Any]] = {}

    class Watched(Progress):
        def add_task(self, description: str, *args: Any, **kwargs: Any) -> Any:
            task = super().add_task(description, *args, **kwargs)
            added = self._tasks[task]
            bars[task] = {
                "description": description,
                "total": added.total,
                "start": added.completed,
                "advanced": 0,
                "end": added.completed,
                "fields": dict(added.fields),
                "infos": [],
            }
            return task

        def update(self, task_id: Any, *args: Any, **kwargs: Any) -> None:
            super().update(task_id, *args, **kwargs)
            bars[task_id]["advanced"] += kwargs.get("advance") or 0
            bars[task_id]["end"] = self._tasks[task_id].completed
            if "info" in kwargs:
                bars[task_id]["infos"].append(kwargs["info"])

    monkeypatch.setattr("taskweight.trainer.Progress", Watched)
    return bars


def test_the_progress_bars_count_epochs_and_the_steps_of_each_epoch(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user watches: one bar over the epochs, and one per epoch, labelled "epoch k/N", whose total is
    the number of batches and which advances once a step (tiny: 3 batches an epoch). Every bar starts with an
    empty info column: the losses appear at the first flush, the validation scores after the first epoch."""
    bars = _watch_progress(monkeypatch)
    Trainer(tiny_config, tmp_path / "run", show_progress=False).fit()
    assert [
        (b["description"], b["total"], b["start"], b["advanced"], b["end"], b["fields"]) for b in bars.values()
    ] == [
        ("epochs", 2, 0, 0, 2, {"info": ""}),
        ("epoch 1/2", STEPS_PER_EPOCH, 0, STEPS_PER_EPOCH, STEPS_PER_EPOCH, {"info": ""}),
        ("epoch 2/2", STEPS_PER_EPOCH, 0, STEPS_PER_EPOCH, STEPS_PER_EPOCH, {"info": ""}),
    ]


def test_a_resumed_runs_bar_starts_at_the_epochs_already_done(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stop_at_step(monkeypatch, 5)  # in epoch 2, after the epoch-1 checkpoint
    with pytest.raises(_Stop):
        Trainer(tiny_config, tmp_path / "run", show_progress=False).fit()
    monkeypatch.undo()
    bars = _watch_progress(monkeypatch)
    Trainer(tiny_config, tmp_path / "run", show_progress=False).fit(resume=True)
    assert [(b["description"], b["start"], b["end"]) for b in bars.values()] == [
        ("epochs", 1, 2),
        ("epoch 2/2", 0, STEPS_PER_EPOCH),
    ]


@pytest.mark.parametrize("show", [True, False])
def test_the_console_shows_the_epochs_bar_and_the_last_validation_only_when_asked(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch, show: bool
) -> None:
    """A console that is not a terminal gets the final frame once: the epochs bar, done/total, the elapsed
    and remaining time, the last epoch's validation scores to 3 decimals (mAP = GM / 2 here)."""
    _scripted_validation(monkeypatch, [0.5, 0.25])
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, highlight=False)
    Trainer(tiny_config, tmp_path / "run", show_progress=show, console=console).fit()
    if show:
        assert re.fullmatch(
            r"epochs ━{40} 2/2 \d:\d\d:\d\d \d:\d\d:\d\d val mAP 0\.125 mIoU 0\.250 GM 0\.250\n", out.getvalue()
        ), out.getvalue()
    else:
        assert out.getvalue() == ""


def test_validation_scores_reach_tensorboard_at_their_epochs_last_step_without_nans(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the training curves' axis: epoch k's scores at global step 3k − 1 (tiny: 3 steps an epoch)."""
    config = tiny_config.model_copy(update={"epochs": 3})
    _scripted_validation(monkeypatch, [float("nan"), 0.4, 0.3])  # epoch 1: every score NaN
    Trainer(config, tmp_path / "run", show_progress=False).fit()
    logged = {tag: steps for tag, steps in _scalars(tmp_path / "run").items() if tag.startswith("val/")}
    assert logged == {
        "val/mAP": [(5, pytest.approx(0.2)), (8, pytest.approx(0.15))],
        "val/mIoU": [(5, pytest.approx(0.4)), (8, pytest.approx(0.3))],
        "val/geometric_mean": [(5, pytest.approx(0.4)), (8, pytest.approx(0.3))],
    }


def _own_settings(tiny_config: TrainConfig, **update: Any) -> TrainConfig:
    """``tiny`` with a precision, a memory layout, a score threshold and an NMS IoU that differ from the
    defaults of ``evaluate`` and ``log_predictions``, so a setting not passed on shows."""
    own_eval = tiny_config.eval.model_copy(update={"nms_iou": 0.3, "score_threshold": 0.2})
    return tiny_config.model_copy(update={"precision": "bf16", "channels_last": True, "eval": own_eval, **update})


@pytest.mark.parametrize("pictures", [0, 2])
def test_tensorboard_pictures_are_drawn_each_epoch_with_the_runs_own_settings(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch, pictures: int
) -> None:
    """The pictures show what evaluation scores: the run's precision, NMS IoU and memory layout (settings
    different from ``log_predictions``' defaults here), the first ``tensorboard_images`` val images, one
    picture an epoch at the epoch's last step (2 and 5: 3 steps an epoch); none at all with
    ``tensorboard_images: 0``."""
    config = _own_settings(tiny_config, tensorboard_images=pictures)
    calls: list[tuple[Any, ...]] = []

    def drawn(writer: Any, model: Any, dataset: Any, count: int, step: int, **settings: Any) -> None:
        calls.append((dataset, count, step, settings))

    monkeypatch.setattr("taskweight.trainer.log_predictions", drawn)
    trainer = Trainer(config, tmp_path / "run", show_progress=False)
    trainer.fit()
    settings = {"device": torch.device("cpu"), "precision": "bf16", "nms_iou": 0.3, "channels_last": True}
    expected = [(trainer.val_set, pictures, step, settings) for step in (2, 5)] if pictures else []
    assert calls == expected


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


def test_metrics_json_names_the_method_and_the_mean_losses_of_the_first_ten_steps(
    tmp_path: Path, tiny_kitti: Path
) -> None:
    """``initial_losses``: each task's mean loss over the run's first 10 steps (tiny, 4 epochs: 12 steps, so
    the last 2 are left out); the ratio det/seg of those means, which the paper's handcrafted weights use."""
    overrides = {
        "data": {"root": str(tiny_kitti)},
        "epochs": 4,
        "method": {"name": "dwa", "options": {"temperature": 3.0}},
    }
    Trainer(load_config("tiny", overrides=overrides), tmp_path / "run", show_progress=False).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["method"], metrics["method_options"]) == ("dwa", {"temperature": 3.0})
    per_step = _scalars(tmp_path / "run")
    assert [s for s, _ in per_step["loss/det"]] == list(range(12))
    first_ten = {t: [v for s, v in per_step[f"loss/{t}"] if s < 10] for t in ("det", "seg")}
    expected = {t: sum(v) / 10 for t, v in first_ten.items()}
    assert metrics["initial_losses"] == pytest.approx(expected, rel=1e-6)
    assert metrics["initial_loss_ratio_det_over_seg"] == pytest.approx(expected["det"] / expected["seg"], rel=1e-6)


def test_a_segmentation_only_run_has_no_loss_ratio(tmp_path: Path, tiny_kitti: Path) -> None:
    overrides = {"data": {"root": str(tiny_kitti)}, "epochs": 1, "tasks": ["seg"]}
    Trainer(load_config("tiny", overrides=overrides), tmp_path / "run", show_progress=False).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["initial_losses"]) == {"seg"} and metrics["initial_losses"]["seg"] > 0
    assert metrics["initial_loss_ratio_det_over_seg"] is None


def test_validation_scores_with_the_runs_own_settings(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The epoch's val scores come from the whole val split, scored with the run's precision, layout,
    score threshold and NMS IoU (each different from ``evaluate``'s defaults here)."""
    config = _own_settings(tiny_config, epochs=1)
    calls: list[dict[str, Any]] = []

    def scored(model: Any, loader: Any, device: Any, **settings: Any) -> Any:
        calls.append({"loader": loader, "device": device, **settings})
        return evaluate(model, loader, device, **settings)

    monkeypatch.setattr("taskweight.trainer.evaluate", scored)
    trainer = Trainer(config, tmp_path / "run", show_progress=False)
    trainer.fit()
    assert calls == [
        {
            "loader": trainer.val_loader,
            "device": torch.device("cpu"),
            "score_threshold": 0.2,
            "nms_iou": 0.3,
            "precision": "bf16",
            "channels_last": True,
        }
    ]
    assert trainer.history[0]["val_images_seg"] == 8  # the whole val split
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {k: metrics[k] for k in ("precision", "channels_last", "compile", "cuda_graph", "epochs")} == {
        "precision": "bf16",
        "channels_last": True,
        "compile": False,
        "cuda_graph": False,
        "epochs": 1,
    }
    final = {k.removeprefix("val_"): v for k, v in trainer.history[0].items() if k.startswith("val_")}
    assert metrics["final"] == pytest.approx(final, nan_ok=True) and metrics["best_epoch"] == 1


def test_a_weights_csv_cell_is_6_significant_digits_or_empty_for_a_task_without_a_loss() -> None:
    """A step whose batch has no image labelled for a task has no loss for it: its cell stays empty."""
    assert [_fmt(None), _fmt(0.0), _fmt(12.3456789), _fmt(0.000123456789)] == ["", "0", "12.3457", "0.000123457"]


def test_weights_given_as_python_numbers_are_recorded_like_tensors(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``StepOutput.weights`` may hold Python numbers (a strategy of one's own): weights.csv, TensorBoard and
    the history's means take them as they take 0-dim tensors. Step i's weights: 0.5 + i/8 and 1.5 − i/8."""

    class NumberWeights:
        def __init__(self, step: Any) -> None:
            self.inner = step

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def __call__(self, batch: dict[str, Any]) -> StepOutput:
            out = self.inner(batch)
            i = len(given)
            given.append({"det": 0.5 + i / 8, "seg": 1.5 - i / 8})
            return StepOutput(out.losses, given[-1], out.details)

    given: list[dict[str, float]] = []
    trainer = Trainer(tiny_config.model_copy(update={"log_every": 2}), tmp_path / "run", show_progress=False)
    trainer.step = NumberWeights(trainer.step)  # type: ignore[assignment]
    trainer.fit()
    with (tmp_path / "run" / "weights.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(float(r["weight_det"]), float(r["weight_seg"])) for r in rows] == [(w["det"], w["seg"]) for w in given]
    assert [v for _, v in _scalars(tmp_path / "run")["weight/det"]] == [w["det"] for w in given]
    for epoch, row in enumerate(trainer.history):
        epoch_weights = given[epoch * STEPS_PER_EPOCH : (epoch + 1) * STEPS_PER_EPOCH]
        assert row["weight_det"] == pytest.approx(sum(w["det"] for w in epoch_weights) / STEPS_PER_EPOCH)


def test_an_epochs_bar_shows_the_losses_of_the_last_step_read_back(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With log_every 1 every step is read back at once, and the epoch's bar shows that step's losses."""
    bars = _watch_progress(monkeypatch)
    Trainer(tiny_config.model_copy(update={"log_every": 1}), tmp_path / "run", show_progress=False).fit()
    losses = _scalars(tmp_path / "run")
    shown = [(b["description"], info) for b in bars.values() if b["description"] != "epochs" for info in b["infos"]]
    expected = [
        (f"epoch {1 + step // STEPS_PER_EPOCH}/2", f"det {det:.3f} seg {seg:.3f}")
        for (step, det), (_, seg) in zip(losses["loss/det"], losses["loss/seg"], strict=True)
    ]
    assert shown == expected and len(shown) == 6
