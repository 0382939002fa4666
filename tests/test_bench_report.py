"""Benchmark report arithmetic against hand-computed numbers."""

from __future__ import annotations

import json
import math

import pytest

from taskweight.bench.report import render_table1, render_table2, summarize, write_report
from taskweight.bench.results import CellRecord, load_results, save_results
from taskweight.errors import DataFormatError


def _rec(ds, m, seed, mAP, mIoU, **kw):
    return CellRecord(dataset=ds, method=m, seed=seed, mAP=mAP, mIoU=mIoU, geometric_mean=math.sqrt(mAP * mIoU), **kw)


RECORDS = [
    _rec("A", "equal", 0, 0.64, 0.81),  # GM 0.72
    _rec("A", "equal", 1, 0.49, 0.81),  # GM 0.63
    _rec("A", "handcrafted", 0, 0.36, 1.0),  # GM 0.60
    _rec("A", "handcrafted", 1, 0.25, 1.0),  # GM 0.50
    _rec("B", "equal", 0, 0.25, 0.64),  # GM 0.40
    _rec("B", "equal", 1, 0.16, 0.64),  # GM 0.32
    _rec("B", "handcrafted", 0, 0.81, 0.81),  # GM 0.81
    _rec("B", "handcrafted", 1, 0.64, 0.64),  # GM 0.64
    CellRecord(dataset="B", method="gradnorm", seed=0, status="failed", error="RuntimeError: boom"),
]


def test_summary_means_stds_and_overall():
    s = summarize(RECORDS)
    a_eq = s["table"]["A"]["equal"]["geometric_mean"]
    assert a_eq["mean"] == pytest.approx(0.675)
    assert a_eq["std"] == pytest.approx(math.sqrt(2 * 0.045**2))  # sample std of 0.72, 0.63
    assert s["table"]["B"]["handcrafted"]["mAP"]["mean"] == pytest.approx(0.725)
    # Overall = mean over datasets of per-dataset mean GM
    assert s["overall"]["equal"]["mean"] == pytest.approx((0.675 + 0.36) / 2)
    assert s["overall"]["handcrafted"]["mean"] == pytest.approx((0.55 + 0.725) / 2)
    # its std: per-seed overall values (0.72+0.40)/2=0.56 and (0.63+0.32)/2=0.475
    assert s["overall"]["equal"]["std"] == pytest.approx(math.sqrt(2 * 0.0425**2))
    assert s["methods"] == ["equal", "handcrafted"]
    assert s["failed"] == [{"dataset": "B", "method": "gradnorm", "seed": 0, "error": "RuntimeError: boom"}]


def test_table2_layout_and_bold_best():
    text = render_table2(summarize(RECORDS))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Dataset"))
    assert header.index("No task weighting") < header.index("Handcrafted")
    row_a_gm = next(line for line in lines if "Geometric mean" in line and line.startswith("|  |") and "0.6750" in line)
    assert "**0.6750 ± 0.0636**" in row_a_gm and "**" not in row_a_gm.split("0.6750")[1].split("|")[1]
    overall = next(line for line in lines if line.startswith("| Overall"))
    assert "**0.6375" in overall  # handcrafted wins overall: (0.55 + 0.725) / 2
    assert "gradnorm / seed 0: RuntimeError: boom" in text


def test_results_round_trip_and_report_files(tmp_path):
    save_results(tmp_path, RECORDS)
    loaded = load_results(tmp_path)
    assert [r.to_dict() for r in loaded] == [
        r.to_dict() for r in sorted(RECORDS, key=lambda r: (r.dataset, r.method, r.seed))
    ]
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header.startswith("dataset,method,seed,status,mAP,mIoU,geometric_mean")
    write_report(tmp_path, loaded)
    for name in ("table2.md", "table1.md", "summary.json", "gm_by_method.png"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["overall"]["equal"]["mean"] == pytest.approx(0.5175)


def test_table1_weights():
    recs = [
        _rec("A", "handcrafted", 0, 0.5, 0.5, weights={"det": 1.0, "seg": 60.0}),
        _rec("A", "handcrafted", 1, 0.5, 0.5, weights={"det": 1.0, "seg": 80.0}),
        _rec("A", "meta_async", 0, 0.5, 0.5, weights={"det": 0.1, "seg": 0.9}, frequencies={"det": 1, "seg": 7}),
    ]
    text = render_table1(recs)
    assert "| A | w_s | 70 | 0.9 |" in text
    assert "| async f_s | – | 7 |" in text


def test_bad_results_file_is_named(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"schema": 1, "records": [\n{"dataset": "A"}]}')
    with pytest.raises(DataFormatError, match="results.json"):
        load_results(path)
    path.write_text("{not json")
    with pytest.raises(DataFormatError, match=r"results.json:1"):
        load_results(path)


def test_report_merges_several_results_and_names_a_conflict(tmp_path):
    from typer.testing import CliRunner

    from taskweight.cli import app

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    save_results(a, RECORDS[:4])  # dataset A
    save_results(b, RECORDS[2:8])  # overlaps A's handcrafted cells (identical), adds dataset B
    result = CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    merged = load_results(tmp_path / "m")
    assert len(merged) == 8 and {r.dataset for r in merged} == {"A", "B"}
    assert summarize(merged)["overall"]["equal"]["mean"] == pytest.approx((0.675 + 0.36) / 2)
    changed = [_rec("A", "equal", 0, 0.5, 0.5), *RECORDS[5:8]]
    save_results(b, changed)
    clash = CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "m2")])
    assert clash.exit_code == 2 and "A/equal/0" in clash.output and str(a) in clash.output
    several = CliRunner().invoke(app, ["report", str(a), str(b)])
    assert several.exit_code == 2 and "--out" in several.output


