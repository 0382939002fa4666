"""What the benchmark report shows a reader, checked against text and numbers worked out by hand.

Table I and Table II are compared in full with golden Markdown written out below: every number
in them is computed by hand in the comments beside the records. The figures are checked through
the matplotlib objects they build (titles, labels, plotted data) and the files ``write_report``
writes through their names, contents and pixel sizes.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskweight.bench.report import (
    _best,
    _cell,
    _compute,
    geometric_means_figure,
    mean_std,
    ordered_datasets,
    plot_geometric_means,
    plot_search_figures,
    plot_weight_histories,
    records_tasks,
    render_table1,
    render_table2,
    summarize,
    task_rows,
    weight_histories_figure,
    write_report,
)
from taskweight.bench.results import CellRecord


def _rec(ds: str, method: str, seed: int, **kw: Any) -> CellRecord:
    return CellRecord(dataset=ds, method=method, seed=seed, **kw)


def _hours(h: float) -> float:
    return h * 3600.0


def _plain(value: Any) -> Any:
    """``value`` with floats rounded to 10 places and NaN as the string "nan" (for exact comparisons)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else round(value, 10)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


# ---------------------------------------------------------------------------------------------- Table II
# Three datasets, first seen in the order Zeta, woodscape-depth, synth-kitti; the paper's order puts
# synth-kitti (KITTI) first, woodscape-depth (WoodScape) second and Zeta (no paper dataset) last.
# Methods: equal, handcrafted, uncertainty (synth-kitti only; its Zeta cell failed), meta_async.
# GM is given with each record (the table renders it, it does not recompute it).
SEG = {"tasks": ["seg"]}
WOOD = "woodscape-depth"


def _scored(ds: str, method: str, seed: int, gm: float, epochs: int, hours: float, **kw: Any) -> CellRecord:
    """A successful cell: its test geometric mean ``gm``, ``epochs`` and ``hours`` of training, other fields ``kw``."""
    return _rec(ds, method, seed, geometric_mean=gm, epochs=epochs, train_time_s=_hours(hours), **kw)


def _depth(delta1: float, abs_rel: float, rmse: float) -> dict[str, float]:
    return {"delta1": delta1, "AbsRel": abs_rel, "RMSE": rmse}


