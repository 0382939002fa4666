"""Trainer: run-folder outputs, learning, determinism, resume, NaN errors."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from taskweight.errors import TrainingError
from taskweight.trainer import Trainer


def _history(run):
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_run_folder_outputs_and_learning(tmp_path, tiny_config):
    cfg = tiny_config.model_copy(update={"epochs": 3})
    result = Trainer(cfg, tmp_path / "run", show_progress=False).fit()
    run = tmp_path / "run"
    for name in ("metrics.json", "history.csv", "weights.csv", "config.yaml", "best.pt", "last.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("mAP", "mAP_coco", "mIoU", "geometric_mean"):
        assert key in metrics["final"] and key in metrics["best"]
    assert metrics["final_weights"] == {"det": 1.0, "seg": 1.0}
    assert metrics["initial_loss_ratio_det_over_seg"] > 5
    rows = _history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_loss_det"]) < float(rows[0]["train_loss_det"])
    assert float(rows[-1]["train_loss_seg"]) < float(rows[0]["train_loss_seg"])
    with (run / "weights.csv").open() as handle:
        steps = list(csv.DictReader(handle))
    assert len(steps) == 3 * math.ceil(24 / cfg.batch_size)
    assert {k for k in steps[0]} == {"step", "epoch", "loss_det", "loss_seg", "weight_det", "weight_seg"}
    assert result.metrics["epochs"] == 3


def _state(run):
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_fixed_seed_is_reproducible_and_resume_continues_exactly(tmp_path, tiny_config):
    straight = tmp_path / "straight"
    Trainer(tiny_config, straight, show_progress=False).fit()
    again = tmp_path / "again"
    Trainer(tiny_config, again, show_progress=False).fit()
    a, b = _state(straight), _state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)

    resumed = tmp_path / "resumed"
    Trainer(tiny_config.model_copy(update={"epochs": 1}), resumed, show_progress=False).fit()
    Trainer(tiny_config, resumed, show_progress=False).fit(resume=True)
    c = _state(resumed)
    assert all(torch.equal(a[k], c[k]) for k in a), "a resumed run must end where the straight run ends"
    h1, h2 = _history(straight), _history(resumed)
    assert [r["val_geometric_mean"] for r in h1] == [r["val_geometric_mean"] for r in h2]
    with (resumed / "weights.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == list(range(2 * 3))


def test_nan_loss_is_reported_with_step_and_task(tmp_path, tiny_config, monkeypatch):
    trainer = Trainer(tiny_config, tmp_path / "nan", show_progress=False)
    original = trainer.model.compute_losses

    def poisoned(outputs, batch, details=None):
        losses = original(outputs, batch, details)
        losses["seg"] = losses["seg"] * float("nan")
        return losses

    monkeypatch.setattr(trainer.model, "compute_losses", poisoned)
    with pytest.raises(TrainingError, match=r"epoch 1, step 0: the seg loss is nan"):
        trainer.fit()


def test_bad_label_line_raises_by_default_and_is_reported_when_skipped(tmp_path, tiny_kitti, tiny_config):
    import shutil

    from taskweight.errors import DataFormatError

    root = tmp_path / "data"
    shutil.copytree(tiny_kitti, root)
    name = (root / "splits" / "train.txt").read_text().split()[0]
    label = root / "training" / "label_2" / f"{name}.txt"
    label.write_text(label.read_text() + "Car 0.0 0 oops\n")
    config = tiny_config.model_copy(update={"data": tiny_config.data.model_copy(update={"root": root}), "epochs": 1})
    with pytest.raises(DataFormatError, match=rf"{name}\.txt:\d+: expected 15 columns"):
        Trainer(config, tmp_path / "strict", show_progress=False)
    skipping = config.model_copy(update={"data": config.data.model_copy(update={"on_error": "skip"})})
    result = Trainer(skipping, tmp_path / "skip", show_progress=False).fit()
    skipped = result.metrics["skipped_samples"]
    assert skipped["count"] == 1 and skipped["samples"][0]["id"] == name and skipped["samples"][0]["split"] == "train"
    assert skipped["samples"][0]["file"].endswith(f"label_2/{name}.txt") and skipped["samples"][0]["line"] == 9


def test_logging_every_n_steps_changes_nothing_but_when_numbers_are_read(tmp_path, tiny_config):
    """Per-step records are read back every ``log_every`` steps; every step still reaches
    weights.csv, and the run is the same whatever N."""
    from taskweight.precision import resolve_precision

    runs = {}
    for n in (1, 2, 10):
        run = tmp_path / f"every{n}"
        result = Trainer(tiny_config.model_copy(update={"log_every": n}), run, show_progress=False).fit()
        runs[n] = (run / "weights.csv").read_text(), _history(run), result.metrics
    for n in (2, 10):
        assert runs[n][0] == runs[1][0]
        assert [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in runs[n][1]] == [
            {k: v for k, v in r.items() if k != "epoch_time_s"} for r in runs[1][1]
        ]
        assert runs[n][2]["initial_losses"] == runs[1][2]["initial_losses"]
    assert runs[1][0].count("\n") == 1 + 2 * 3  # header + 2 epochs × 3 steps
    assert runs[1][2]["precision"] == resolve_precision("auto", torch.device("cpu"))


def test_a_nan_loss_after_a_flush_names_its_own_step(tmp_path, tiny_config, monkeypatch):
    trainer = Trainer(tiny_config.model_copy(update={"log_every": 2}), tmp_path / "nan4", show_progress=False)
    original = trainer.model.compute_losses
    calls = {"n": 0}

    def poisoned(outputs, batch, details=None):
        losses = original(outputs, batch, details)
        if calls["n"] == 4:
            losses["det"] = losses["det"] * float("inf")
        calls["n"] += 1
        return losses

    monkeypatch.setattr(trainer.model, "compute_losses", poisoned)
    with pytest.raises(TrainingError, match=r"epoch 2, step 4: the det loss is inf \(images "):
        trainer.fit()
