"""Benchmark report behaviour the golden-text tests leave open: which figure ``_save_figure`` closes and the
dash-pattern cycle of the weight-history panels beyond the first four curves.

Complements tests/test_report_rendering.py (Table I/II golden text, figure contents, write_report files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskweight.bench.report import _save_figure, geometric_means_figure, summarize, weight_histories_figure
from taskweight.bench.results import CellRecord


def _rec(ds: str, method: str, seed: int, **kw: Any) -> CellRecord:
    return CellRecord(dataset=ds, method=method, seed=seed, **kw)


def test_save_figure_writes_and_closes_the_figure_it_is_given_not_the_current_one(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image

    fig = geometric_means_figure(summarize([_rec("A", "equal", 0, mAP=0.25, mIoU=1.0, geometric_mean=0.5)]))
    other = plt.figure()  # created later, so it is pyplot's current figure
    try:
        _save_figure(fig, tmp_path / "gm.png", dpi=50)
        # one method on one dataset: max(6, 1.1 · 1 · 1 / 2 + 3) = 6 × 4 inches → 300 × 200 pixels at 50 dpi
        with Image.open(tmp_path / "gm.png") as image:
            assert image.size == (300, 200)
        assert fig.number not in plt.get_fignums()  # the saved figure is closed ...
        assert other.number in plt.get_fignums()  # ... and the caller's current figure is left open
    finally:
        plt.close(fig)
        plt.close(other)


def test_weight_history_panel_cycles_four_dash_patterns_over_five_coinciding_curves() -> None:
    """Five weights equal to 1 at every step (all curves coincide): the first four curves get four different dash
    patterns so each stays visible, the fifth starts the cycle again with the first one's pattern; every curve is
    drawn with its own label in sorted task order."""
    import matplotlib.pyplot as plt

    names = ["t1", "t2", "t3", "t4", "t5"]
    history = [[step, dict.fromkeys(names, 1.0)] for step in (0, 10)]
    fig = weight_histories_figure([_rec("A", "equal", 0, weight_history=history)])
    try:
        (ax,) = fig.axes
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == [f"w_{n}" for n in names]
        assert all(list(line.get_ydata()) == [1.0, 1.0] for line in lines)
        styles = [line.get_linestyle() for line in lines]
        assert len(set(styles[:4])) == 4  # four distinct patterns
        assert styles[4] == styles[0]  # then the cycle repeats
        assert lines[0].get_linewidth() > lines[4].get_linewidth()  # only the first curve is drawn thicker
    finally:
        plt.close(fig)