TABLE2_RECORDS = [
    # Zeta trains segmentation only: rows mIoU and "Geometric mean (mIoU)".
    _scored("Zeta", "equal", 0, 0.7, 3, 0.1, mIoU=0.7, **SEG),
    _scored("Zeta", "handcrafted", 0, 0.6, 3, 0.2, mIoU=0.6, **SEG),
    _rec("Zeta", "uncertainty", 0, status="failed", error="RuntimeError: boom"),
    # meta_async: mIoU 0.8, 0.9 → 0.85 ± 0.0707 (sample std of two values d apart: d/√2 = 0.1/√2); 12 ep, 0.3 h
    _scored("Zeta", "meta_async", 1, 0.9, 12, 0.3, mIoU=0.9, protocol="matched", **SEG),
    _scored("Zeta", "meta_async", 0, 0.8, 12, 0.3, mIoU=0.8, protocol="matched", **SEG),
    _rec("Zeta", "meta_async", 2, status="failed", error="TrainingError: NaN", protocol="paper"),
    # woodscape-depth trains det, seg and depth (the depth metrics say so): rows mAP, mIoU, δ<1.25, AbsRel,
    # RMSE and "Geometric mean (mAP · mIoU · δ<1.25)".
    # δ<1.25: 0.9 vs 0.90004 (4e-5 apart, within _best's 5e-5): both bold.
    # AbsRel (lower is better): 0.1 vs 0.10004: both bold; 0.2 not. RMSE: the lowest, 2.5, bold alone.
    _scored(WOOD, "equal", 0, 0.5, 10, 1.0, mAP=0.4, mIoU=0.6, **_depth(0.9, 0.1, 3.0)),
    _scored(WOOD, "handcrafted", 0, 0.55, 10, 0.5, mAP=0.45, mIoU=0.55, **_depth(0.90004, 0.10004, 2.5)),
    # meta_async: every metric equal over the two seeds (± 0.0000) but GM 0.6, 0.7 → 0.65 ± 0.0707; 40 ep, 4 h
    _scored(WOOD, "meta_async", 0, 0.6, 40, 4.0, mAP=0.5, mIoU=0.5, **_depth(0.8, 0.2, 4.0), protocol="paper"),
    _scored(WOOD, "meta_async", 1, 0.7, 40, 4.0, mAP=0.5, mIoU=0.5, **_depth(0.8, 0.2, 4.0), protocol="paper"),
    # synth-kitti: the paper's two tasks (rows mAP, mIoU, Geometric mean).
    # equal: mAP 0.64, 0.49 → 0.565 ± 0.1061 (0.15/√2); mIoU 0.81, 0.81 → 0.81 ± 0;
    #        GM 0.72, 0.63 → 0.675 ± 0.0636 (0.09/√2); epochs 10, 11 → 10.5; hours 0.5, 0.75 → 0.625
    _scored("synth-kitti", "equal", 0, 0.72, 10, 0.5, mAP=0.64, mIoU=0.81),
    _scored("synth-kitti", "equal", 1, 0.63, 11, 0.75, mAP=0.49, mIoU=0.81),
    # handcrafted: mAP 0.56504 is 4e-5 above equal's 0.565 (a tie: both bold, both print 0.5650);
    #              mIoU 0.81006 is 6e-5 above equal's 0.81 (no tie: only 0.8101 bold)
    _scored("synth-kitti", "handcrafted", 0, 0.5, 20, 1.0, mAP=0.56504, mIoU=0.81006),
    # uncertainty: an unknown protocol; it is no search, so the protocol line leaves it out
    _scored("synth-kitti", "uncertainty", 0, 0.5, 5, 0.25, mAP=0.3, mIoU=0.4, protocol="scratch"),
    # meta_async: mAP 0.5, 0.6 → 0.55 ± 0.0707; mIoU 0.8 ± 0; GM 0.7, 0.8 → 0.75 ± 0.0707;
    #             epochs 30, 50 → 40; hours 2, 3 → 2.5
    _scored("synth-kitti", "meta_async", 0, 0.7, 30, 2.0, mAP=0.5, mIoU=0.8, protocol="paper"),
    _scored("synth-kitti", "meta_async", 1, 0.8, 50, 3.0, mAP=0.6, mIoU=0.8, protocol="paper"),
]
# Overall (methods present on every dataset; uncertainty is not):
#   equal:       (0.675 + 0.5 + 0.7) / 3 = 0.625; seeds on all datasets: {0} → n = 1, no ± part
#                compute: 10.5 + 10 + 3 = 23.5 ep, 0.625 + 1.0 + 0.1 = 1.725 h
#   handcrafted: (0.5 + 0.55 + 0.6) / 3 = 0.55; n = 1; 20 + 10 + 3 = 33 ep, 1.0 + 0.5 + 0.2 = 1.7 h
#   meta_async:  (0.75 + 0.65 + 0.85) / 3 = 0.75, per seed: seed 0 (0.7 + 0.6 + 0.8) / 3 = 0.7,
#                seed 1 (0.8 + 0.7 + 0.9) / 3 = 0.8 → std 0.0707; 40 + 40 + 12 = 92 ep, 2.5 + 4 + 0.3 = 6.8 h
# Protocols of the search cells (meta_async, ok): matched (Zeta), paper (the others).
TABLE2_GOLDEN = """\
# Table II — task-weighting methods (test split; mean ± std over seeds)

Protocol: matched + paper — every column trains the epochs the preset gives it (the searches: evaluations × epochs \
each); baselines E epochs with best-val checkpoint selection; meta / meta_async N evaluations of e epochs, each \
fine-tuning the best model so far, best evaluation reported (paper §IV-C, §V).

| Dataset | Metric | No task weighting | Handcrafted | Uncertainty weighting | Meta-learning async backprop |
|---|---|---|---|---|---|
| synth-kitti | mAP (detection) | **0.5650 ± 0.1061** | **0.5650** | 0.3000 | 0.5500 ± 0.0707 |
|  | mIoU (segment) | 0.8100 ± 0.0000 | **0.8101** | 0.4000 | 0.8000 ± 0.0000 |
|  | Geometric mean | 0.6750 ± 0.0636 | 0.5000 | 0.5000 | **0.7500 ± 0.0707** |
|  | Compute (epochs, hours) | 10.5 ep, 0.625 h | 20 ep, 1.000 h | 5 ep, 0.250 h | 40 ep, 2.500 h |
| woodscape-depth | mAP (detection) | 0.4000 | 0.4500 | – | **0.5000 ± 0.0000** |
|  | mIoU (segment) | **0.6000** | 0.5500 | – | 0.5000 ± 0.0000 |
|  | δ<1.25 (depth) | **0.9000** | **0.9000** | – | 0.8000 ± 0.0000 |
|  | AbsRel (depth, lower is better) | **0.1000** | **0.1000** | – | 0.2000 ± 0.0000 |
|  | RMSE m (depth, lower is better) | 3.0000 | **2.5000** | – | 4.0000 ± 0.0000 |
|  | Geometric mean (mAP · mIoU · δ<1.25) | 0.5000 | 0.5500 | – | **0.6500 ± 0.0707** |
|  | Compute (epochs, hours) | 10 ep, 1.000 h | 10 ep, 0.500 h | – | 40 ep, 4.000 h |
| Zeta | mIoU (segment) | 0.7000 | 0.6000 | – | **0.8500 ± 0.0707** |
|  | Geometric mean (mIoU) | 0.7000 | 0.6000 | – | **0.8500 ± 0.0707** |
|  | Compute (epochs, hours) | 3 ep, 0.100 h | 3 ep, 0.200 h | – | 12 ep, 0.300 h |
| Overall | Geometric mean | 0.6250 | 0.5500 | – | **0.7500 ± 0.0707** |
|  | Compute, all datasets | 23.5 ep, 1.725 h | 33 ep, 1.700 h | – | 92 ep, 6.800 h |

Overall = arithmetic mean over datasets of the per-dataset geometric means (as in the paper).
Compute = training epochs and hours in training steps (validation and testing excluded) a column spent, mean over \
seeds; a search counts all its evaluations; Overall: summed over the datasets.

Failed cells:
- Zeta / uncertainty / seed 0: RuntimeError: boom
- Zeta / meta_async / seed 2: TrainingError: NaN
"""


def test_table2_renders_every_dataset_row_bold_best_and_compute_as_worked_out_by_hand() -> None:
    assert render_table2(summarize(TABLE2_RECORDS)) == TABLE2_GOLDEN


