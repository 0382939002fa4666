"""Render the benchmark's tables, summary and plots from result records alone.

- ``table2.md``: the paper's Table II layout — per dataset a row per metric of the tasks its
  cells trained (mAP for detection, mIoU for segmentation, δ<1.25, AbsRel and RMSE for depth)
  and the geometric mean of the tasks' scores (titled with them when the tasks are not the
  paper's two), methods as columns in the paper's order, mean ± sample std over seeds, the best
  mean of each row in bold (the lowest for AbsRel and RMSE), and an **Overall** row =
  arithmetic mean over datasets of the per-dataset geometric means (how the paper computes its
  Overall row).
- ``table1.md``: the weights (and async frequencies) found by handcrafted, meta and
  meta_async per dataset (the paper's Table I).
- ``summary.json``: the numbers of table2 (and of the comparison below).
  Each dataset also gets a compute row (training epochs and hours per column, mean over
  seeds), and the table names the bench protocol the searches ran under.
- ``paper_comparison.md``: per dataset that maps to one of the paper's (and trained the paper's
  two tasks: a geometric mean over other tasks is not the paper's number), our geometric means
  and ranks beside the paper's Table II, Spearman's ρ and the margin of meta_async over the
  best baseline (:mod:`taskweight.bench.paper`); then, for every dataset and Overall, the
  paired per-seed differences meta_async / meta − best baseline and meta_async −
  equal_control with a bootstrap confidence interval (:mod:`taskweight.bench.significance`).
- ``gm_by_method.png`` (geometric mean per method and dataset with ± std error bars) and
  ``weights_over_training.png`` (each method's task weights over training steps).
- ``{dataset}_fig3a_target.png``, ``_fig3b_metrics.png``, ``_fig4a_weights.png``,
  ``_fig4b_frequencies.png``: the paper's Fig. 3/4 from the first-seed meta_async search of
  each dataset (when its journal is in the results folder).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from taskweight.bench.methods import CONTROL_METHODS, SEARCH_METHODS, method_title, ordered_methods
from taskweight.bench.paper import PAPER_DATASETS, compare_with_paper, paper_dataset, render_paper_comparison
from taskweight.bench.results import CellRecord
from taskweight.bench.significance import render_significance, significance
from taskweight.classes import DEFAULT_TASKS, PAPER_TASKS, TASK_SCORES, TASK_SHORT, TASKS, check_tasks, table_order
from taskweight.durable import atomic_write_text
from taskweight.jsonio import write_json

ROWS: tuple[tuple[str, str], ...] = (
    ("mAP", "mAP (detection)"),
    ("mIoU", "mIoU (segment)"),
    ("geometric_mean", "Geometric mean"),
)
DEPTH_ROWS: tuple[tuple[str, str], ...] = (
    ("delta1", "δ<1.25 (depth)"),
    ("AbsRel", "AbsRel (depth, lower is better)"),
    ("RMSE", "RMSE m (depth, lower is better)"),
)
LOWER_IS_BETTER = {"AbsRel", "RMSE"}
TASK_ROWS: dict[str, tuple[tuple[str, str], ...]] = {"det": ROWS[:1], "seg": ROWS[1:2], "depth": DEPTH_ROWS}
"""Table II's metric rows of each task (:data:`taskweight.classes.TASKS`)."""
SCORE_TITLES = {"mAP": "mAP", "mIoU": "mIoU", "delta1": "δ<1.25"}
"""Short titles of the scores of the geometric mean (:data:`taskweight.classes.TASK_SCORES`)."""


def records_tasks(records: Sequence[CellRecord]) -> tuple[str, ...]:
    """The tasks any of ``records`` trained, in canonical order (the paper's two when there is no record)."""
    names = {t for r in records for t in r.task_names}
    return check_tasks(sorted(names)) if names else DEFAULT_TASKS


