"""The paper's published Table II and a side-by-side comparison with a benchmark's results.

Leang et al. (ITSC 2020), Table II: test mAP, mIoU and their geometric mean for nine methods
on KITTI, Cityscapes and WoodScape. A benchmark dataset is compared with the paper's dataset
its name points to (``synth-kitti`` and ``kitti`` → KITTI, ...). Per dataset the comparison
gives both geometric means, both rankings, the Spearman rank correlation ρ between them
(ρ = 1 − 6 Σ d² / (n (n² − 1)) on tie-free ranks; computed as the Pearson correlation of the
average ranks, which equals it and also handles ties), and the margin of ``meta_async`` over
the best of the seven non-meta methods — the paper's headline "+3 %"
(overall 0.6095 − 0.5818 = +0.0277).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from taskweight.bench.methods import PAPER_METHOD_ORDER, best_baseline, method_title
from taskweight.classes import PAPER_TASKS

PAPER_DATASETS: tuple[str, ...] = ("KITTI", "Cityscapes", "WoodScape")

# Table II of the paper: (mAP, mIoU, geometric mean) per dataset, in the order of PAPER_METHOD_ORDER.
_TABLE2: dict[str, tuple[tuple[float, float, float], ...]] = {
    "KITTI": (
        (0.6535, 0.8114, 0.7282),
        (0.6289, 0.8408, 0.7272),
        (0.1736, 0.8079, 0.3745),
        (0.6589, 0.7974, 0.7248),
        (0.6653, 0.8080, 0.7332),
        (0.5677, 0.8176, 0.6813),
        (0.6727, 0.8040, 0.7354),
        (0.6974, 0.8301, 0.7609),
        (0.7260, 0.8408, 0.7813),
    ),
    "Cityscapes": (
        (0.2572, 0.6356, 0.4043),
        (0.2970, 0.5780, 0.4143),
        (0.2824, 0.5796, 0.4045),
        (0.2968, 0.5646, 0.4094),
        (0.2870, 0.5492, 0.3970),
        (0.2900, 0.5819, 0.4108),
        (0.2972, 0.5573, 0.4070),
        (0.3091, 0.5812, 0.4239),
        (0.3177, 0.5815, 0.4298),
    ),
    "WoodScape": (
        (0.4643, 0.7180, 0.5774),
        (0.4438, 0.8107, 0.5998),
        (0.4557, 0.8118, 0.6082),
        (0.4525, 0.7806, 0.5943),
        (0.4511, 0.8155, 0.6065),
        (0.4193, 0.8227, 0.5874),
        (0.4419, 0.8227, 0.6030),
        (0.4677, 0.8006, 0.6119),
        (0.4862, 0.7838, 0.6173),
    ),
}
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    ds: {m: {"mAP": v[0], "mIoU": v[1], "geometric_mean": v[2]} for m, v in zip(PAPER_METHOD_ORDER, rows, strict=True)}
    for ds, rows in _TABLE2.items()
}
PAPER_TABLE2_GM: dict[str, dict[str, float]] = {
    ds: {m: v["geometric_mean"] for m, v in rows.items()} for ds, rows in PAPER_TABLE2.items()
}
PAPER_OVERALL: dict[str, float] = dict(
    zip(PAPER_METHOD_ORDER, (0.5700, 0.5804, 0.4624, 0.5762, 0.5789, 0.5598, 0.5818, 0.5989, 0.6095), strict=True)
)


def paper_dataset(name: str) -> str | None:
    """The paper's dataset a benchmark dataset name refers to (case-insensitive substring), or None."""
    lowered = name.lower()
    for ds in PAPER_DATASETS:
        if ds.lower() in lowered:
            return ds
    return None


def average_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Rank 1 = highest value; tied values share the mean of their ranks."""
    ordered = sorted(values, key=lambda k: -values[k])
    ranks: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and values[ordered[j + 1]] == values[ordered[i]]:
            j += 1
        for k in ordered[i : j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Spearman's ρ over the keys both share (NaN with fewer than 3 or a constant side)."""
    keys = [k for k in a if k in b]
    if len(keys) < 3:
        return float("nan")
    ra, rb = average_ranks({k: a[k] for k in keys}), average_ranks({k: b[k] for k in keys})
    xa, xb = [ra[k] for k in keys], [rb[k] for k in keys]
    if len(set(xa)) < 2 or len(set(xb)) < 2:
        return float("nan")
    return statistics.correlation(xa, xb)