def test_table2_names_an_unknown_protocol_by_itself_and_uses_all_cells_without_a_search() -> None:
    # no search or control cell: the protocols are those of all cells, an unknown one stands for itself
    records = [
        _rec("A", "equal", 0, mAP=0.5, mIoU=0.5, geometric_mean=0.5, epochs=2, train_time_s=_hours(0.5)),
        _rec("A", "handcrafted", 0, mAP=0.25, mIoU=1.0, geometric_mean=0.5, epochs=2, train_time_s=_hours(0.5)),
        _rec("A", "handcrafted", 1, mAP=0.5, mIoU=1.0, geometric_mean=0.7, epochs=4, train_time_s=_hours(1.5)),
    ]
    records[1].protocol = records[2].protocol = "custom"
    # equal: 0.5 everywhere; handcrafted: mAP 0.375 ± 0.1768 (0.25/√2), mIoU 1 ± 0, GM 0.6 ± 0.1414 (0.2/√2),
    # 3 ep, 1 h. Overall: equal 0.5 (n = 1), handcrafted 0.6 ± 0.1414 (seeds 0, 1 both on A).
    golden = """\
# Table II — task-weighting methods (test split; mean ± std over seeds)

Protocol: custom + matched — custom; every column trains the epochs the preset gives it (the searches: evaluations \
× epochs each).

| Dataset | Metric | No task weighting | Handcrafted |
|---|---|---|---|
| A | mAP (detection) | **0.5000** | 0.3750 ± 0.1768 |
|  | mIoU (segment) | 0.5000 | **1.0000 ± 0.0000** |
|  | Geometric mean | 0.5000 | **0.6000 ± 0.1414** |
|  | Compute (epochs, hours) | 2 ep, 0.500 h | 3 ep, 1.000 h |
| Overall | Geometric mean | 0.5000 | **0.6000 ± 0.1414** |
|  | Compute, all datasets | 2 ep, 0.500 h | 3 ep, 1.000 h |

Overall = arithmetic mean over datasets of the per-dataset geometric means (as in the paper).
Compute = training epochs and hours in training steps (validation and testing excluded) a column spent, mean over \
seeds; a search counts all its evaluations; Overall: summed over the datasets.
"""
    assert render_table2(summarize(records)) == golden


NOTES = """
Overall = arithmetic mean over datasets of the per-dataset geometric means (as in the paper).
Compute = training epochs and hours in training steps (validation and testing excluded) a column spent, mean over \
seeds; a search counts all its evaluations; Overall: summed over the datasets.
"""


def _stat(mean: float, std: float = 0.0, n: int = 1) -> dict[str, Any]:
    return {"mean": mean, "std": std, "n": n, "seeds": list(range(n)), "values": [mean] * n}


def test_table2_of_a_summary_without_protocols_or_tasks_uses_the_paper_rows_and_no_protocol_line() -> None:
    """A summary written before ``protocols`` and ``tasks`` existed (hand-built here): the paper's two tasks'
    rows and no protocol line; a dataset missing from ``tasks`` gets the same rows."""
    cell = {
        "mAP": _stat(0.5),
        "mIoU": _stat(0.25, 0.125, 2),
        "geometric_mean": _stat(0.35),
        "epochs": _stat(7.0),
        "train_hours": _stat(0.125),
    }
    legacy = {
        "datasets": ["A"],
        "methods": ["equal", "gradnorm"],
        "table": {"A": {"equal": cell}},
        "overall": {"equal": {**_stat(0.35), "epochs": 7.0, "train_hours": 0.125}},
        "failed": [],
    }
    golden = (
        """\
# Table II — task-weighting methods (test split; mean ± std over seeds)

| Dataset | Metric | No task weighting | GradNorm |
|---|---|---|---|
| A | mAP (detection) | **0.5000** | – |
|  | mIoU (segment) | **0.2500 ± 0.1250** | – |
|  | Geometric mean | **0.3500** | – |
|  | Compute (epochs, hours) | 7 ep, 0.125 h | – |
| Overall | Geometric mean | **0.3500** | – |
|  | Compute, all datasets | 7 ep, 0.125 h | – |
"""
        + NOTES
    )
    assert render_table2(legacy) == golden
    assert render_table2({**legacy, "tasks": {"B": ["seg"]}, "protocols": []}) == golden


def test_table2_of_no_results_is_the_empty_table() -> None:
    golden = (
        """\
# Table II — task-weighting methods (test split; mean ± std over seeds)

| Dataset | Metric |  |
|---|---|
| Overall | Geometric mean |  |
|  | Compute, all datasets |  |
"""
        + NOTES
    )
    assert render_table2(summarize([])) == golden


def test_best_takes_the_highest_within_an_absolute_tolerance_of_5e_5() -> None:
    assert _best({}) == set() and _best({"a": math.nan}) == set()
    assert _best({"a": 0.7, "b": 0.70004, "c": 0.69994, "d": math.nan}) == {"a", "b"}  # c is 1e-4 below
    # the tolerance is absolute: large values (RMSE in mm, say) get no relative slack
    assert _best({"a": 1e6, "b": 1e6 - 1e-4}) == {"a"}
    assert _best({"a": -0.1, "b": -0.10004, "c": -0.2}) == {"a", "b"}


def test_cells_and_compute_texts() -> None:
    assert _cell(None, True) == "–"
    assert _cell({"mean": math.nan, "std": 0.0, "n": 0}, True) == "–"
    assert _cell({"mean": 0.123456, "std": 0.01, "n": 1}, False) == "0.1235"
    assert _cell({"mean": 0.123456, "std": 0.01, "n": 2}, True) == "**0.1235 ± 0.0100**"
    assert _compute(None, 1.0) == "–" and _compute(1.0, None) == "–" and _compute(None, None) == "–"
    assert _compute(12.0, 0.5) == "12 ep, 0.500 h"
    assert _compute(1234.5, 10.0 / 3) == "1234 ep, 3.333 h"  # 4 significant digits, 1234.5 rounds to even


