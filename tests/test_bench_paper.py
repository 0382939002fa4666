"""The paper's Table II and the comparison with a benchmark, against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from taskweight.bench.paper import (
    PAPER_OVERALL,
    PAPER_TABLE2,
    average_ranks,
    compare_with_paper,
    meta_async_margin,
    paper_dataset,
    render_paper_comparison,
    spearman,
)
from taskweight.bench.report import summarize
from taskweight.bench.results import CellRecord


def test_paper_table_is_consistent_with_itself():
    for ds, rows in PAPER_TABLE2.items():
        for m, v in rows.items():  # the paper's GM column is √(mAP·mIoU), rounded to 4 digits
            assert math.sqrt(v["mAP"] * v["mIoU"]) == pytest.approx(v["geometric_mean"], abs=6e-4), (ds, m)
    for m, overall in PAPER_OVERALL.items():  # its Overall row is the mean of the three GMs
        assert sum(PAPER_TABLE2[ds][m]["geometric_mean"] for ds in PAPER_TABLE2) / 3 == pytest.approx(overall, abs=2e-4)
    # the headline "+3 %": meta_async 0.6095 against the best baseline, weight learning 0.5818
    assert meta_async_margin(PAPER_OVERALL) == pytest.approx(0.0277)


def test_dataset_names_map_to_the_papers():
    assert [paper_dataset(n) for n in ("synth-kitti", "KITTI-raw", "synth-cityscapes", "my_woodscape", "nuscenes")] == [
        "KITTI",
        "KITTI",
        "Cityscapes",
        "WoodScape",
        None,
    ]


def test_ranks_and_spearman_by_hand():
    assert average_ranks({"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.5}) == {"a": 1, "c": 2, "b": 3.5, "d": 3.5}
    ours = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    assert spearman(ours, {"a": 40, "b": 30, "c": 20, "d": 10}) == pytest.approx(1.0)
    assert spearman(ours, {"a": 10, "b": 20, "c": 30, "d": 40}) == pytest.approx(-1.0)
    # one swap of neighbours among 4: ρ = 1 − 6·(1+1)/(4·15) = 0.8
    assert spearman(ours, {"a": 40, "b": 20, "c": 30, "d": 10}) == pytest.approx(0.8)
    assert math.isnan(spearman({"a": 1, "b": 2}, {"a": 1, "b": 2}))


def _records(gm: dict[str, float], dataset: str) -> list[CellRecord]:
    # mIoU 1 makes the geometric mean √mAP: mAP = GM²
    return [CellRecord(dataset=dataset, method=m, seed=0, mAP=g * g, mIoU=1.0, geometric_mean=g) for m, g in gm.items()]


def test_comparison_of_a_benchmark_with_the_paper():
    kitti = {"equal": 0.60, "handcrafted": 0.62, "gradnorm": 0.58, "meta_async": 0.55}
    records = _records(kitti, "synth-kitti") + _records({"equal": 0.5}, "other-data")
    comparison = compare_with_paper(summarize(records))
    assert list(comparison) == ["synth-kitti"]  # other-data maps to no paper dataset, so no Overall entry
    c = comparison["synth-kitti"]
    assert c["paper"] == {"equal": 0.7282, "handcrafted": 0.7272, "gradnorm": 0.7332, "meta_async": 0.7813}
    assert c["ours_rank"] == {"handcrafted": 1, "equal": 2, "gradnorm": 3, "meta_async": 4}
    assert c["paper_rank"] == {"meta_async": 1, "gradnorm": 2, "equal": 3, "handcrafted": 4}
    # d = (3, 1, 1, 3) → ρ = 1 − 6·20/(4·15) = −1
    assert c["spearman"] == pytest.approx(-1.0)
    assert c["meta_async_margin"] == pytest.approx(0.55 - 0.62)
    assert c["paper_meta_async_margin"] == pytest.approx(0.7813 - 0.7354)  # best KITTI baseline: weight learning
    text = render_paper_comparison(comparison, ["equal", "handcrafted", "gradnorm", "meta_async"])
    assert "| synth-kitti | GM, ours | 0.6000 | 0.6200 | 0.5800 | 0.5500 |" in text
    assert "| GM, paper (KITTI) | 0.7282 | 0.7272 | 0.7332 | 0.7813 |" in text
    assert "| synth-kitti | -1.0000 | -0.0700 | +0.0459 |" in text


def test_overall_entry_only_when_the_three_paper_datasets_are_there():
    gm = {"equal": 0.5, "weight_learning": 0.6, "meta_async": 0.7}
    records = _records(gm, "synth-kitti") + _records({m: g - 0.1 for m, g in gm.items()}, "synth-woodscape")
    assert "Overall" not in compare_with_paper(summarize(records))  # an Overall of two datasets is not the paper's
    records += _records({m: g - 0.2 for m, g in gm.items()}, "synth-cityscapes")
    comparison = compare_with_paper(summarize(records))
    overall = comparison["Overall"]
    assert overall["ours"] == pytest.approx({"equal": 0.4, "weight_learning": 0.5, "meta_async": 0.6})
    assert overall["meta_async_margin"] == pytest.approx(0.10)
    assert overall["paper_meta_async_margin"] == pytest.approx(0.6095 - 0.5818)
    assert overall["spearman"] == pytest.approx(1.0)


def test_tables_list_datasets_in_the_papers_order():
    records = [
        *_records({"equal": 0.5}, "mine"),
        *_records({"equal": 0.5}, "synth-woodscape"),
        *_records({"equal": 0.5}, "synth-cityscapes"),
        *_records({"equal": 0.5}, "synth-kitti"),
    ]
    assert summarize(records)["datasets"] == ["synth-kitti", "synth-cityscapes", "synth-woodscape", "mine"]
