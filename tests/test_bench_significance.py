"""The bootstrap confidence interval, the paired comparisons and the compute row, against hand-computed cases."""

from __future__ import annotations

import itertools
import json
import math
import statistics

import numpy as np
import pytest

from taskweight.bench.report import render_table2, summarize, write_report
from taskweight.bench.results import CellRecord
from taskweight.bench.significance import bootstrap_ci, render_significance, significance


def _exact_percentile_ci(values: list[float]) -> tuple[float, float]:
    """The percentile interval of the exact bootstrap distribution (all n^n resamples, equally likely): its
    2.5 % and 97.5 % quantiles, the smallest means with at least that much probability at or below them."""
    means = [statistics.fmean(c) for c in itertools.product(values, repeat=len(values))]
    low, high = np.quantile(means, [0.025, 0.975], method="inverted_cdf")
    return float(low), float(high)


def test_bootstrap_ci_of_two_seeds() -> None:
    # resample means of (1, 3): 1 (¼), 2 (½), 3 (¼): the 2.5th percentile is 1, the 97.5th 3
    assert bootstrap_ci([1.0, 3.0]) == (1.0, 3.0)
    assert _exact_percentile_ci([1.0, 3.0]) == (1.0, 3.0)


def test_bootstrap_ci_of_four_seeds_is_not_just_min_and_max() -> None:
    # resample mean of (0, 0, 0, 1) = k/4, k ~ Binomial(4, ¼): P(k ≤ 2) = 243/256 = 0.949,
    # P(k ≤ 3) = 255/256: the 97.5th percentile is 3/4, not the largest difference 1
    assert _exact_percentile_ci([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)
    assert bootstrap_ci([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)
    assert bootstrap_ci([1.0, 0.0, 0.0, 0.0], seed=7) == (0.0, 0.75)  # any seed, any order
    # a wider level reaches further into the tail: P(k = 4) = 1/256 = 0.4 %
    assert bootstrap_ci([0.0, 0.0, 0.0, 1.0], level=0.999)[1] == 1.0


def test_bootstrap_ci_needs_two_seeds() -> None:
    assert bootstrap_ci([0.3]) is None
    assert bootstrap_ci([]) is None


def _rec(ds: str, m: str, seed: int, gm: float, **kw) -> CellRecord:
    return CellRecord(dataset=ds, method=m, seed=seed, mAP=gm * gm, mIoU=1.0, geometric_mean=gm, **kw)


def _records() -> list[CellRecord]:
    gm = {  # per seed 0, 1, 2
        ("A", "equal"): (0.50, 0.52, 0.54),
        ("A", "handcrafted"): (0.55, 0.50, 0.57),  # best on A: handcrafted
        ("A", "meta_async"): (0.60, 0.53, 0.59),
        ("A", "equal_control"): (0.58, 0.56, 0.57),
        ("A", "meta"): (0.40, 0.41, 0.42),
        ("B", "equal"): (0.30, 0.32, 0.34),
        ("B", "handcrafted"): (0.20, 0.20, 0.20),  # best on B: equal
        ("B", "meta_async"): (0.31, 0.30, 0.35),
        ("B", "equal_control"): (0.30, 0.30, 0.30),
        ("B", "meta"): (0.10, 0.10, 0.10),
    }
    return [_rec(ds, m, s, v) for (ds, m), values in gm.items() for s, v in enumerate(values)]


def test_paired_differences_against_the_best_baseline_and_the_control() -> None:
    result = significance(summarize(_records()))
    assert list(result) == ["A", "B", "Overall"]
    a = {(e["method"], e["against"]): e for e in result["A"]}
    assert set(a) == {("meta_async", "handcrafted"), ("meta", "handcrafted"), ("meta_async", "equal_control")}
    e = a[("meta_async", "handcrafted")]
    assert e["against_is"] == "best baseline" and e["n"] == 3 and e["seeds"] == [0, 1, 2]
    assert e["differences"] == pytest.approx([0.05, 0.03, 0.02])
    assert e["mean"] == pytest.approx(0.1 / 3)
    assert e["ci95"] == pytest.approx([0.02, 0.05])  # with 3 seeds: P(all three the same) = 1/27 > 2.5 %
    assert a[("meta_async", "equal_control")]["differences"] == pytest.approx([0.02, -0.03, 0.02])
    b = {(e["method"], e["against"]): e for e in result["B"]}
    assert b[("meta_async", "equal")]["differences"] == pytest.approx([0.01, -0.02, 0.01])
    # Overall: per seed the mean over A and B; best Overall baseline: equal (0.42 against 0.37)
    o = {(e["method"], e["against"]): e for e in result["Overall"]}
    assert o[("meta_async", "equal")]["differences"] == pytest.approx([0.055, -0.005, 0.03])
    text = render_significance(result)
    assert (
        "| A | meta_async − handcrafted (best baseline) | 3 | +0.0500, +0.0300, +0.0200 | +0.0333 | "
        "[+0.0200, +0.0500] |" in text
    )
    assert "| Overall | meta_async − equal (best baseline) |" in text


def test_one_seed_has_no_interval() -> None:
    records = [r for r in _records() if r.seed == 0]
    result = significance(summarize(records))
    assert result["A"][0]["ci95"] is None and result["A"][0]["n"] == 1
    assert "n/a (1 seed)" in render_significance(result)


def test_compute_row_means_over_seeds(tmp_path) -> None:
    records = [
        _rec("A", "equal", 0, 0.5, epochs=10, train_time_s=3600.0),
        _rec("A", "equal", 1, 0.5, epochs=10, train_time_s=5400.0),
        _rec("A", "meta_async", 0, 0.4, epochs=32, train_time_s=7200.0),
        _rec("B", "equal", 0, 0.3, epochs=8, train_time_s=1800.0),
        _rec("B", "meta_async", 0, 0.2, epochs=30, train_time_s=900.0),
    ]
    s = summarize(records)
    assert s["table"]["A"]["equal"]["epochs"]["mean"] == 10
    assert s["table"]["A"]["equal"]["train_hours"]["mean"] == pytest.approx(1.25)
    assert s["overall"]["equal"]["epochs"] == 18 and s["overall"]["equal"]["train_hours"] == pytest.approx(1.75)
    assert s["overall"]["meta_async"]["epochs"] == 62 and s["overall"]["meta_async"]["train_hours"] == pytest.approx(
        2.25
    )
    lines = render_table2(s).splitlines()
    compute = [line for line in lines if "| Compute" in line]
    assert compute == [
        "|  | Compute (epochs, hours) | 10 ep, 1.250 h | 32 ep, 2.000 h |",
        "|  | Compute (epochs, hours) | 8 ep, 0.500 h | 30 ep, 0.250 h |",
        "|  | Compute, all datasets | 18 ep, 1.750 h | 62 ep, 2.250 h |",
    ]
    write_report(tmp_path, records)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["table"]["B"]["meta_async"]["train_hours"]["mean"] == pytest.approx(0.25)
    assert summary["significance"]["A"][0]["n"] == 1 and summary["significance"]["A"][0]["ci95"] is None
    assert "Paired differences over seeds" in (tmp_path / "paper_comparison.md").read_text()
    assert not math.isnan(summary["overall"]["equal"]["mean"])


def test_bootstrap_ci_uses_the_level_asked_for() -> None:
    # six 0s and six 1s: the resample mean is k/12, k ~ Binomial(12, ½). P(k ≤ 2) = 0.0193, P(k ≤ 3) = 0.0730,
    # P(k ≤ 8) = 0.9270, P(k ≤ 9) = 0.9807: the 2.5th and 97.5th percentiles are 3/12 and 9/12 (a 96.7 %
    # interval, α = 1/60, would give 2/12 and 10/12)
    values = [0.0] * 6 + [1.0] * 6
    assert bootstrap_ci(values) == (3 / 12, 9 / 12)
    assert bootstrap_ci(values, level=1 - 1 / 30) == (2 / 12, 10 / 12)


def test_bootstrap_ci_is_reproducible_for_a_seed() -> None:
    values = [0.013, -0.021, 0.034, 0.002, -0.008]
    assert bootstrap_ci(values) == bootstrap_ci(values) == bootstrap_ci(values, seed=0)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=0)


def test_paired_difference_without_common_seeds_and_its_rendering() -> None:
    from taskweight.bench.significance import paired_difference

    empty = paired_difference({"seeds": [0, 1], "values": [0.5, 0.6]}, {"seeds": [2], "values": [0.4]})
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and empty["ci95"] is None
    text = render_significance({"A": [{"method": "meta_async", "against": "equal", "against_is": "control", **empty}]})
    row = next(line for line in text.splitlines() if "meta_async" in line)
    assert "| – |" in row and "nan" not in row.lower()