# ---------------------------------------------------------------------------------------------- summarize
def test_summary_holds_per_seed_values_in_seed_order_and_overall_over_common_seeds() -> None:
    records = [
        # equal on A, listed seed 2, 0, 1: mAP 1.0, 0.0, 0.5 → mean 0.5, sample std 0.5
        _rec("A", "equal", 2, mAP=1.0, mIoU=0.25, geometric_mean=0.5, epochs=3, train_time_s=_hours(1.0)),
        _rec("A", "equal", 0, mAP=0.0, mIoU=0.25, geometric_mean=0.0, epochs=1, train_time_s=_hours(0.5)),
        _rec("A", "equal", 1, mAP=0.5, mIoU=0.25, geometric_mean=0.25, epochs=2, train_time_s=_hours(1.5)),
        _rec("B", "equal", 1, mAP=0.5, mIoU=0.5, geometric_mean=0.5, epochs=4, train_time_s=_hours(2.0)),
        # gradnorm: A seed 0 only, B seed 1 only: no seed on both → Overall n = 0, std NaN
        _rec("A", "gradnorm", 0, mAP=0.5, mIoU=0.5, geometric_mean=0.5, epochs=1, train_time_s=_hours(1.0)),
        _rec("B", "gradnorm", 1, mAP=0.25, mIoU=0.25, geometric_mean=0.25, epochs=1, train_time_s=_hours(1.0)),
        # meta trains depth on B only; its other cells fail
        _rec("B", "meta", 0, mAP=0.5, mIoU=0.5, delta1=0.75, AbsRel=0.25, RMSE=2.0, geometric_mean=0.5),
        _rec("A", "meta", 0, status="failed", error="E1", weights={"det": 1.0}),
        _rec("C", "meta", 0, status="failed", error="E2"),
    ]
    records[6].protocol = "paper"

    def stat(seeds: list[int], values: list[float], mean: float, std: float) -> dict[str, Any]:
        return {"mean": mean, "std": std, "n": len(values), "seeds": seeds, "values": values}

    expected = {
        "datasets": ["A", "B"],
        "methods": ["equal", "gradnorm", "meta"],
        "protocols": ["paper"],
        "tasks": {"A": ["det", "seg"], "B": ["det", "seg", "depth"]},
        "table": {
            "A": {
                "equal": {
                    "mAP": stat([0, 1, 2], [0.0, 0.5, 1.0], 0.5, 0.5),
                    "mIoU": stat([0, 1, 2], [0.25] * 3, 0.25, 0.0),
                    "geometric_mean": stat([0, 1, 2], [0.0, 0.25, 0.5], 0.25, 0.25),
                    "epochs": stat([0, 1, 2], [1.0, 2.0, 3.0], 2.0, 1.0),
                    "train_hours": stat([0, 1, 2], [0.5, 1.5, 1.0], 1.0, 0.5),
                },
                "gradnorm": {
                    "mAP": stat([0], [0.5], 0.5, 0.0),
                    "mIoU": stat([0], [0.5], 0.5, 0.0),
                    "geometric_mean": stat([0], [0.5], 0.5, 0.0),
                    "epochs": stat([0], [1.0], 1.0, 0.0),
                    "train_hours": stat([0], [1.0], 1.0, 0.0),
                },
            },
            "B": {
                "equal": {
                    "mAP": stat([1], [0.5], 0.5, 0.0),
                    "mIoU": stat([1], [0.5], 0.5, 0.0),
                    "geometric_mean": stat([1], [0.5], 0.5, 0.0),
                    "epochs": stat([1], [4.0], 4.0, 0.0),
                    "train_hours": stat([1], [2.0], 2.0, 0.0),
                },
                "gradnorm": {
                    "mAP": stat([1], [0.25], 0.25, 0.0),
                    "mIoU": stat([1], [0.25], 0.25, 0.0),
                    "geometric_mean": stat([1], [0.25], 0.25, 0.0),
                    "epochs": stat([1], [1.0], 1.0, 0.0),
                    "train_hours": stat([1], [1.0], 1.0, 0.0),
                },
                "meta": {
                    "mAP": stat([0], [0.5], 0.5, 0.0),
                    "mIoU": stat([0], [0.5], 0.5, 0.0),
                    "delta1": stat([0], [0.75], 0.75, 0.0),
                    "AbsRel": stat([0], [0.25], 0.25, 0.0),
                    "RMSE": stat([0], [2.0], 2.0, 0.0),
                    "geometric_mean": stat([0], [0.5], 0.5, 0.0),
                    "epochs": stat([0], [0.0], 0.0, 0.0),
                    "train_hours": stat([0], [0.0], 0.0, 0.0),
                },
            },
        },
        "overall": {
            # equal: (0.25 + 0.5) / 2 = 0.375; seed 1 is on both: (0.25 + 0.5) / 2 = 0.375, n = 1, std 0
            #        compute: 2 + 4 = 6 ep, 1 + 2 = 3 h
            "equal": {**stat([1], [0.375], 0.375, 0.0), "epochs": 6.0, "train_hours": 3.0},
            # gradnorm: (0.5 + 0.25) / 2 = 0.375; no common seed
            "gradnorm": {**stat([], [], 0.375, math.nan), "epochs": 2.0, "train_hours": 2.0},
        },
        "failed": [
            {"dataset": "A", "method": "meta", "seed": 0, "error": "E1"},
            {"dataset": "C", "method": "meta", "seed": 0, "error": "E2"},
        ],
    }
    summary = summarize(records)
    assert _plain(summary) == _plain(expected)
    assert list(summary["table"]["B"]["meta"]) == list(expected["table"]["B"]["meta"])  # rows in table order


def test_summary_protocols_are_the_searches_and_controls_else_all_cells() -> None:
    def protocols(*cells: tuple[str, str, str]) -> list[str]:
        records = [_rec("A", m, 0, status=status, protocol=p, geometric_mean=0.5) for m, p, status in cells]
        return summarize(records)["protocols"]

    assert protocols(("equal", "x", "ok"), ("meta", "paper", "ok"), ("meta_async", "zz", "failed")) == ["paper"]
    assert protocols(("equal", "x", "ok"), ("equal_control", "c", "ok")) == ["c"]
    assert protocols(("gradnorm", "y", "ok"), ("equal", "x", "ok"), ("meta", "paper", "failed")) == ["x", "y"]
    assert protocols() == []


