"""``taskweight search``: the meta-learning search from the command line (registered by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def search(
    out: Annotated[
        Path,
        typer.Option("--out", help="search folder: journal.jsonl, evals/NNNN/ runs, table1.md, search.json, fig*.png"),
    ],
    data: Annotated[Path | None, typer.Option("--data", help="dataset root (overrides data.root)")] = None,
    format: Annotated[str | None, typer.Option("--format", help="dataset layout, e.g. kitti")] = None,
    preset: Annotated[
        str, typer.Option(help="training preset every evaluation starts from: quick, tiny or paper")
    ] = "quick",
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding the preset (validated; errors name the line)")
    ] = None,
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            "--tasks",
            help="the tasks every evaluation trains (and whose weights are searched), any of det, seg, depth: a "
            "comma list or the option repeated, e.g. --tasks det,seg,depth (default: the preset's or --config's "
            "`tasks`, det,seg in the shipped presets); depth needs depth ground truth (`taskweight synth --depth`)",
        ),
    ] = None,
    budget: Annotated[
        int, typer.Option(min=1, help="number of configurations to train and score (the paper's best came after 44)")
    ] = 16,
    epochs_per_eval: Annotated[
        int,
        typer.Option(
            "--epochs-per-eval", min=1, help="training epochs per configuration; each fine-tunes the best model so far"
        ),
    ] = 1,
    async_frequencies: Annotated[
        bool,
        typer.Option(
            "--async/--no-async", help="also search the async backprop period of each task, 1..10 (meta_async, §IV-D)"
        ),
    ] = False,
    async_unit: Annotated[
        str,
        typer.Option(
            "--async-unit",
            help="what the async periods count: step (each run's optimiser steps) or epoch (the epochs of the "
            "continuous fine-tuning, as the paper's §IV-D text)",
        ),
    ] = "step",
    optimizer: Annotated[
        str, typer.Option(help="es (the paper's evolution strategy), random or cmaes (baselines)")
    ] = "es",
    executor: Annotated[
        str, typer.Option(help="local (one run after another) or ray (a generation's runs in parallel)")
    ] = "local",
    transfer: Annotated[
        str | None,
        typer.Option(
            help="where each run starts: best (the best model finished before it; local only) or generation "
            "(the best before its generation). Default: best with --executor local, generation with ray"
        ),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address for --executor ray (default: start a local Ray)")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="seed of the search and of every training run (default: the config's seed)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="replay OUT/journal.jsonl and continue the search where it stopped")
    ] = False,
    progress: Annotated[bool, typer.Option(help="print one line per finished evaluation")] = True,
) -> None:
    """Meta-learn the task weights (and async frequencies) with the evolution strategy.

    Each configuration trains --epochs-per-eval epochs from the best model found so far
    (dynamic weight transfer, --transfer) and is scored on the val split by the geometric mean of the
    tasks' scores: mAP and mIoU (paper §IV-C), and depth δ<1.25 with --tasks det,seg,depth. Prints the
    best configuration and writes table1.md (the paper's Table I), search.json and the Fig. 3/4 plots
    into --out.
    """
    from rich.console import Console

    from taskweight.classes import parse_tasks
    from taskweight.config import load_config
    from taskweight.errors import ConfigError
    from taskweight.search.evaluation import ASYNC_UNITS
    from taskweight.search.optimizers import OPTIMIZERS
    from taskweight.search.search import EXECUTORS, TRANSFERS, SearchError, search_task_weights

    def fail(message: str) -> None:
        raise ConfigError(message)

    if optimizer not in OPTIMIZERS:
        fail(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if executor not in EXECUTORS:
        fail(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if transfer is not None and transfer not in TRANSFERS:
        fail(f"--transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
    if async_unit not in ASYNC_UNITS:
        fail(f"--async-unit must be one of {', '.join(ASYNC_UNITS)}, got {async_unit!r}")
    overrides: dict = {"data": {}}
    if data is not None:
        overrides["data"]["root"] = str(data)
    if format is not None:
        overrides["data"]["format"] = format
    if seed is not None:
        overrides["seed"] = seed
    if tasks:
        overrides["tasks"] = list(parse_tasks(tasks, "--tasks"))
    cfg = load_config(preset, config, overrides)
    result = search_task_weights(
        cfg,
        out,
        async_frequencies=async_frequencies,
        budget=budget,
        epochs_per_eval=epochs_per_eval,
        optimizer=optimizer,
        seed=cfg.seed if seed is None else seed,
        executor=executor,
        ray_address=address,
        resume=resume,
        progress=progress,
        transfer=transfer,
        async_unit=async_unit,
    )
    best = result.best_config
    if not best or result.best_index is None:
        raise SearchError(f"no evaluation succeeded; see {result.journal_path}")
    out_console = Console()
    weights = ", ".join(f"w_{t} = {w:.4f}" for t, w in best["weights"].items())
    freqs = best.get("frequencies")
    metrics = result.best_metrics or {}
    out_console.print(
        f"best configuration (evaluation {result.best_index + 1} of {len(result.records)}): {weights}"
        + (", " + ", ".join(f"f_{t} = {f}" for t, f in freqs.items()) if freqs else "")
    )
    out_console.print(
        "val "
        + ", ".join(
            f"{k} {metrics[k]:.4f}"
            for k in ("mAP", "mIoU", "delta1", "geometric_mean")
            if isinstance(metrics.get(k), (int, float))
        )
    )
    out_console.print(
        f"checkpoint: {result.best_checkpoint}; {result.total_epochs} epochs in "
        f"{result.total_wall_time_s:.0f} s; outputs in {out}"
    )
