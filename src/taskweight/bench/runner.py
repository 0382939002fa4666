"""Run the benchmark: every (dataset, method, seed) cell through the same trainer.

Each cell trains on the train split, selects its epoch (or, for meta / meta_async, its
search evaluation) on the val split, and is scored on the held-out test split. Finished
cells (``cell.json`` with status ``ok``) are skipped on a rerun; a failing cell is recorded
with its error and the others go on. Results and the report are rewritten after each cell.
"""

from __future__ import annotations

import csv
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from taskweight.bench.methods import PAPER_METHOD_ORDER, SEARCH_METHODS, valid_methods
from taskweight.bench.report import write_report
from taskweight.bench.results import CellRecord, save_results
from taskweight.config import PRESETS_DIR, TrainConfig, load_config
from taskweight.errors import ConfigError
from taskweight.jsonio import write_json

MAX_HISTORY_POINTS = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SynthSpec(_Strict):
    preset: str = "synth-kitti"
    train: int = Field(400, ge=1)
    val: int = Field(100, ge=1)
    test: int = Field(100, ge=1)
    seed: int = 0
    size: tuple[int, int] | None = None
    single_label_fraction: float = Field(0.0, ge=0, le=1)


class BenchDataset(_Strict):
    """A dataset of the benchmark: a synthetic one generated on demand, or a user's root."""

    name: str
    format: str = "kitti"
    root: Path | None = None
    synth: SynthSpec | None = None
    train_overrides: dict[str, Any] = Field(default_factory=dict, description="config overrides for this dataset")


class SearchSpec(_Strict):
    budget: int = Field(8, ge=1, description="evaluations of the meta-learning search")
    epochs_per_eval: int = Field(1, ge=1)
    optimizer: str = "es"
    executor: str = "local"
    address: str | None = None
    transfer: str | None = Field(None, description="best | generation; default: best for the local executor, generation for ray")


class BenchPreset(_Strict):
    train_preset: str = "quick"
    train_overrides: dict[str, Any] = Field(default_factory=dict)
    methods: list[str] = Field(default_factory=lambda: list(PAPER_METHOD_ORDER))
    method_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: int = Field(1, ge=1)
    datasets: list[BenchDataset]
    search: SearchSpec = Field(default_factory=SearchSpec)


BENCH_PRESETS_DIR = PRESETS_DIR / "bench"