def test_mean_std_rows_datasets_and_tasks() -> None:
    mean, std = mean_std([])
    assert math.isnan(mean) and math.isnan(std)
    assert mean_std([2.0]) == (2.0, 0.0)
    assert mean_std([0.0, 0.5, 1.0]) == (0.5, 0.5)
    assert task_rows(["seg", "det"]) == (
        ("mAP", "mAP (detection)"),
        ("mIoU", "mIoU (segment)"),
        ("geometric_mean", "Geometric mean"),
    )
    assert task_rows(["depth", "det"]) == (
        ("mAP", "mAP (detection)"),
        ("delta1", "δ<1.25 (depth)"),
        ("AbsRel", "AbsRel (depth, lower is better)"),
        ("RMSE", "RMSE m (depth, lower is better)"),
        ("geometric_mean", "Geometric mean (mAP · δ<1.25)"),
    )
    assert records_tasks([]) == ("det", "seg")
    assert records_tasks([_rec("A", "equal", 0, tasks=["seg"]), _rec("A", "equal", 1, delta1=0.5)]) == (
        "det",
        "seg",
        "depth",
    )
    names = ["Zeta", "my-woodscape", "Alpha", "cityscapes-fine", "Zeta", "kitti-raw"]
    assert ordered_datasets([_rec(n, "equal", 0) for n in names]) == [
        "kitti-raw",
        "cityscapes-fine",
        "my-woodscape",
        "Zeta",
        "Alpha",
    ]


# ---------------------------------------------------------------------------------------------- Table I
KITTI = "synth-kitti"
STEPS, EPOCHS = {"async_unit": "step"}, {"async_unit": "epoch"}
TABLE1_RECORDS = [
    # Zeta: no cell logged weights → the paper's rows (w_s, w_d, f_s, f_d), all dashes
    _rec("Zeta", "equal", 0),
    # a failed cell (its weights, frequencies and unit) and a dataset of failed cells only: left out
    _rec("Zeta", "meta", 1, status="failed", weights={"det": 5.0}, frequencies={"seg": 9}, async_unit="minute"),
    _rec("Omega", "meta_async", 0, status="failed", weights={"det": 0.5, "seg": 0.5}),
    # woodscape-depth: det, seg, depth → rows w_s, w_d, w_depth, f_s, f_d, f_depth (the paper's table order)
    _rec(WOOD, "handcrafted", 0, weights={"det": 1.0, "seg": 50.0, "depth": 2.0}, async_unit="hour"),
    _rec(
        WOOD,
        "meta_async",
        0,
        weights={"seg": 0.5, "det": 0.3, "depth": 0.2},
        frequencies={"det": 1, "seg": 3},
        **EPOCHS,
    ),
    # synth-kitti: seg, det. handcrafted w_s (60 + 80) / 2 = 70; meta_async w_s (0.9 + 0.7) / 2 = 0.8,
    # w_d (0.1 + 0.3) / 2 = 0.2, f_s (7 + 4) / 2 = 5.5, f_d (1 + 2) / 2 = 1.5
    _rec(KITTI, "equal", 0, weights={"det": 1.0, "seg": 1.0}),
    _rec(KITTI, "handcrafted", 0, weights={"det": 1.0, "seg": 60.0}),
    _rec(KITTI, "handcrafted", 1, weights={"det": 1.0, "seg": 80.0}),
    _rec(KITTI, "meta", 0, weights={"det": 0.25, "seg": 0.75}),
    _rec(KITTI, "gradnorm", 0, weights={"det": 9.0, "seg": 9.0}),  # no Table I column
    _rec(KITTI, "meta_async", 0, weights={"det": 0.1, "seg": 0.9}, frequencies={"det": 1, "seg": 7}, **STEPS),
    _rec(KITTI, "meta_async", 1, weights={"det": 0.3, "seg": 0.7}, frequencies={"det": 2, "seg": 4}, **STEPS),
]
# units: of the ok cells with frequencies: epoch, step (not handcrafted's "hour": it has none; not the failed "minute")
TABLE1_GOLDEN = """\
# Table I — task weights and async backprop frequencies found (mean over seeds)

| Dataset | | No task weighting | Handcrafted | Meta-learning | Meta-learning async backprop |
|---|---|---|---|---|---|
| synth-kitti | w_s | 1 | 70 | 0.75 | 0.8 |
|  | w_d | 1 | 1 | 0.25 | 0.2 |
|  | async f_s | – | – | – | 5.5 |
|  | async f_d | – | – | – | 1.5 |
| woodscape-depth | w_s | – | 50 | – | 0.5 |
|  | w_d | – | 1 | – | 0.3 |
|  | w_depth | – | 2 | – | 0.2 |
|  | async f_s | – | – | – | 3 |
|  | async f_d | – | – | – | 1 |
|  | async f_depth | – | – | – | – |
| Zeta | w_s | – | – | – | – |
|  | w_d | – | – | – | – |
|  | async f_s | – | – | – | – |
|  | async f_d | – | – | – | – |

meta / meta_async weights are normalised to sum to 1 (paper §IV-C); handcrafted: w_det = 1.
async f: the backprop period of the task, in epochs and steps (paper §IV-D).
"""


def test_table1_renders_weights_and_frequencies_per_dataset_as_worked_out_by_hand() -> None:
    assert render_table1(TABLE1_RECORDS) == TABLE1_GOLDEN