def task_rows(tasks: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Table II's rows of ``tasks``: each task's metric rows, in the order of :data:`TASKS`, then the
    geometric mean (titled with its scores when the tasks are not the paper's two)."""
    tasks = check_tasks(tasks)
    gm_title = ROWS[2][1]
    if tasks != PAPER_TASKS:
        gm_title += " (" + " · ".join(SCORE_TITLES[TASK_SCORES[t]] for t in tasks) + ")"
    return (*(row for t in TASKS if t in tasks for row in TASK_ROWS[t]), (ROWS[2][0], gm_title))


def table_rows(records: Sequence[CellRecord]) -> tuple[tuple[str, str], ...]:
    """Table II's metric rows of the tasks ``records`` trained (:func:`task_rows`)."""
    return task_rows(records_tasks(records))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return float("nan"), float("nan")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def ordered_datasets(records: Sequence[CellRecord]) -> list[str]:
    """Datasets in the paper's order (KITTI, Cityscapes, WoodScape), the others after them as first seen."""
    seen: list[str] = []
    for r in records:
        if r.dataset not in seen:
            seen.append(r.dataset)

    def paper_position(name: str) -> int:
        ds = paper_dataset(name)
        return PAPER_DATASETS.index(ds) if ds is not None else len(PAPER_DATASETS)

    return sorted(seen, key=paper_position)  # stable: ties keep first-seen order


COMPUTE: tuple[tuple[str, Callable[[CellRecord], float | None]], ...] = (
    ("epochs", lambda r: float(r.epochs)),
    ("train_hours", lambda r: r.train_time_s / 3600.0),
)
"""The compute row: training epochs and hours in training steps a cell spent (a search: all its evaluations)."""


def _stat(cells: Sequence[CellRecord], value: Callable[[CellRecord], float | None]) -> dict[str, Any]:
    """Mean, sample std and n of ``value`` over ``cells``, with the per-seed values (aligned ``seeds``/``values``)."""
    pairs = [(r.seed, value(r)) for r in sorted(cells, key=lambda r: r.seed)]
    present = [(seed, v) for seed, v in pairs if v is not None]
    mean, std = mean_std([v for _, v in present])
    return {
        "mean": mean,
        "std": std,
        "n": len(present),
        "seeds": [seed for seed, _ in present],
        "values": [v for _, v in present],
    }


def summarize(records: Sequence[CellRecord]) -> dict[str, Any]:
    """Per dataset, method and metric: mean, std, n and the per-seed values over the seeds of successful cells.

    Every cell also reports its compute (:data:`COMPUTE`). Overall (per method) = mean over
    datasets of the per-dataset mean geometric mean; its std is the sample std over seeds of
    the per-seed overall value (seeds present in every dataset only); its compute is the sum
    over datasets of the per-dataset means. ``protocols``: the protocols the search and control
    cells ran under (all cells' when there are none). ``tasks``: per dataset, the tasks its cells
    trained (its rows of Table II).
    """
    ok = [r for r in records if r.status == "ok"]
    datasets = ordered_datasets(ok)
    methods = ordered_methods({r.method for r in ok})
    table: dict[str, Any] = {}
    tasks: dict[str, list[str]] = {}
    for ds in datasets:
        table[ds] = {}
        tasks[ds] = list(records_tasks([r for r in ok if r.dataset == ds]))
        for m in methods:
            cells = [r for r in ok if r.dataset == ds and r.method == m]
            if cells:
                table[ds][m] = {metric: _stat(cells, attrgetter(metric)) for metric, _ in table_rows(cells)}
                table[ds][m].update({key: _stat(cells, value) for key, value in COMPUTE})
    overall: dict[str, Any] = {}
    for m in methods:
        per_ds = [table[ds][m] for ds in datasets if m in table[ds]]
        if len(per_ds) != len(datasets):
            continue
        seeds = set.intersection(*(set(s["geometric_mean"]["seeds"]) for s in per_ds))
        per_seed = [
            statistics.fmean(
                dict(zip(s["geometric_mean"]["seeds"], s["geometric_mean"]["values"], strict=True))[seed]
                for s in per_ds
            )
            for seed in sorted(seeds)
        ]
        overall[m] = {
            "mean": statistics.fmean(s["geometric_mean"]["mean"] for s in per_ds),
            "std": mean_std(per_seed)[1] if per_seed else float("nan"),
            "n": len(per_seed),
            "seeds": sorted(seeds),
            "values": per_seed,
            **{key: sum(s[key]["mean"] for s in per_ds) for key, _ in COMPUTE},
        }
    failed = [
        {"dataset": r.dataset, "method": r.method, "seed": r.seed, "error": r.error}
        for r in records
        if r.status != "ok"
    ]
    searched = [r for r in ok if r.method in SEARCH_METHODS or r.method in CONTROL_METHODS]
    protocols = sorted({r.protocol for r in (searched or ok)})
    return {
        "datasets": datasets,
        "methods": methods,
        "protocols": protocols,
        "tasks": tasks,
        "table": table,
        "overall": overall,
        "failed": failed,
    }


def _cell(stat: dict[str, float] | None, best: bool) -> str:
    if stat is None or math.isnan(stat["mean"]):
        return "–"
    text = f"{stat['mean']:.4f}" + (f" ± {stat['std']:.4f}" if stat["n"] > 1 else "")
    return f"**{text}**" if best else text


def _best(values: dict[str, float]) -> set[str]:
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    if not finite:
        return set()
    top = max(finite.values())
    return {k for k, v in finite.items() if math.isclose(v, top, rel_tol=0, abs_tol=5e-5)}


def _compute(epochs: float | None, hours: float | None) -> str:
    if epochs is None or hours is None:
        return "–"
    return f"{epochs:.4g} ep, {hours:.3f} h"


PROTOCOL_NOTES = {
    "matched": "every column trains the epochs the preset gives it (the searches: evaluations × epochs each)",
    "paper": "baselines E epochs with best-val checkpoint selection; meta / meta_async N evaluations of e epochs, "
    "each fine-tuning the best model so far, best evaluation reported (paper §IV-C, §V)",
}


def render_table2(summary: dict[str, Any]) -> str:
    methods = summary["methods"]
    header = "| Dataset | Metric | " + " | ".join(method_title(m) for m in methods) + " |"
    protocols = summary.get("protocols") or []
    lines = [
        "# Table II — task-weighting methods (test split; mean ± std over seeds)",
        "",
        *(
            [f"Protocol: {' + '.join(protocols)} — " + "; ".join(PROTOCOL_NOTES.get(p, p) for p in protocols) + ".", ""]
            if protocols
            else []
        ),
        header,
        "|" + "---|" * (len(methods) + 2),
    ]
    for ds in summary["datasets"]:
        rows = task_rows(summary.get("tasks", {}).get(ds, DEFAULT_TASKS))  # the rows of the tasks trained on ds
        for i, (metric, title) in enumerate(rows):
            stats = {m: summary["table"][ds].get(m, {}).get(metric) for m in methods}
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            best = _best({m: sign * s["mean"] for m, s in stats.items() if s is not None})
            lines.append(
                f"| {ds if i == 0 else ''} | {title} | "
                + " | ".join(_cell(stats[m], m in best) for m in methods)
                + " |"
            )
        cells = {m: summary["table"][ds].get(m) for m in methods}
        lines.append(
            "|  | Compute (epochs, hours) | "
            + " | ".join(_compute(c["epochs"]["mean"], c["train_hours"]["mean"]) if c else "–" for c in cells.values())
            + " |"
        )
    overall = summary["overall"]
    best = _best({m: s["mean"] for m, s in overall.items()})
    lines.append("| Overall | Geometric mean | " + " | ".join(_cell(overall.get(m), m in best) for m in methods) + " |")
    lines.append(
        "|  | Compute, all datasets | "
        + " | ".join(
            _compute(overall[m]["epochs"], overall[m]["train_hours"]) if m in overall else "–" for m in methods
        )
        + " |"
    )
    lines += [
        "",
        "Overall = arithmetic mean over datasets of the per-dataset geometric means (as in the paper).",
        "Compute = training epochs and hours in training steps (validation and testing excluded) a column spent, "
        "mean over seeds; a search counts all its evaluations; Overall: summed over the datasets.",
    ]
    if summary["failed"]:
        lines += ["", "Failed cells:"]
        lines += [f"- {f['dataset']} / {f['method']} / seed {f['seed']}: {f['error']}" for f in summary["failed"]]
    return "\n".join(lines) + "\n"


def render_table1(records: Sequence[CellRecord]) -> str:
    methods = [m for m in ("equal", "handcrafted", "meta", "meta_async") if any(r.method == m for r in records)]
    lines = [
        "# Table I — task weights and async backprop frequencies found (mean over seeds)",
        "",
        "| Dataset | | " + " | ".join(method_title(m) for m in methods) + " |",
        "|" + "---|" * (len(methods) + 2),
    ]
    ok = [r for r in records if r.status == "ok"]
    for ds in ordered_datasets(ok):
        tasks = table_order(t for r in ok if r.dataset == ds for t in (r.weights or {}))  # the configured tasks
        rows = [(f"w_{TASK_SHORT.get(t, t)}", "w", t) for t in tasks or table_order(DEFAULT_TASKS)]
        rows += [(f"async f_{TASK_SHORT.get(t, t)}", "f", t) for t in tasks or table_order(DEFAULT_TASKS)]
        for index, (label, kind, task) in enumerate(rows):
            row = []
            for m in methods:
                cells = [r for r in ok if r.dataset == ds and r.method == m]
                source = [(r.weights if kind == "w" else (r.frequencies or {})).get(task) for r in cells]
                values = [v for v in source if v is not None]
                row.append(f"{statistics.fmean(values):.4g}" if values else "–")
            lines.append(f"| {ds if index == 0 else ''} | {label} | " + " | ".join(row) + " |")
    lines += ["", "meta / meta_async weights are normalised to sum to 1 (paper §IV-C); handcrafted: w_det = 1."]
    units = sorted({r.async_unit for r in ok if r.frequencies and r.async_unit})
    if units:
        lines.append(
            f"async f: the backprop period of the task, in {' and '.join(u + 's' for u in units)} (paper §IV-D)."
        )
    return "\n".join(lines) + "\n"


def _save_figure(fig: Any, path: Path, dpi: int) -> None:
    """Lay out, write and close ``fig`` (Agg backend)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def geometric_means_figure(summary: dict[str, Any]) -> Any:
    """Bars of each method's test geometric mean, one colour per dataset, with the std over seeds
    as error bars (a method missing from a dataset gets no bar there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets, methods = summary["datasets"], summary["methods"]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(methods) * max(len(datasets), 1) / 2 + 3), 4))
    width = 0.8 / max(len(datasets), 1)
    for i, ds in enumerate(datasets):
        stats = [summary["table"][ds].get(m, {}).get("geometric_mean") for m in methods]
        means = [s["mean"] if s else math.nan for s in stats]
        stds = [s["std"] if s else 0.0 for s in stats]
        ax.bar([j + i * width for j in range(len(methods))], means, width, yerr=stds, capsize=3, label=ds)
    ax.set_xticks([j + width * (len(datasets) - 1) / 2 for j in range(len(methods))])
    ax.set_xticklabels([method_title(m) for m in methods], rotation=30, ha="right", fontsize=8)
    tasks = summary.get("tasks", {})
    two = all(tuple(tasks.get(ds, PAPER_TASKS)) == PAPER_TASKS for ds in datasets)
    ax.set_ylabel("geometric mean of mAP and mIoU (test)" if two else "geometric mean of the tasks' scores (test)")
    ax.set_title("Task-weighting methods: mean ± std over seeds")
    ax.legend(fontsize=8)
    return fig