# ------------------------------------------------------------------ what the plots draw
def test_the_geometric_mean_plot_draws_each_mean_and_std_in_its_place():
    """Bar heights, error bars, order and labels of gm_by_method.png against the hand-computed summary
    (A: equal 0.675 ± 0.0636, handcrafted 0.55 ± 0.0707; B: equal 0.36, handcrafted 0.725)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from taskweight.bench.report import geometric_means_figure

    records = [*RECORDS, _rec("A", "uncertainty", 0, 0.25, 0.64)]  # missing from B: no bar there
    fig = geometric_means_figure(summarize(records))
    ax = fig.axes[0]
    bars_a, bars_b = (c for c in ax.containers if hasattr(c, "patches"))
    assert [round(p.get_height(), 4) for p in bars_a.patches] == [0.675, 0.55, 0.4]
    heights_b = [p.get_height() for p in bars_b.patches]
    assert heights_b[:2] == pytest.approx([0.36, 0.725]) and math.isnan(heights_b[2])
    # the error bar of A/equal spans mean ± sample std
    segments = bars_a.errorbar.lines[2][0].get_segments()
    low, high = segments[0][:, 1]
    assert (low, high) == pytest.approx((0.675 - math.sqrt(2) * 0.045, 0.675 + math.sqrt(2) * 0.045))
    assert np.allclose(segments[1][:, 1], [0.55 - math.sqrt(2) * 0.05, 0.55 + math.sqrt(2) * 0.05])
    # each dataset's bar sits left of the next dataset's, under the method's label
    assert all(a.get_x() < b.get_x() for a, b in zip(bars_a.patches, bars_b.patches, strict=True))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["No task weighting", "Handcrafted", "Uncertainty weighting"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    assert "mAP and mIoU" in ax.get_ylabel()
    plt.close(fig)


def test_the_weight_plot_draws_the_logged_weights_of_each_methods_first_cell():
    import matplotlib.pyplot as plt

    from taskweight.bench.report import weight_histories_figure

    history = [[0, {"det": 1.0, "seg": 50.0}], [10, {"det": 1.0, "seg": 70.0}]]
    records = [
        _rec("B", "handcrafted", 0, 0.5, 0.5, weight_history=[[0, {"det": 9.0, "seg": 9.0}]]),  # not the first cell
        _rec("A", "handcrafted", 1, 0.5, 0.5, weight_history=history),
        _rec("A", "equal", 0, 0.5, 0.5, weight_history=[[0, {"det": 1.0, "seg": 1.0}], [10, {"det": 1.0, "seg": 1.0}]]),
    ]
    fig = weight_histories_figure(records)
    equal_ax, handcrafted_ax = fig.axes[:2]
    assert handcrafted_ax.get_title() == "Handcrafted (A, seed 1)"
    lines = {line.get_label(): line for line in handcrafted_ax.get_lines()}
    assert list(lines["w_seg"].get_xdata()) == [0, 10] and list(lines["w_seg"].get_ydata()) == [50.0, 70.0]
    assert list(lines["w_det"].get_ydata()) == [1.0, 1.0]
    assert handcrafted_ax.get_yscale() == "log" and equal_ax.get_yscale() == "linear"
    plt.close(fig)
    assert weight_histories_figure([_rec("A", "equal", 0, 0.5, 0.5)]) is None  # nothing logged: no plot


def test_column_titles_come_from_the_strategy_classes_and_the_search_names():
    from taskweight import weighting
    from taskweight.bench.methods import method_title

    assert method_title("nash_mtl") == "Nash-MTL" == weighting.strategy_class("nash_mtl").title
    assert method_title("meta_async") == "Meta-learning async backprop"
    assert method_title("my_own") == "my_own"
    titles = [method_title(name) for name in weighting.available()]
    assert len(set(titles)) == len(titles) and "base" not in titles