def test_table1_without_async_units_and_with_four_significant_digits() -> None:
    # meta_async 1/3 and 2/3 print with 4 significant digits; no cell names its async unit: no unit line
    records = [
        _rec("A", "meta_async", 0, weights={"det": 1 / 3, "seg": 2 / 3}, frequencies={"det": 1, "seg": 1234}),
        _rec("A", "meta", 0, weights={"det": 0.5, "seg": 0.5}),
    ]
    golden = """\
# Table I — task weights and async backprop frequencies found (mean over seeds)

| Dataset | | Meta-learning | Meta-learning async backprop |
|---|---|---|---|
| A | w_s | 0.5 | 0.6667 |
|  | w_d | 0.5 | 0.3333 |
|  | async f_s | – | 1234 |
|  | async f_d | – | 1 |

meta / meta_async weights are normalised to sum to 1 (paper §IV-C); handcrafted: w_det = 1.
"""
    assert render_table1(records) == golden
    assert render_table1([]) == (
        "# Table I — task weights and async backprop frequencies found (mean over seeds)\n\n| Dataset | |  |\n"
        "|---|---|\n\nmeta / meta_async weights are normalised to sum to 1 (paper §IV-C); handcrafted: w_det = 1.\n"
    )


# ---------------------------------------------------------------------------------------------- figures
def test_geometric_mean_figure_places_each_dataset_bar_and_error_bar() -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    fig = geometric_means_figure(summarize(TABLE2_RECORDS))
    try:
        (ax,) = fig.axes
        bars = [c for c in ax.containers if hasattr(c, "patches")]
        assert len(bars) == 3  # one bar group per dataset, in the paper's order
        width = 0.8 / 3
        expected = {
            # dataset: (GM means per method equal, handcrafted, uncertainty, meta_async; stds)
            0: ([0.675, 0.5, 0.5, 0.75], [0.09 / math.sqrt(2), 0.0, 0.0, 0.1 / math.sqrt(2)]),
            1: ([0.5, 0.55, math.nan, 0.65], [0.0, 0.0, 0.0, 0.1 / math.sqrt(2)]),
            2: ([0.7, 0.6, math.nan, 0.85], [0.0, 0.0, 0.0, 0.1 / math.sqrt(2)]),
        }
        for i, group in enumerate(bars):
            means, stds = expected[i]
            assert len(group.patches) == 4
            heights = [p.get_height() for p in group.patches]
            assert np.allclose(heights, means, equal_nan=True)
            assert np.allclose([p.get_width() for p in group.patches], [width] * 4)
            centers = [p.get_x() + p.get_width() / 2 for p in group.patches]
            assert np.allclose(centers, [j + i * width for j in range(4)])
            segments = group.errorbar.lines[2][0].get_segments()
            for seg, mean, std, x in zip(segments, means, stds, centers, strict=True):
                if math.isnan(mean):  # a method missing from the dataset: no bar, no error bar
                    assert len(seg) == 0
                else:  # a vertical line at the bar's centre from mean − std to mean + std
                    assert np.allclose(seg, [[x, mean - std], [x, mean + std]])
        assert np.allclose(ax.get_xticks(), [j + width for j in range(4)])  # under the middle dataset's bar
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "No task weighting",
            "Handcrafted",
            "Uncertainty weighting",
            "Meta-learning async backprop",
        ]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["synth-kitti", "woodscape-depth", "Zeta"]
        assert ax.get_ylabel() == "geometric mean of the tasks' scores (test)"  # not the paper's two tasks
        assert ax.get_title() == "Task-weighting methods: mean ± std over seeds"
        assert tuple(fig.get_size_inches()) == pytest.approx((1.1 * 4 * 3 / 2 + 3, 4))
    finally:
        plt.close(fig)


def test_geometric_mean_figure_of_the_paper_tasks_and_of_one_dataset() -> None:
    import matplotlib.pyplot as plt

    records = [_rec("A", "equal", 0, mAP=0.25, mIoU=1.0, geometric_mean=0.5)]
    summary = summarize(records)
    for s in (summary, {k: v for k, v in summary.items() if k != "tasks"}):  # a summary without tasks: two
        fig = geometric_means_figure(s)
        ax = fig.axes[0]
        assert ax.get_ylabel() == "geometric mean of mAP and mIoU (test)"
        (group,) = [c for c in ax.containers if hasattr(c, "patches")]
        (bar,) = group.patches
        assert bar.get_height() == 0.5 and bar.get_width() == pytest.approx(0.8)
        assert list(ax.get_xticks()) == pytest.approx([0.0])
        assert tuple(fig.get_size_inches()) == pytest.approx((6, 4))  # at least 6 inches wide
        plt.close(fig)
    # six methods on one dataset: 1.1 inches a bar, half of them, + 3 = 6.3 inches wide
    methods = ["equal", "handcrafted", "uncertainty", "gradnorm", "meta", "meta_async"]
    fig = geometric_means_figure(summarize([_rec("A", m, 0, mAP=0.5, mIoU=0.5, geometric_mean=0.5) for m in methods]))
    assert tuple(fig.get_size_inches()) == pytest.approx((6.3, 4))
    assert len(fig.axes[0].patches) == 6
    plt.close(fig)


def _history(*samples: tuple[int, dict[str, float | None]]) -> list[Any]:
    return [[step, weights] for step, weights in samples]


