"""Search outputs: ``search.json``, ``table1.md`` (paper Table I) and Fig. 3–4 style plots.

- ``search.json`` — settings, number of evaluations, the best configuration (weights,
  frequencies, genes), its val metrics and checkpoint, when it was found, total epochs and
  wall time.
- ``table1.md`` — the normalised weights ``ws``, ``wd`` (and async ``fs``, ``fd``) found,
  laid out like the paper's Table I.
- ``fig3a_target.png`` — target (geometric mean) per evaluation with the best-so-far line.
- ``fig3b_metrics.png`` — detection mAP and segmentation mIoU per evaluation.
- ``fig4a_weights.png`` — the normalised task weights tested, per evaluation.
- ``fig4b_frequencies.png`` — the async frequencies tested (async searches only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskweight.classes import DEFAULT_TASKS, TASK_SHORT, table_order
from taskweight.durable import atomic_write_text
from taskweight.jsonio import write_json
from taskweight.search.journal import JournalRecord, best_record, lineage, lineage_epochs
from taskweight.search.space import SearchSpace


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def async_unit(meta: dict[str, Any] | None) -> str:
    """What the async periods of a search count (``step`` for searches that did not say)."""
    return ((meta or {}).get("evaluator") or {}).get("async_unit") or "step"


def summary(records: Sequence[JournalRecord], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    best = best_record(records)
    chain = lineage(records, best) if best is not None else []
    return {
        **(meta or {}),
        "evaluations": len(records),
        "failed_evaluations": sum(1 for r in records if r.fitness is None),
        "best": None
        if best is None
        else {
            "index": best.index,
            "found_at_evaluation": best.index + 1,
            "generation": best.generation,
            "config": dict(best.config),
            "metrics": best.metrics,
            "fitness": best.fitness,
            "checkpoint": best.checkpoint,
            "lineage": [r.index for r in chain],
            "lineage_epochs": lineage_epochs(records, best),
        },
        "total_epochs": sum(int(r.epochs) for r in records),
        "total_wall_time_s": sum(r.wall_time_s for r in records),
        "total_train_time_s": sum(r.training_s for r in records),
        "journal": "journal.jsonl",
    }


def write_summary(out_dir: str | Path, records: Sequence[JournalRecord], *, meta: dict[str, Any] | None = None) -> Path:
    path = Path(out_dir) / "search.json"
    write_json(path, summary(records, meta))
    return path


def table1_markdown(
    best_config: dict[str, Any] | None,
    *,
    label: str = "data",
    async_frequencies: bool | None = None,
    unit: str = "step",
    tasks: Sequence[str] | None = None,
) -> str:
    """The paper's Table I rows (ws, wd, async fs, async fd) for the configuration found.

    One weight and one frequency row per task: ``tasks`` (the search's), else the tasks the
    configuration names, else the default tasks.
    """
    column = "Meta-learning task weighting"
    cfg = best_config or {}
    if async_frequencies is None:
        async_frequencies = bool(cfg.get("frequencies"))
    if async_frequencies:
        column += " async backprop"
    lines = [f"| Dataset | | {column} |", "|---|---|---:|"]
    weights = cfg.get("weights") or {}
    freqs = cfg.get("frequencies") or {}
    tasks = table_order(tasks or list(weights) or DEFAULT_TASKS)
    first = True
    for t in tasks:
        w = weights.get(t)
        lines.append(
            f"| {label if first else ''} | w{TASK_SHORT.get(t, '_' + t)} | {'-' if w is None else f'{w:.4f}'} |"
        )
        first = False
    for t in tasks:
        f = freqs.get(t) if async_frequencies else None
        lines.append(f"| | async f{TASK_SHORT.get(t, '_' + t)} | {'-' if f is None else int(f)} |")
    note = (
        "Weights are normalised to sum to 1 (paper §IV-C); async f is the backpropagation "
        f"period of the task in {unit}s (paper §IV-D)."
    )
    return "\n".join(["# Task weights found by meta-learning (paper Table I)", "", *lines, "", note, ""])


def write_report(
    out_dir: str | Path,
    records: Sequence[JournalRecord],
    *,
    meta: dict[str, Any] | None = None,
    space: SearchSpace | None = None,
    label: str | None = None,
) -> dict[str, Path]:
    """Write ``search.json``, ``table1.md`` and the figures; return their paths by name."""
    out_dir = Path(out_dir)
    outputs: dict[str, Path] = {"search.json": write_summary(out_dir, records, meta=meta)}
    best = best_record(records)
    async_frequencies = bool(getattr(space, "async_frequencies", False)) or any(
        r.config.get("frequencies") for r in records
    )
    table = out_dir / "table1.md"
    atomic_write_text(
        table,
        table1_markdown(
            best.config if best else None,
            label=label or out_dir.name,
            async_frequencies=async_frequencies,
            unit=async_unit(meta),
            tasks=getattr(space, "tasks", None),
        ),
    )
    outputs["table1.md"] = table
    if records:
        outputs.update(plot_search(out_dir, records, unit=async_unit(meta)))
    return outputs


def plot_search(
    out_dir: str | Path, records: Sequence[JournalRecord], *, unit: str = "step", prefix: str = "", title: str = ""
) -> dict[str, Path]:
    """Fig. 3a/3b/4a/4b style plots over evaluations (Agg backend).

    Files ``{prefix}fig3a_target.png`` ... in ``out_dir``; ``title`` is added to each plot's
    title (e.g. the dataset), ``unit`` names what the async periods count.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    x = [r.index + 1 for r in records]
    suffix = f"\n{title}" if title else ""
    outputs: dict[str, Path] = {}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out_dir / f"{prefix}{name}"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        outputs[path.name] = path

    def nan(v: Any) -> float:
        f = _finite(v)
        return float("nan") if f is None else f

    # Fig. 3a: target and best so far
    target = [nan(r.fitness) for r in records]
    best_so_far, running = [], -math.inf
    for t in target:
        if not math.isnan(t):
            running = max(running, t)
        best_so_far.append(running if math.isfinite(running) else float("nan"))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(x, target, "o", ms=4, alpha=0.7, label="evaluated configuration")
    ax.step(x, best_so_far, where="post", color="C3", label="best so far")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("geometric mean of mAP and mIoU (val)")
    ax.set_title(f"Target metric over the search (cf. Fig. 3a){suffix}", fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    save(fig, "fig3a_target.png")

    # Fig. 3b: per-task metrics
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, name in (("mAP", "detection mAP"), ("mIoU", "segmentation mIoU")):
        ax.plot(x, [nan(r.metrics.get(key)) for r in records], "o-", ms=3, lw=1, label=name)
    ax.set_xlabel("evaluation")
    ax.set_ylabel("val metric")
    ax.set_title(f"Task metrics over the search (cf. Fig. 3b){suffix}", fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    save(fig, "fig3b_metrics.png")

    # Fig. 4a: weights
    tasks = table_order(list(records[0].config.get("weights") or {}))
    if tasks:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for task in tasks:
            ax.plot(x, [r.config["weights"][task] for r in records], "o-", ms=3, lw=1, label=f"w_{task} (normalised)")
        ax.set_xlabel("evaluation")
        ax.set_ylabel("task weight")
        ax.set_ylim(0, 1)
        ax.set_title(f"Task weights tested (cf. Fig. 4a){suffix}", fontsize=10)
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        save(fig, "fig4a_weights.png")

    # Fig. 4b: async frequencies
    if any(r.config.get("frequencies") for r in records):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for task in table_order(list(records[0].config["frequencies"])):
            ax.plot(x, [r.config["frequencies"][task] for r in records], "o-", ms=3, lw=1, label=f"f_{task}")
        ax.set_xlabel("evaluation")
        ax.set_ylabel(f"backprop period ({unit}s)")
        ax.set_title(f"Async backpropagation frequency tested (cf. Fig. 4b){suffix}", fontsize=10)
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        save(fig, "fig4b_frequencies.png")
    return outputs
