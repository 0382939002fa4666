"""The numbers a bench reports: the split each cell is scored on, and Table II's Overall row.

The split test makes val and test disagree on purpose (the test masks say "sidewalk"
everywhere), so a cell scored on the wrong split cannot pass. The Overall tests use records
whose every number is worked out by hand below: a method missing from one dataset, unequal
seeds per dataset and a failed cell.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskweight.bench import BenchRunner, load_bench_preset
from taskweight.bench.report import render_table2, summarize
from taskweight.bench.results import CellRecord
from taskweight.checkpoint import CheckpointError
from taskweight.errors import DataFormatError
from taskweight.scoring import load_model, open_run, score_run

SIDEWALK = 8  # Cityscapes label id


@pytest.fixture(scope="module")
def split_disagreeing_cell(tiny_kitti: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[CellRecord, Path]:
    """A one-epoch `equal` bench cell on data whose test masks say "sidewalk" everywhere."""
    tmp_path = tmp_path_factory.mktemp("split")
    data = tmp_path / "data"
    shutil.copytree(tiny_kitti, data)
    for name in (data / "splits" / "test.txt").read_text().split():
        mask = data / "training" / "semantic" / f"{name}.png"
        shape = np.array(Image.open(mask)).shape
        Image.fromarray(np.full(shape, SIDEWALK, dtype=np.uint8)).save(mask)
    preset = load_bench_preset("tiny").model_copy(update={"methods": ["equal"], "seeds": 1})
    preset.datasets[0] = preset.datasets[0].model_copy(update={"root": data, "synth": None})
    (record,) = BenchRunner(preset, tmp_path / "bench", show_progress=False).run()
    return record, tmp_path / "bench" / "cells" / record.dataset / "equal" / "seed0" / "run"


def test_cells_are_scored_on_the_test_split(split_disagreeing_cell: tuple[CellRecord, Path]) -> None:
    record, run = split_disagreeing_cell
    test, val = score_run(run, split="test"), score_run(run, split="val")
    assert abs(test["mIoU"] - val["mIoU"]) > 0.05, "the splits must disagree for this test to mean anything"
    assert record.mIoU == pytest.approx(test["mIoU"], abs=1e-9)
    assert record.mAP == pytest.approx(test["mAP"], abs=1e-9)
    assert record.geometric_mean == pytest.approx(test["geometric_mean"], abs=1e-9)
    assert record.val["mIoU"] == pytest.approx(val["mIoU"], abs=1e-9)  # model selection used val
    assert score_run(run) == test  # by default: the test split, best.pt


def test_score_run_scores_the_checkpoint_named(split_disagreeing_cell: tuple[CellRecord, Path], tmp_path: Path) -> None:
    _, run = split_disagreeing_cell
    other = tmp_path / "run"
    shutil.copytree(run, other)
    state = torch.load(other / "best.pt", weights_only=True)
    state["model"] = {k: torch.zeros_like(v) if k.startswith("seg_head") else v for k, v in state["model"].items()}
    torch.save(state, other / "blind.pt")
    blind, best = score_run(other, checkpoint="blind.pt"), score_run(other)
    # a zeroed segmentation head predicts class 0 everywhere: a different mIoU than the trained one
    assert blind["mIoU"] != pytest.approx(best["mIoU"], abs=1e-6)


def test_a_folder_that_is_no_run_and_a_foreign_checkpoint_are_named(
    split_disagreeing_cell: tuple[CellRecord, Path], tmp_path: Path
) -> None:
    _, run = split_disagreeing_cell
    with pytest.raises(DataFormatError) as info:
        score_run(tmp_path)
    assert (
        str(info.value) == f"{tmp_path / 'config.yaml'}: not found: is this a run folder written by `taskweight train`?"
    )
    with pytest.raises(DataFormatError, match=r"missing\.pt: not found"):
        score_run(run, checkpoint="missing.pt")
    config, _ = open_run(run)
    for name, model in [("list.pt", [1, 2]), ("nodet.pt", {"seg_head.weight": torch.zeros(1)})]:
        torch.save({"model": model}, tmp_path / name)
        with pytest.raises(CheckpointError) as info:
            load_model(config, tmp_path / name)
        assert str(info.value) == f"{tmp_path / name}: its 'model' entry is not a taskweight model state_dict"
    # a segmentation-only network has no anchors to look for
    seg_only = config.model_copy(update={"tasks": ("seg",)})
    state = torch.load(run / "best.pt", weights_only=True)["model"]
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith("det_head")}}, tmp_path / "seg.pt")
    assert load_model(seg_only, tmp_path / "seg.pt").tasks == ("seg",)


def _rec(ds: str, method: str, seed: int, m_ap: float, m_iou: float) -> CellRecord:
    return CellRecord(
        dataset=ds,
        method=method,
        seed=seed,
        mAP=m_ap,
        mIoU=m_iou,
        geometric_mean=math.sqrt(m_ap * m_iou),
        epochs=1,
        train_time_s=3600.0,
    )


RECORDS = [
    _rec("A", "equal", 0, 0.64, 0.81),  # GM 0.72
    _rec("A", "equal", 1, 0.49, 0.81),  # GM 0.63
    _rec("A", "equal", 2, 0.25, 1.00),  # GM 0.50   (a third seed on A only)
    _rec("B", "equal", 0, 0.25, 0.64),  # GM 0.40
    _rec("B", "equal", 1, 0.16, 0.64),  # GM 0.32
    _rec("A", "gradnorm", 0, 0.81, 1.00),  # GM 0.90   (gradnorm never ran on B)
    _rec("A", "gradnorm", 1, 0.64, 1.00),  # GM 0.80
    _rec("A", "meta", 0, 0.36, 1.00),  # GM 0.60
    CellRecord(dataset="A", method="meta", seed=1, status="failed", error="TrainingError: NaN"),
    _rec("B", "meta", 0, 0.49, 1.00),  # GM 0.70
    _rec("B", "meta", 1, 0.25, 1.00),  # GM 0.50
]


def test_overall_with_a_missing_dataset_unequal_seeds_and_a_failed_cell() -> None:
    s = summarize(RECORDS)
    equal, meta = s["overall"]["equal"], s["overall"]["meta"]
    # equal: A = (0.72 + 0.63 + 0.50) / 3 = 0.616667, B = (0.40 + 0.32) / 2 = 0.36 → (A + B) / 2
    assert equal["mean"] == pytest.approx((0.616667 + 0.36) / 2, abs=1e-6)
    # its std: seeds in both datasets (0, 1): (0.72 + 0.40)/2 = 0.56, (0.63 + 0.32)/2 = 0.475
    assert equal["seeds"] == [0, 1] and equal["values"] == pytest.approx([0.56, 0.475])
    assert equal["std"] == pytest.approx(0.085 / math.sqrt(2))
    # meta: A has seed 0 only (seed 1 failed) = 0.60; B = (0.70 + 0.50) / 2 = 0.60
    assert meta["mean"] == pytest.approx(0.60) and meta["n"] == 1 and meta["values"] == pytest.approx([0.65])
    assert s["table"]["A"]["meta"]["geometric_mean"]["n"] == 1
    # gradnorm covers A only: no Overall
    assert "gradnorm" not in s["overall"]
    # compute: 1 epoch and 1 hour a cell; Overall sums the per-dataset means
    assert equal["epochs"] == 2 and equal["train_hours"] == pytest.approx(2.0)
    assert s["failed"] == [{"dataset": "A", "method": "meta", "seed": 1, "error": "TrainingError: NaN"}]


def test_table2_bolds_the_best_complete_method_and_dashes_the_incomplete() -> None:
    lines = render_table2(summarize(RECORDS)).splitlines()
    header = next(line for line in lines if line.startswith("| Dataset"))
    titles = [c.strip() for c in header.strip("|").split("|")][2:]
    column = {t: i for i, t in enumerate(titles)}

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")][2:]

    overall = cells(next(line for line in lines if line.startswith("| Overall")))
    equal_col = next(i for t, i in column.items() if t.startswith("No task"))
    grad_col = next(i for t, i in column.items() if "GradNorm" in t)
    meta_col = next(i for t, i in column.items() if t.startswith("Meta") and "async" not in t.lower())
    assert overall[meta_col] == "**0.6000**"  # n = 1: no ± part
    assert overall[equal_col] == f"{(0.616667 + 0.36) / 2:.4f} ± {0.085 / math.sqrt(2):.4f}"
    assert overall[grad_col] == "–"
    a_gm = cells(next(line for line in lines if "Geometric mean" in line and "0.8500" in line))
    assert a_gm[grad_col] == "**0.8500 ± 0.0707**" and "**" not in a_gm[equal_col]
    b_gm = cells([line for line in lines if "Geometric mean" in line][1])
    assert b_gm[grad_col] == "–" and b_gm[meta_col] == "**0.6000 ± 0.1414**"
    assert any("A / meta / seed 1: TrainingError: NaN" in line for line in lines)