def test_weight_history_figure_draws_one_panel_per_method_with_each_tasks_weights() -> None:
    import matplotlib.pyplot as plt

    last = (20, {"det": 1.0, "seg": 5.0})
    records = [
        # equal: weights 1 → linear scale; its first cell is dataset A (before B), seed 0
        _rec("B", "equal", 0, weight_history=_history((0, {"det": 7.0, "seg": 7.0}))),
        _rec("A", "equal", 1, weight_history=_history((0, {"det": 3.0, "seg": 3.0}))),
        _rec("A", "equal", 0, weight_history=_history((0, {"det": 1.0, "seg": 1.0}), (5, {"det": 1.0, "seg": 1.0}))),
        # handcrafted: largest weight exactly 20 → linear; a missing weight (None) is skipped; seg lacks step 10
        _rec("A", "handcrafted", 0, weight_history=_history((0, {"det": 1.0, "seg": 20.0}), (10, {"det": None}), last)),
        # uncertainty: 20.5 > 20 → log scale
        _rec("A", "uncertainty", 2, weight_history=_history((0, {"det": 1.0, "seg": 20.5}))),
        # meta_async: three tasks, drawn in sorted order depth, det, seg with -, --, :
        _rec("C", "meta_async", 3, weight_history=_history((1, {"seg": 0.5, "det": 0.25, "depth": 0.25}))),
        # not drawn: a failed cell and a cell without history
        _rec("A", "gradnorm", 0, status="failed", weight_history=_history((0, {"det": 1.0}))),
        _rec("A", "meta", 0),
    ]
    fig = weight_histories_figure(records)
    try:
        axes = fig.axes
        assert len(axes) == 6  # 4 methods: 3 columns, 2 rows; the last two panels are blank
        assert [ax.get_subplotspec().get_geometry()[:2] for ax in axes] == [(2, 3)] * 6
        assert [ax.axison for ax in axes] == [True, True, True, True, False, False]
        equal, handcrafted, uncertainty, meta_async = axes[:4]
        assert [ax.get_title() for ax in axes[:4]] == [
            "No task weighting (A, seed 0)",
            "Handcrafted (A, seed 0)",
            "Uncertainty weighting (A, seed 2)",
            "Meta-learning async backprop (C, seed 3)",
        ]
        assert [ax.get_xlabel() for ax in axes[:4]] == ["step"] * 4
        assert [ax.get_yscale() for ax in axes[:4]] == ["linear", "linear", "log", "linear"]

        def drawn(ax: Any) -> list[tuple[str, list[float], list[float], str, float]]:
            return [
                (
                    line.get_label(),
                    list(line.get_xdata()),
                    [None if y is None or math.isnan(y) else float(y) for y in line.get_ydata()],  # None: a gap
                    line.get_linestyle(),
                    line.get_linewidth(),
                )
                for line in ax.get_lines()
            ]

        # the first line is drawn solid and thicker, the next dashed, so coinciding curves both show
        assert drawn(equal) == [("w_det", [0, 5], [1.0, 1.0], "-", 2.5), ("w_seg", [0, 5], [1.0, 1.0], "--", 1.5)]
        assert drawn(handcrafted) == [
            ("w_det", [0, 10, 20], [1.0, None, 1.0], "-", 2.5),
            ("w_seg", [0, 10, 20], [20.0, None, 5.0], "--", 1.5),
        ]
        assert drawn(meta_async) == [
            ("w_depth", [1], [0.25], "-", 2.5),
            ("w_det", [1], [0.25], "--", 1.5),
            ("w_seg", [1], [0.5], ":", 1.5),
        ]
        assert [t.get_text() for t in meta_async.get_legend().get_texts()] == ["w_depth", "w_det", "w_seg"]
        assert [line.get_label() for line in uncertainty.get_lines()] == ["w_det", "w_seg"]
        assert tuple(fig.get_size_inches()) == pytest.approx((4.2 * 3, 3 * 2))
    finally:
        plt.close(fig)


def test_weight_history_figure_of_one_method_and_of_none() -> None:
    import matplotlib.pyplot as plt

    fig = weight_histories_figure([_rec("A", "meta", 0, weight_history=_history((0, {"det": 0.5, "seg": 0.5})))])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "Meta-learning (A, seed 0)"
    plt.close(fig)
    assert weight_histories_figure([_rec("A", "meta", 0)]) is None