def meta_async_margin(gm: Mapping[str, float]) -> float | None:
    """GM of meta_async minus the best GM among the non-meta baselines present (None if missing)."""
    best = best_baseline(gm)
    if "meta_async" not in gm or math.isnan(gm["meta_async"]) or best is None:
        return None
    return gm["meta_async"] - gm[best]


def compare_with_paper(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Per benchmark dataset that maps to one of the paper's: GMs, ranks, ρ and the meta_async margin.

    A dataset whose cells trained other tasks than the paper's two (``summary["tasks"]``, e.g. with
    depth) is left out: its geometric mean is over other scores than the paper's. When the
    benchmark's datasets are exactly one per paper dataset, an ``Overall`` entry compares the
    Overall rows (both: the mean over the three datasets' geometric means).
    """
    out: dict[str, Any] = {}
    tasks = summary.get("tasks", {})
    for ds in summary["datasets"]:
        paper_ds = paper_dataset(ds)
        if paper_ds is not None and tuple(tasks.get(ds, PAPER_TASKS)) == PAPER_TASKS:
            ours = {m: s["geometric_mean"]["mean"] for m, s in summary["table"][ds].items()}
            out[ds] = _comparison(paper_ds, ours, PAPER_TABLE2_GM[paper_ds])
    covers_paper = {c["paper_dataset"] for c in out.values()} == set(PAPER_DATASETS)
    overall = {m: s["mean"] for m, s in summary.get("overall", {}).items()}
    if covers_paper and len(out) == len(summary["datasets"]) and overall:
        out["Overall"] = _comparison("Overall", overall, PAPER_OVERALL)
    return out


def _comparison(paper_ds: str, ours: Mapping[str, float], paper_gm: Mapping[str, float]) -> dict[str, Any]:
    """One row group of the comparison: our GMs (the paper's nine methods, NaN dropped) against ``paper_gm``."""
    ours = {m: g for m, g in ours.items() if m in PAPER_METHOD_ORDER and not math.isnan(g)}
    paper = {m: paper_gm[m] for m in ours}
    return {
        "paper_dataset": paper_ds,
        "ours": ours,
        "paper": paper,
        "ours_rank": average_ranks(ours),
        "paper_rank": average_ranks(paper),
        "spearman": spearman(ours, paper),
        "meta_async_margin": meta_async_margin(ours),
        "paper_meta_async_margin": meta_async_margin(paper_gm),
    }


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def render_paper_comparison(comparison: Mapping[str, Any], methods: Sequence[str]) -> str:
    """Markdown: per dataset our GM and rank beside the paper's, ρ, and the meta_async margin."""
    methods = [m for m in methods if m in PAPER_METHOD_ORDER]
    lines = ["# Beside the paper — geometric mean and rank per method (ours: test split, mean over seeds)", ""]
    if not comparison:
        return (
            "\n".join(
                lines
                + [
                    "No dataset of this benchmark maps to one of the paper's (KITTI, Cityscapes, WoodScape) "
                    "with the paper's two tasks (detection and segmentation)."
                ]
            )
            + "\n"
        )
    lines += [
        "| Dataset | Row | " + " | ".join(method_title(m) for m in methods) + " |",
        "|" + "---|" * (len(methods) + 2),
    ]
    for ds, c in comparison.items():
        rows = (
            # c=c binds this dataset's comparison (the cells are called in this iteration, but a lambda that
            # outlived it would otherwise read the last dataset's numbers)
            ("GM, ours", lambda m, c=c: _num(c["ours"].get(m))),
            (f"GM, paper ({c['paper_dataset']})", lambda m, c=c: _num(c["paper"].get(m))),
            ("rank, ours", lambda m, c=c: f"{c['ours_rank'][m]:g}" if m in c["ours_rank"] else "–"),
            ("rank, paper", lambda m, c=c: f"{c['paper_rank'][m]:g}" if m in c["paper_rank"] else "–"),
        )
        for i, (row, cell) in enumerate(rows):
            lines.append(f"| {ds if i == 0 else ''} | {row} | " + " | ".join(cell(m) for m in methods) + " |")
    lines += [
        "",
        "| Dataset | Spearman ρ of the rankings | meta_async − best baseline, ours | same, paper |",
        "|---|---|---|---|",
    ]
    for ds, c in comparison.items():
        lines.append(
            f"| {ds} | {_num(c['spearman'], signed=True)} | {_num(c['meta_async_margin'], signed=True)} | "
            f"{_num(c['paper_meta_async_margin'], signed=True)} |"
        )
    lines += [
        "",
        "Ranks are over the methods this benchmark ran (1 = best; ties share the mean rank). "
        "Best baseline = the best of the seven methods that are not meta-learned.",
    ]
    return "\n".join(lines) + "\n"