def plot_geometric_means(summary: dict[str, Any], path: Path) -> None:
    """:func:`geometric_means_figure` written to ``path``."""
    _save_figure(geometric_means_figure(summary), path, dpi=120)


def weight_histories_figure(records: Sequence[CellRecord]) -> Any | None:
    """One panel per method: the weights logged during training of its first cell (first dataset, lowest
    seed), one line per task, on a log scale when a weight exceeds 20. None when no cell logged weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.status == "ok" and r.weight_history]
    methods = ordered_methods({r.method for r in ok})
    if not methods:
        return None
    cols = min(3, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
    for ax, m in zip(axes.flat, methods, strict=False):  # the grid's last row may have spare axes
        first = min((r for r in ok if r.method == m), key=lambda r: (r.dataset, r.seed))
        steps = [p[0] for p in first.weight_history]
        for i, task in enumerate(sorted(first.weight_history[0][1])):
            # dashes keep coinciding curves (equal: w_det = w_seg = 1) both visible
            ax.plot(
                steps,
                [p[1].get(task, math.nan) for p in first.weight_history],
                label=f"w_{task}",
                linestyle=("-", "--", ":", "-.")[i % 4],
                linewidth=1.5 + (i == 0),
            )
        ax.set_title(f"{method_title(m)} ({first.dataset}, seed {first.seed})", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.set_yscale("log" if any(v > 20 for p in first.weight_history for v in p[1].values() if v) else "linear")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(methods) :]:
        ax.axis("off")
    return fig


def plot_weight_histories(records: Sequence[CellRecord], path: Path) -> None:
    """:func:`weight_histories_figure` written to ``path`` (nothing when no cell logged weights)."""
    fig = weight_histories_figure(records)
    if fig is not None:
        _save_figure(fig, path, dpi=110)


def plot_search_figures(out_dir: Path, records: Sequence[CellRecord], source: Path) -> list[Path]:
    """The paper's Fig. 3a/3b/4a/4b from the journal of each dataset's first-seed ``meta_async`` search.

    Reuses :func:`taskweight.search.report.plot_search`; files ``{dataset}_fig3a_target.png``
    ... in ``out_dir``. Cells whose search folder is not under ``source`` are left out.
    """
    from taskweight.search.journal import read_journal
    from taskweight.search.report import async_unit, plot_search

    written: list[Path] = []
    ok = [r for r in records if r.status == "ok" and r.method == "meta_async"]
    for ds in ordered_datasets(ok):
        cell = min((r for r in ok if r.dataset == ds), key=lambda r: r.seed)
        folder = source / cell.run_dir / "search"
        journal = read_journal(folder / "journal.jsonl")
        if not journal:
            continue
        meta_path = folder / "search_meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        title = f"{ds}, meta_async seed {cell.seed}, {cell.protocol} protocol"
        written += plot_search(out_dir, journal, unit=async_unit(meta), prefix=f"{ds}_", title=title).values()
    return written


def write_report(
    out_dir: Path, records: Sequence[CellRecord], *, source: Path | None = None, search_figures: bool = True
) -> dict[str, Any]:
    """Write table2.md, table1.md, paper_comparison.md, summary.json and the plots into ``out_dir``.

    ``source``: the results folder the cells' run folders are in (default ``out_dir``), for the
    search figures (``search_figures=False`` leaves them out: the runner draws them once, at the end).
    """
    summary = summarize(records)
    atomic_write_text(out_dir / "table2.md", render_table2(summary))
    atomic_write_text(out_dir / "table1.md", render_table1(records))
    comparison = compare_with_paper(summary)
    paired = significance(summary)
    atomic_write_text(
        out_dir / "paper_comparison.md",
        render_paper_comparison(comparison, summary["methods"]) + "\n" + render_significance(paired),
    )
    write_json(out_dir / "summary.json", {**summary, "paper_comparison": comparison, "significance": paired})
    if summary["datasets"]:
        plot_geometric_means(summary, out_dir / "gm_by_method.png")
    plot_weight_histories(records, out_dir / "weights_over_training.png")
    if search_figures:
        plot_search_figures(out_dir, records, out_dir if source is None else Path(source))
    return summary