def test_plots_are_written_at_their_resolution_and_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    plot_geometric_means(summarize(TABLE2_RECORDS), tmp_path / "gm.png")
    # 9.6 × 4 inches at 120 dpi (3 datasets, 4 methods: 1.1 · 4 · 3 / 2 + 3 = 9.6 inches wide)
    assert _png_size(tmp_path / "gm.png") == (round(9.6 * 120), 4 * 120)
    two = [
        _rec("A", "equal", 0, weight_history=_history((0, {"det": 1.0, "seg": 1.0}))),
        _rec("A", "meta", 0, weight_history=_history((0, {"det": 0.5, "seg": 0.5}))),
    ]
    plot_weight_histories(two, tmp_path / "w.png")
    assert _png_size(tmp_path / "w.png") == (round(2 * 4.2 * 110), 3 * 110)  # 2 columns, 1 row at 110 dpi
    plot_weight_histories([_rec("A", "meta", 0)], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    assert plt.get_fignums() == open_before  # every figure closed


# ---------------------------------------------------------------------------------------------- search figures
FIGURES = ("fig3a_target.png", "fig3b_metrics.png", "fig4a_weights.png", "fig4b_frequencies.png")


def _write_search(folder: Path, fitness: tuple[float, float], unit: str | None) -> None:
    from taskweight.search.journal import JournalRecord, write_journal

    search = folder / "search"
    search.mkdir(parents=True)
    write_journal(
        search / "journal.jsonl",
        [
            JournalRecord(
                index=i,
                genes={},
                config={"weights": {"det": 0.4, "seg": 0.6}, "frequencies": {"det": 1, "seg": 3}},
                metrics={"mAP": f, "mIoU": f},
                fitness=f,
            )
            for i, f in enumerate(fitness)
        ],
    )
    if unit is not None:
        (search / "search_meta.json").write_text(json.dumps({"evaluator": {"async_unit": unit}}))


def _search_records(results: Path) -> list[CellRecord]:
    """meta_async cells of three datasets (and others that must not be plotted), their searches under ``results``."""
    records = [
        # WoodScape, first seen: its first ok seed is 1 (seed 0 failed); no search_meta.json → unit "step"
        _rec("woodscape-x", "meta_async", 2, run_dir="w2", protocol="matched"),
        _rec("woodscape-x", "meta_async", 1, run_dir="w1", protocol="matched"),
        _rec("woodscape-x", "meta_async", 0, run_dir="w0", status="failed"),
        # KITTI: its first seed has no journal → no figures (though seed 1 has one)
        _rec("kitti-x", "meta_async", 1, run_dir="k1"),
        _rec("kitti-x", "meta_async", 0, run_dir="k0"),
        # Cityscapes: seeds 1 then 0 → seed 0, an "epoch" search
        _rec("cityscapes-x", "meta_async", 1, run_dir="c1", protocol="paper"),
        _rec("cityscapes-x", "meta_async", 0, run_dir="c0", protocol="paper"),
        # another method's search: not plotted
        _rec("Zeta", "meta", 0, run_dir="z0"),
        _rec("kitti-x", "equal", 0, run_dir="ke0"),
    ]
    for i, r in enumerate(records):  # test scores, for the tables write_report writes beside the figures
        r.mAP, r.mIoU, r.geometric_mean = 0.5, 0.5 + i / 100, math.sqrt(0.5 * (0.5 + i / 100))
    units = {"w2": "epoch", "w1": None, "w0": "epoch", "k1": "epoch", "c1": "step", "c0": "epoch", "z0": "epoch"}
    for run_dir, unit in {**units, "ke0": "epoch"}.items():
        _write_search(results / run_dir, (0.5, 0.75), unit)
    return records


def _spy_plot_search(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    import taskweight.search.report as search_report

    calls: list[tuple[Any, ...]] = []
    real = search_report.plot_search

    def spy(out_dir: Any, journal: Any, **kw: Any) -> dict[str, Path]:
        calls.append((Path(out_dir), [r.fitness for r in journal], kw["unit"], kw["prefix"], kw["title"]))
        return real(out_dir, journal, **kw)

    monkeypatch.setattr(search_report, "plot_search", spy)
    return calls


def test_search_figures_come_from_each_datasets_first_seed_meta_async_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results, out = tmp_path / "results", tmp_path / "out"
    out.mkdir()
    records = _search_records(results)
    calls = _spy_plot_search(monkeypatch)
    written = plot_search_figures(out, records, results)
    assert calls == [
        (out, [0.5, 0.75], "epoch", "cityscapes-x_", "cityscapes-x, meta_async seed 0, paper protocol"),
        (out, [0.5, 0.75], "step", "woodscape-x_", "woodscape-x, meta_async seed 1, matched protocol"),
    ]
    expected = [out / f"{ds}_{name}" for ds in ("cityscapes-x", "woodscape-x") for name in FIGURES]
    assert written == expected
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in expected)
    assert plot_search_figures(out, [r for r in records if r.method != "meta_async"], results) == []


def test_write_report_writes_tables_summary_comparison_and_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    from taskweight.bench.paper import compare_with_paper, render_paper_comparison
    from taskweight.bench.significance import render_significance, significance
    from taskweight.jsonio import to_jsonable

    results = tmp_path / "results"
    searches = _search_records(results)
    records = [replace(r) for r in (*TABLE2_RECORDS, *searches)]
    records[0].weight_history = _history((0, {"det": 1.0, "seg": 1.0}))
    records[1].weights = {"det": 1.0, "seg": 42.0}
    calls = _spy_plot_search(monkeypatch)
    open_before = plt.get_fignums()

    summary = write_report(results, records)  # source: the output folder itself
    expected_summary = summarize(records)
    assert _plain(summary) == _plain(expected_summary)
    comparison, paired = compare_with_paper(expected_summary), significance(expected_summary)
    assert comparison and paired  # the comparison files are not empty ones
    assert (results / "table2.md").read_text() == render_table2(expected_summary)
    assert (results / "table1.md").read_text() == render_table1(records)
    assert (results / "paper_comparison.md").read_text() == (
        render_paper_comparison(comparison, expected_summary["methods"]) + "\n" + render_significance(paired)
    )
    stored = json.loads((results / "summary.json").read_text())
    assert stored == to_jsonable({**expected_summary, "paper_comparison": comparison, "significance": paired})
    figures = sorted(f"{ds}_{name}" for ds in ("cityscapes-x", "woodscape-x") for name in FIGURES)
    files = {"table2.md", "table1.md", "paper_comparison.md", "summary.json", "gm_by_method.png"}
    assert sorted(p.name for p in results.iterdir() if p.is_file()) == sorted(
        [*files, "weights_over_training.png", *figures]
    )
    assert [c[0] for c in calls] == [results, results]
    assert plt.get_fignums() == open_before

    # another source folder: the figures come from there; search_figures=False: none
    calls.clear()
    other = tmp_path / "other"
    other.mkdir()
    write_report(other, records, source=str(results))
    assert sorted(p.name for p in other.iterdir()) == sorted([*files, "weights_over_training.png", *figures])
    assert [c[0] for c in calls] == [other, other]
    bare = tmp_path / "bare"
    bare.mkdir()
    write_report(bare, records, source=results, search_figures=False)
    assert sorted(p.name for p in bare.iterdir()) == sorted([*files, "weights_over_training.png"])

    # nothing succeeded: the tables and summary, but no plots
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_report(empty, [_rec("A", "equal", 0, status="failed", error="x")])["datasets"] == []
    assert sorted(p.name for p in empty.iterdir()) == sorted(files - {"gm_by_method.png"})