def load_bench_preset(name_or_path: str | Path) -> BenchPreset:
    """A named bench preset (a YAML file in ``configs/bench``: quick, synth, ...) or a YAML file of the same schema."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BENCH_PRESETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in BENCH_PRESETS_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown bench preset {name_or_path!r}; available: {', '.join(names)}")
    if not path.is_file():
        raise ConfigError(f"{path}: bench preset file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return BenchPreset.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"option '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class BenchRunner:
    """Runs the cells of a bench preset into ``out_dir`` and reports them."""

    def __init__(
        self,
        preset: BenchPreset,
        out_dir: str | Path,
        *,
        datasets: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        seeds: int | None = None,
        roots: dict[str, Path] | None = None,
        show_progress: bool = True,
        console: Console | None = None,
        jobs: int = 1,
    ) -> None:
        if jobs < 1:
            raise ConfigError(f"option '--jobs' must be >= 1, got {jobs}")
        self.jobs = jobs
        self.preset = preset
        self.out_dir = Path(out_dir)
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress
        known = {d.name: d for d in preset.datasets}
        chosen = list(datasets) if datasets else list(known)
        unknown = [d for d in chosen if d not in known]
        if unknown:
            raise ConfigError(f"option '--datasets': unknown {unknown}; this preset has {list(known)}")
        self.datasets = [known[d].model_copy() for d in chosen]
        for ds in self.datasets:
            if roots and ds.name in roots:
                ds.root = Path(roots[ds.name])
            if ds.root is None and ds.synth is None:
                raise ConfigError(f"dataset {ds.name!r} needs a root: pass --root {ds.name}=DIR, "
                                  f"or leave it out with --datasets")
        self.methods = list(methods) if methods else list(preset.methods)
        valid = valid_methods()
        bad = [m for m in self.methods if m not in valid]
        if bad:
            raise ConfigError(f"option '--methods': unknown {bad}; valid: {sorted(valid)}")
        self.seeds = seeds or preset.seeds

    # ------------------------------------------------------------------ cells
    def cells(self) -> list[tuple[BenchDataset, str, int]]:
        """Every (dataset, method, seed), seed-major: a run cut short still holds whole tables for its first seeds."""
        return [(d, m, s) for s in range(self.seeds) for d in self.datasets for m in self.methods]

    def cell_dir(self, dataset: str, method: str, seed: int) -> Path:
        return self.out_dir / "cells" / dataset / method / f"seed{seed}"

    def run(self) -> list[CellRecord]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        cells = self.cells()
        records: dict[tuple[str, str, int], CellRecord] = {}
        pending = []
        for ds, method, seed in cells:
            path = self.cell_dir(ds.name, method, seed) / "cell.json"
            if path.is_file():
                import json

                record = CellRecord.from_dict(json.loads(path.read_text()), path)
                if record.status == "ok":
                    records[record.key] = record
                    continue
            pending.append((ds, method, seed))
        if len(pending) < len(cells):
            self.console.print(f"{len(cells) - len(pending)} of {len(cells)} cells already finished in {self.out_dir}: skipped")
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
        for ds in {d.name: d for d, _, _ in pending}.values():
            self.ensure_data(ds)  # once, before any cell (and any worker process) needs it

        def finished(record: CellRecord) -> None:
            records[record.key] = record
            if record.status != "ok":
                self.console.print(f"[red]cell {record.dataset}/{record.method}/seed{record.seed} failed:[/] {record.error}")
            save_results(self.out_dir, list(records.values()))
            write_report(self.out_dir, list(records.values()))

        with Progress(*columns, console=self.console, disable=not self.show_progress) as progress:
            bar = progress.add_task("cells", total=len(cells), completed=len(cells) - len(pending), info="")
            if self.jobs <= 1 or len(pending) <= 1:
                for i, (ds, method, seed) in enumerate(pending):
                    progress.update(bar, info=f"running {ds.name}/{method}/seed{seed}; {len(pending) - i - 1} left after it")
                    finished(self.run_cell(ds, method, seed))
                    progress.update(bar, advance=1)
            else:
                self._run_parallel(pending, progress, bar, finished)
        all_records = list(records.values())
        save_results(self.out_dir, all_records)
        write_report(self.out_dir, all_records)
        return all_records

    def _run_parallel(self, pending: list[tuple[BenchDataset, str, int]], progress: Progress, bar: Any,
                      finished: Any) -> None:
        """Run cells in ``jobs`` spawned processes sharing the machine (and its GPU, if any)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        state = self.preset.model_dump(mode="json")
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {
                pool.submit(_run_cell_in_worker, state, str(self.out_dir), ds.model_dump(mode="json"), method, seed,
                            threads): (ds, method, seed)
                for ds, method, seed in pending
            }
            left = len(futures)
            progress.update(bar, info=f"{min(self.jobs, left)} running, {left} left")
            for future in as_completed(futures):
                ds, method, seed = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died is a failed cell
                    record = CellRecord(dataset=ds.name, method=method, seed=seed, status="failed",
                                        error=f"{type(exc).__name__}: {exc}",
                                        run_dir=str(self.cell_dir(ds.name, method, seed).relative_to(self.out_dir)))
                finished(record)
                left -= 1
                progress.update(bar, advance=1, info=f"{min(self.jobs, left)} running, {left} left")

    def run_cell(self, ds: BenchDataset, method: str, seed: int) -> CellRecord:
        cell_dir = self.cell_dir(ds.name, method, seed)
        cell_dir.mkdir(parents=True, exist_ok=True)
        record = CellRecord(dataset=ds.name, method=method, seed=seed, run_dir=str(cell_dir.relative_to(self.out_dir)))
        started = time.perf_counter()
        try:
            config = self.train_config(ds, method, seed)
            if method in SEARCH_METHODS:
                self._run_search_cell(config, method, seed, cell_dir, record)
            else:
                self._run_train_cell(config, cell_dir, record)
        except Exception as exc:  # noqa: BLE001 - a failing cell is reported, the others go on
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            (cell_dir / "error.txt").write_text(traceback.format_exc())
        if not record.train_time_s:
            record.train_time_s = time.perf_counter() - started
        write_json(cell_dir / "cell.json", record.to_dict())
        return record

    def train_config(self, ds: BenchDataset, method: str, seed: int) -> TrainConfig:
        root = self.ensure_data(ds)
        overrides = _deep_merge(self.preset.train_overrides, ds.train_overrides)
        overrides = _deep_merge(overrides, {"data": {"format": ds.format, "root": str(root)}, "seed": seed})
        if method not in SEARCH_METHODS:
            overrides["method"] = {"name": method, "options": self.preset.method_options.get(method, {})}
        return load_config(self.preset.train_preset, overrides=overrides)

    def ensure_data(self, ds: BenchDataset) -> Path:
        """The dataset's root; synthetic datasets are generated once under ``out/data``."""
        if ds.root is not None:
            return ds.root
        assert ds.synth is not None
        root = self.out_dir / "data" / ds.name
        if not (root / "synth.json").is_file():
            from taskweight.synth import generate_dataset

            s = ds.synth
            self.console.print(f"generating {ds.name} ({s.preset}: {s.train}/{s.val}/{s.test}) in {root}")
            generate_dataset(root, preset=s.preset, train=s.train, val=s.val, test=s.test, seed=s.seed,
                             size=s.size, single_label_fraction=s.single_label_fraction,
                             workers=os.cpu_count() or 1)
        return root

    # ------------------------------------------------------------- cell kinds
    def _run_train_cell(self, config: TrainConfig, cell_dir: Path, record: CellRecord) -> None:
        from taskweight.scoring import score_run
        from taskweight.trainer import Trainer

        run_dir = cell_dir / "run"
        result = Trainer(config, run_dir, show_progress=False, console=self.console).fit(resume=True)
        test = score_run(run_dir, split=config.data.test_split)
        self._fill_metrics(record, test, result.metrics["best"])
        record.epochs = int(result.metrics["epochs"])
        record.train_time_s = float(result.metrics["train_time_s"])
        record.weights = dict(result.metrics["final_weights"])
        freqs = config.method.options.get("frequencies") if config.method.name == "async" else None
        record.frequencies = dict(freqs) if freqs else None
        record.weight_history = read_weight_history(run_dir / "weights.csv")

    def _run_search_cell(self, config: TrainConfig, method: str, seed: int, cell_dir: Path, record: CellRecord) -> None:
        from taskweight.scoring import score_checkpoint
        from taskweight.search import search_task_weights

        s = self.preset.search
        result = search_task_weights(
            config, cell_dir / "search", async_frequencies=method == "meta_async", budget=s.budget,
            epochs_per_eval=s.epochs_per_eval, optimizer=s.optimizer, seed=seed, executor=s.executor,
            ray_address=s.address, resume=True, progress=False, transfer=s.transfer,
        )
        test = score_checkpoint(config, result.best_checkpoint, split=config.data.test_split)
        self._fill_metrics(record, test, result.best_metrics)
        record.epochs = int(result.total_epochs)
        record.train_time_s = float(result.total_wall_time_s)
        best = result.best_config
        record.weights = dict(best["weights"])
        record.frequencies = dict(best["frequencies"]) if best.get("frequencies") else None
        record.weight_history = [[i, dict(c["weights"])] for i, c in enumerate(result.evaluated_configs)]

    @staticmethod
    def _fill_metrics(record: CellRecord, test: dict[str, float], val: dict[str, Any] | None) -> None:
        record.mAP = test.get("mAP")
        record.mIoU = test.get("mIoU")
        record.geometric_mean = test.get("geometric_mean")
        record.mAP_coco = test.get("mAP_coco")
        record.val = dict(val or {})


def _run_cell_in_worker(preset: dict[str, Any], out_dir: str, dataset: dict[str, Any], method: str, seed: int,
                        threads: int) -> CellRecord:
    """One cell in a worker process of ``BenchRunner(jobs=N)``."""
    import torch

    torch.set_num_threads(threads)
    runner = BenchRunner(BenchPreset.model_validate(preset), out_dir, show_progress=False)
    return runner.run_cell(BenchDataset.model_validate(dataset), method, seed)


def read_weight_history(path: Path, max_points: int = MAX_HISTORY_POINTS) -> list[Any]:
    """Downsample ``weights.csv`` to at most ``max_points`` [step, {task: weight}] entries."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return []
    stride = max(1, len(rows) // max_points)
    history = []
    for row in rows[::stride]:
        weights = {k.removeprefix("weight_"): float(v) for k, v in row.items() if k.startswith("weight_") and v not in ("", None)}
        history.append([int(row["step"]), weights])
    return history
