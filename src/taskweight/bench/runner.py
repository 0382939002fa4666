"""Run the benchmark: every (dataset, method, seed) cell through the same trainer.

Each cell trains on the train split, selects its epoch (or, for meta / meta_async, its
search evaluation) on the val split, and scores that checkpoint (``best.pt``) on the
held-out test split. Finished cells (``cell.json`` with status ``ok``) are skipped on a
rerun; a failing cell is recorded with its error and the others go on. Results and the
report are rewritten after each cell.

Two protocols (preset key ``protocol``, ``taskweight bench --protocol``):

- ``matched`` — every column trains the same epochs: the baselines the training config's
  ``epochs`` E, the searches E / e evaluations of e = ``search.epochs_per_eval`` epochs (the
  ``synth`` preset: 10 × 1; ``search.budget`` is the paper protocol's N and not used). The
  async periods count optimiser steps unless ``search.async_unit`` says otherwise.
- ``paper`` — the paper's procedure (§IV-C/D, §V): the baselines train E epochs with best-val
  checkpoint selection; the searches run N = ``search.budget`` evaluations of
  e = ``search.epochs_per_eval`` epochs, each fine-tuning the best model finished before it
  (transfer ``best``), and report the best of them; ``meta_async``'s periods count the
  epochs of that continuous fine-tuning (``search.async_unit`` epoch, the default here).

Under either protocol the control column ``equal_control`` trains ``equal`` for as many
epochs as the lineage of ``meta_async``'s best model received (same dataset and seed), from
scratch: it runs after that ``meta_async`` cell and reads its ``cell.json``.
"""

from __future__ import annotations

import csv
import json
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from taskweight.bench.methods import CONTROL_METHODS, PAPER_METHOD_ORDER, SEARCH_METHODS, valid_methods
from taskweight.bench.pools import EXECUTORS, make_pool
from taskweight.bench.report import write_report
from taskweight.bench.results import CellRecord, save_results
from taskweight.classes import DEPTH_METRICS
from taskweight.config import PRESETS_DIR, ConfigLayer, TrainConfig, _line_of, load_config
from taskweight.durable import FolderLock
from taskweight.errors import ConfigError, DataFormatError
from taskweight.jsonio import read_json_file, write_json

MAX_HISTORY_POINTS = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SynthSpec(_Strict):
    """The generator settings of a synthetic bench dataset (``taskweight synth``'s options)."""

    preset: str = "synth-kitti"
    train: int = Field(400, ge=1)
    val: int = Field(100, ge=1)
    test: int = Field(100, ge=1)
    seed: int = 0
    size: tuple[int, int] | None = None
    single_label_fraction: float = Field(0.0, ge=0, le=1)
    depth: bool = Field(
        False,
        description="also write every scene's depth in the preset's own format (KITTI uint16 depth PNGs, "
        "Cityscapes disparity + camera files, WoodScape depth/ PNGs); "
        "needed by a dataset whose training config has depth in its tasks",
    )
    depth_pattern: str = Field("dense", description="with depth: dense (every pixel) or lidar (64 beam rows)")


class BenchDataset(_Strict):
    """A dataset of the benchmark: a synthetic one generated on demand, or a user's root.

    ``train_overrides`` may set ``tasks`` (as the preset's ``train_overrides`` may for every dataset):
    the dataset's cells train and are scored on those tasks.
    """

    name: str
    format: str = "kitti"
    root: Path | None = None
    synth: SynthSpec | None = None
    train_overrides: dict[str, Any] = Field(default_factory=dict, description="config overrides for this dataset")


class SearchSpec(_Strict):
    budget: int = Field(
        8,
        ge=1,
        description="evaluations of the meta-learning search under the paper protocol "
        "(matched: the baselines' epochs / epochs_per_eval)",
    )
    epochs_per_eval: int = Field(1, ge=1)
    optimizer: str = "es"
    executor: str = "local"
    address: str | None = None
    transfer: str | None = Field(
        None, description="best | generation; default: best for the local executor, generation for ray"
    )
    async_unit: Literal["step", "epoch"] | None = Field(
        None, description="what meta_async's periods count; default: epoch under the paper protocol, step under matched"
    )


PROTOCOLS: tuple[str, ...] = ("matched", "paper")
Protocol = Literal["matched", "paper"]


class BenchPreset(_Strict):
    protocol: Protocol = "matched"
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
    from taskweight.yamlio import load_yaml, yaml_error_location

    try:
        data = load_yaml(path) or {}
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        preset = BenchPreset.model_validate(data)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read bench preset: {exc}") from None
    except yaml.YAMLError as exc:
        line, message = yaml_error_location(exc)
        where = f"{path}:{line}" if line is not None else f"{path}"
        raise ConfigError(f"{where}: invalid YAML: {message}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(path, node, tuple(e['loc']))}: option '{'.'.join(map(str, e['loc']))}': {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(problems) from None
    check_bench_preset(preset, path, node)
    return preset


def _where(path: Path, node: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    line = _line_of(node, loc) if node is not None else None
    return f"{path}:{line}" if line else str(path)


def check_bench_preset(preset: BenchPreset, path: Path, node: yaml.Node | None = None) -> None:
    """Validate everything a preset names before any data is generated or any cell runs.

    Methods against the registry, ``method_options`` against each strategy (types and
    ranges), every dataset's training configuration (preset, ``train_overrides``, the
    dataset's own overrides), the synthetic datasets' generator settings, and that a synthetic
    dataset trained with depth (``tasks`` naming depth) is generated with ``synth.depth``.
    Errors name the preset file, the line and the key.
    """
    from taskweight import weighting
    from taskweight.synth import check_generator_options

    valid = valid_methods()
    for i, method in enumerate(preset.methods):
        if method not in valid:
            raise ConfigError(
                f"{_where(path, node, ('methods', i))}: option 'methods': unknown method {method!r}; "
                f"valid: {', '.join(sorted(valid))}"
            )
    for method, options in preset.method_options.items():
        where = _where(path, node, ("method_options", method))
        if method in SEARCH_METHODS or method in CONTROL_METHODS or method not in weighting.available():
            raise ConfigError(
                f"{where}: option 'method_options.{method}': only a weighting strategy takes options "
                f"({', '.join(weighting.available())})"
            )
        try:
            weighting.get(method, **options)
        except ValueError as exc:
            raise ConfigError(f"{where}: option 'method_options.{method}': {exc}") from None
    for i, ds in enumerate(preset.datasets):
        config = load_config(
            preset.train_preset,
            layers=[
                ConfigLayer(str(path), preset.train_overrides, node, ("train_overrides",)),
                ConfigLayer(str(path), ds.train_overrides, node, ("datasets", i, "train_overrides")),
            ],
        )
        if ds.synth is not None:
            s = ds.synth
            try:
                check_generator_options(
                    s.preset,
                    train=s.train,
                    val=s.val,
                    test=s.test,
                    size=s.size,
                    single_label_fraction=s.single_label_fraction,
                    depth=s.depth,
                    depth_pattern=s.depth_pattern,
                )
            except ValueError as exc:
                raise ConfigError(
                    f"{_where(path, node, ('datasets', i, 'synth'))}: option 'datasets[{i}].synth': {exc}"
                ) from None
            if "depth" in config.tasks and not s.depth:
                raise ConfigError(
                    f"{_where(path, node, ('datasets', i, 'synth'))}: option 'datasets[{i}].synth.depth': dataset "
                    f"{ds.name!r} trains the tasks {config.tasks}, but its synthetic data is generated without "
                    "depth; set depth: true in its synth block"
                )


def search_settings(spec: SearchSpec, protocol: str, *, epochs: int, option: str = "protocol") -> dict[str, Any]:
    """The keyword arguments of :func:`taskweight.search.search_task_weights` a protocol gives a search cell.

    ``epochs``: the baselines' epochs E on that dataset (matched: the search gets E / e
    evaluations). ``option`` names where the protocol came from in errors (the preset key or
    ``--protocol``).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"option '{option}' must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    budget, transfer = spec.budget, spec.transfer
    unit = spec.async_unit or ("epoch" if protocol == "paper" else "step")
    if protocol == "matched":
        if epochs % spec.epochs_per_eval:
            raise ConfigError(
                f"option 'search.epochs_per_eval': the matched protocol gives a search the baselines' "
                f"{epochs} epochs, which {spec.epochs_per_eval}-epoch evaluations cannot split evenly"
            )
        budget = epochs // spec.epochs_per_eval
    else:
        if spec.transfer not in (None, "best"):
            raise ConfigError(
                f"option '{option}': the paper protocol fine-tunes every evaluation from the best model "
                f"finished before it (search.transfer best); the preset sets search.transfer "
                f"{spec.transfer!r}"
            )
        if spec.executor != "local":
            raise ConfigError(
                f"option '{option}': the paper protocol runs the evaluations one after another "
                f"(search.executor local); the preset sets search.executor {spec.executor!r}"
            )
        transfer = "best"
    return {
        "budget": budget,
        "epochs_per_eval": spec.epochs_per_eval,
        "optimizer": spec.optimizer,
        "executor": spec.executor,
        "ray_address": spec.address,
        "transfer": transfer,
        "async_unit": unit,
    }


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
        protocol: str | None = None,
        executor: str = "local",
        address: str | None = None,
    ) -> None:
        if jobs < 1:
            raise ConfigError(f"option '--jobs' must be >= 1, got {jobs}")
        if executor not in EXECUTORS:
            raise ConfigError(f"option '--executor' must be one of {', '.join(EXECUTORS)}, got {executor!r}")
        if address is not None and executor != "ray":
            raise ConfigError("option '--address' is the Ray cluster of --executor ray")
        self.jobs = jobs
        self.executor = executor
        self.address = address
        self._protocol_option = "--protocol" if protocol else "protocol"
        if (protocol or preset.protocol) not in PROTOCOLS:
            raise ConfigError(
                f"option '{self._protocol_option}' must be one of {', '.join(PROTOCOLS)}, "
                f"got {protocol or preset.protocol!r}"
            )
        self.preset = preset.model_copy(update={"protocol": protocol}) if protocol else preset
        self.protocol: str = self.preset.protocol
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
                raise ConfigError(
                    f"dataset {ds.name!r} needs a root: pass --root {ds.name}=DIR, or leave it out with --datasets"
                )
        self.methods = list(methods) if methods else list(preset.methods)
        valid = valid_methods()
        bad = [m for m in self.methods if m not in valid]
        if bad:
            raise ConfigError(f"option '--methods': unknown {bad}; valid: {sorted(valid)}")
        self.seeds = seeds or preset.seeds
        if any(m in SEARCH_METHODS for m in self.methods):
            for ds in self.datasets:  # a protocol the preset's search settings contradict fails before any cell runs
                self.search_settings(ds)

    def dataset_tasks(self, ds: BenchDataset) -> tuple[str, ...]:
        """The tasks ``ds``'s cells train and are scored on (``tasks`` of the preset's or the dataset's
        ``train_overrides``; the training preset's otherwise)."""
        overrides = _deep_merge(self.preset.train_overrides, ds.train_overrides)
        return tuple(load_config(self.preset.train_preset, overrides=overrides).tasks)

    def search_settings(self, ds: BenchDataset) -> dict[str, Any]:
        """The search settings of ``ds``'s search cells under this run's protocol (see :func:`search_settings`)."""
        overrides = _deep_merge(self.preset.train_overrides, ds.train_overrides)
        epochs = load_config(self.preset.train_preset, overrides=overrides).epochs
        return search_settings(self.preset.search, self.protocol, epochs=epochs, option=self._protocol_option)

    # ------------------------------------------------------------------ cells
    def cells(self) -> list[tuple[BenchDataset, str, int]]:
        """Every (dataset, method, seed), seed-major: a run cut short still holds whole tables for its first seeds.

        Within a seed the control columns come last, after the search cells they depend on.
        """
        out = []
        for s in range(self.seeds):
            for controls in (False, True):
                out += [(d, m, s) for d in self.datasets for m in self.methods if (m in CONTROL_METHODS) == controls]
        return out

    @staticmethod
    def depends_on(dataset: str, method: str, seed: int) -> tuple[str, str, int] | None:
        """The cell that must finish before this one (a control's search cell), or None."""
        return (dataset, CONTROL_METHODS[method][1], seed) if method in CONTROL_METHODS else None

    def cell_dir(self, dataset: str, method: str, seed: int) -> Path:
        return self.out_dir / "cells" / dataset / method / f"seed{seed}"

    def finished_cell(self, dataset: str, method: str, seed: int) -> CellRecord | None:
        """The record of a cell that finished (status ``ok``) in ``out_dir``, or None.

        A search or control cell run under another protocol is an error: its numbers answer
        another question (baseline cells are the same under both protocols and are reused).
        """
        path = self.cell_dir(dataset, method, seed) / "cell.json"
        if not path.is_file():
            return None
        try:
            record = CellRecord.from_dict(json.loads(path.read_text()), path)
        except (json.JSONDecodeError, UnicodeDecodeError, DataFormatError, TypeError, AttributeError) as exc:
            self.console.print(f"[yellow]warning:[/] {path}: unreadable cell record ({exc}); the cell runs again")
            return None
        if record.status != "ok":
            return None
        if (method in SEARCH_METHODS or method in CONTROL_METHODS) and record.protocol != self.protocol:
            raise ConfigError(
                f"{path}: this cell ran under protocol {record.protocol!r}, this run is "
                f"{self.protocol!r}; use another --out (only baseline cells can be shared)"
            )
        return record

    def run(self) -> list[CellRecord]:
        """Run every pending cell (the folder is locked against a second bench meanwhile)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.out_dir, "bench folder"):
            return self._run()

    def _run(self) -> list[CellRecord]:
        cells = self.cells()
        records: dict[tuple[str, str, int], CellRecord] = {}
        pending = []
        for ds, method, seed in cells:
            record = self.finished_cell(ds.name, method, seed)
            if record is not None:
                records[record.key] = record
                continue
            pending.append((ds, method, seed))
        if len(pending) < len(cells):
            self.console.print(
                f"{len(cells) - len(pending)} of {len(cells)} cells already finished in {self.out_dir}: skipped"
            )
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        for ds in {d.name: d for d, _, _ in pending}.values():
            self.ensure_data(ds)  # once, before any cell (and any worker process) needs it
            self._warn_if_older_generator(ds)

        def finished(record: CellRecord) -> None:
            records[record.key] = record
            if record.status != "ok":
                self.console.print(
                    f"[red]cell {record.dataset}/{record.method}/seed{record.seed} failed:[/] {record.error}"
                )
            save_results(self.out_dir, list(records.values()))
            write_report(self.out_dir, list(records.values()), search_figures=False)

        with Progress(*columns, console=self.console, disable=not self.show_progress) as progress:
            bar = progress.add_task("cells", total=len(cells), completed=len(cells) - len(pending), info="")
            if self.executor == "local" and (self.jobs <= 1 or len(pending) <= 1):
                for i, (ds, method, seed) in enumerate(pending):
                    progress.update(
                        bar, info=f"running {ds.name}/{method}/seed{seed}; {len(pending) - i - 1} left after it"
                    )
                    finished(self.run_cell(ds, method, seed))
                    progress.update(bar, advance=1)
            else:
                self._run_parallel(pending, progress, bar, finished)
        all_records = list(records.values())
        save_results(self.out_dir, all_records)
        write_report(self.out_dir, all_records)
        return all_records

    def hold_back(
        self, pending: Sequence[tuple[BenchDataset, str, int]]
    ) -> tuple[list[tuple[BenchDataset, str, int]], dict[tuple[str, str, int], list[Any]]]:
        """Split ``pending`` into cells that can start now and, by the key of the cell each waits for, the others."""
        keys = {(d.name, m, s) for d, m, s in pending}
        ready: list[tuple[BenchDataset, str, int]] = []
        waiting: dict[tuple[str, str, int], list[Any]] = {}
        for ds, method, seed in pending:
            dependency = self.depends_on(ds.name, method, seed)
            if dependency in keys:
                waiting.setdefault(dependency, []).append((ds, method, seed))
            else:
                ready.append((ds, method, seed))
        return ready, waiting

    def _run_parallel(
        self, pending: list[tuple[BenchDataset, str, int]], progress: Progress, bar: Any, finished: Any
    ) -> None:
        """Run cells in ``jobs`` spawned processes sharing the machine (and its GPU, if any), or as
        tasks of a Ray cluster (:mod:`taskweight.bench.pools`).

        A control cell is submitted once the search cell it depends on has finished.
        """
        state = self.preset.model_dump(mode="json")
        ready, waiting = self.hold_back(pending)
        pool = make_pool(self.executor, self.jobs, self.address)

        def submit(cell: tuple[BenchDataset, str, int]) -> Any:
            ds, method, seed = cell
            return pool.submit(_run_cell_in_worker, state, str(self.out_dir), ds.model_dump(mode="json"), method, seed)

        try:
            running: dict[Any, tuple[BenchDataset, str, int]] = {submit(cell): cell for cell in ready}
            left = len(pending)
            progress.update(bar, info=f"{min(pool.slots, left)} running, {left} left")
            while running:
                for handle in pool.wait_any(list(running)):
                    ds, method, seed = running.pop(handle)
                    try:
                        record = pool.result(handle)
                    except Exception as exc:
                        record = CellRecord(
                            dataset=ds.name,
                            method=method,
                            seed=seed,
                            status="failed",
                            error=f"{type(exc).__name__}: {exc}",
                            protocol=self.protocol,
                            run_dir=str(self.cell_dir(ds.name, method, seed).relative_to(self.out_dir)),
                        )
                    finished(record)
                    for cell in waiting.pop(record.key, []):
                        running[submit(cell)] = cell
                    left -= 1
                    progress.update(bar, advance=1, info=f"{min(pool.slots, left)} running, {left} left")
        finally:
            pool.close()

    def run_cell(self, ds: BenchDataset, method: str, seed: int) -> CellRecord:
        cell_dir = self.cell_dir(ds.name, method, seed)
        cell_dir.mkdir(parents=True, exist_ok=True)
        record = CellRecord(
            dataset=ds.name, method=method, seed=seed, protocol=self.protocol, run_dir=self._rel(cell_dir)
        )
        started = time.perf_counter()
        try:
            record.tasks = list(self.dataset_tasks(ds))
            if method in SEARCH_METHODS:
                self._run_search_cell(ds, method, seed, cell_dir, record)
            elif method in CONTROL_METHODS:
                self._run_control_cell(ds, method, seed, cell_dir, record)
            else:
                self._run_train_cell(self.train_config(ds, method, seed), cell_dir, record)
        except Exception as exc:
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            (cell_dir / "error.txt").write_text(traceback.format_exc())
        if not record.train_time_s:
            record.train_time_s = time.perf_counter() - started
        write_json(cell_dir / "cell.json", record.to_dict())
        return record

    def train_config(self, ds: BenchDataset, method: str, seed: int, *, epochs: int | None = None) -> TrainConfig:
        """The training configuration of a cell (a search cell: the one its evaluations start from)."""
        root = self.ensure_data(ds)
        overrides = _deep_merge(self.preset.train_overrides, ds.train_overrides)
        overrides = _deep_merge(overrides, {"data": {"format": ds.format, "root": str(root)}, "seed": seed})
        if method not in SEARCH_METHODS:
            overrides["method"] = {"name": method, "options": self.preset.method_options.get(method, {})}
        if epochs is not None:
            overrides["epochs"] = epochs
        return load_config(self.preset.train_preset, overrides=overrides)

    def ensure_data(self, ds: BenchDataset) -> Path:
        """The dataset's root; synthetic datasets are generated once under ``out/data`` (again when
        depth is asked of data generated without it)."""
        if ds.root is not None:
            return ds.root
        assert ds.synth is not None
        root = self.out_dir / "data" / ds.name
        if not (root / "synth.json").is_file() or (
            ds.synth.depth and not _has_synth_depth(root, ds.synth.depth_pattern)
        ):
            from taskweight.synth import generate_dataset

            s = ds.synth
            with_depth = f", depth {s.depth_pattern}" if s.depth else ""
            self.console.print(f"generating {ds.name} ({s.preset}: {s.train}/{s.val}/{s.test}{with_depth}) in {root}")
            generate_dataset(
                root,
                preset=s.preset,
                train=s.train,
                val=s.val,
                test=s.test,
                seed=s.seed,
                size=s.size,
                single_label_fraction=s.single_label_fraction,
                workers=os.cpu_count() or 1,
                depth=s.depth,
                depth_pattern=s.depth_pattern,
            )
        return root

    def _warn_if_older_generator(self, ds: BenchDataset) -> None:
        """Say so when a synthetic dataset of this bench folder was written by an older generator: its cells
        stay comparable with each other, not with a table built on the current generator's data."""
        if ds.synth is None or ds.root is not None:
            return
        from taskweight.synth import PRESETS

        marker = self.out_dir / "data" / ds.name / "synth.json"
        doc, _text = read_json_file(marker, "synth.json")
        written = doc.get("format_version") if isinstance(doc, dict) else None
        current = PRESETS[ds.synth.preset]["format_version"]
        if written != current:
            self.console.print(
                f"[yellow]{ds.name}: {marker} says format version {written}; this taskweight writes version "
                f"{current} ({PRESETS[ds.synth.preset]['changes']}). The cells of this folder stay comparable "
                f"with each other; delete {marker.parent} and cells/{ds.name} to train on the current data.[/]"
            )

    # ------------------------------------------------------------- cell kinds
    def _rel(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def _run_train_cell(self, config: TrainConfig, cell_dir: Path, record: CellRecord) -> None:
        """Train ``config.epochs`` epochs (resuming a cut-short run), score the best-val ``best.pt`` on test."""
        from taskweight.scoring import score_checkpoint
        from taskweight.trainer import CHECKPOINT_BEST, Trainer

        run_dir = cell_dir / "run"
        result = Trainer(config, run_dir, show_progress=False, console=self.console).fit(resume=True)
        test = score_checkpoint(config, run_dir / CHECKPOINT_BEST, split=config.data.test_split)
        self._fill_metrics(record, test, {**result.metrics["best"], "best_epoch": result.metrics["best_epoch"]})
        record.checkpoint = self._rel(run_dir / CHECKPOINT_BEST)
        record.epochs = int(result.metrics["epochs"])
        record.train_time_s = float(result.metrics["train_time_s"])
        record.weights = dict(result.metrics["final_weights"])
        freqs = config.method.options.get("frequencies") if config.method.name == "async" else None
        record.frequencies = dict(freqs) if freqs else None
        record.weight_history = read_weight_history(run_dir / "weights.csv")

    def _run_search_cell(self, ds: BenchDataset, method: str, seed: int, cell_dir: Path, record: CellRecord) -> None:
        """The search under this run's protocol; the best evaluation's ``best.pt`` is scored on test."""
        from taskweight.scoring import score_checkpoint
        from taskweight.search import search_task_weights

        config = self.train_config(ds, method, seed)
        settings = self.search_settings(ds)
        is_async = method == "meta_async"
        result = search_task_weights(
            config, cell_dir / "search", async_frequencies=is_async, seed=seed, resume=True, progress=False, **settings
        )
        if result.best_checkpoint is None:
            raise RuntimeError(f"no evaluation of the search succeeded; see {result.journal_path}")
        test = score_checkpoint(config, result.best_checkpoint, split=config.data.test_split)
        self._fill_metrics(record, test, result.best_metrics)
        record.checkpoint = self._rel(result.best_checkpoint)
        record.epochs = int(result.total_epochs)
        record.train_time_s = result.total_train_time_s
        record.lineage = [r.index for r in result.best_lineage]
        record.lineage_epochs = result.best_lineage_epochs
        record.async_unit = settings["async_unit"] if is_async else None
        best = result.best_config
        record.weights = dict(best["weights"])
        record.frequencies = dict(best["frequencies"]) if best.get("frequencies") else None
        record.weight_history = [[i, dict(c["weights"])] for i, c in enumerate(result.evaluated_configs)]

    def _run_control_cell(self, ds: BenchDataset, method: str, seed: int, cell_dir: Path, record: CellRecord) -> None:
        """``equal`` (the control's strategy) from scratch for the epochs of the search's best lineage, same seed."""
        strategy, source = CONTROL_METHODS[method]
        searched = self.finished_cell(ds.name, source, seed)
        if searched is None:
            raise RuntimeError(
                f"{method} trains for the epochs of the {source} cell {ds.name}/seed{seed}, which has "
                f"not finished in {self.out_dir}; run it first (--methods {source} {method})"
            )
        if not searched.lineage_epochs:
            raise RuntimeError(
                f"the {source} cell {ds.name}/seed{seed} records no lineage epochs (written by an "
                f"older version?); run that cell again"
            )
        self._run_train_cell(self.train_config(ds, strategy, seed, epochs=searched.lineage_epochs), cell_dir, record)
        record.lineage = list(searched.lineage or [])
        record.lineage_epochs = searched.lineage_epochs

    @staticmethod
    def _fill_metrics(record: CellRecord, test: dict[str, float], val: dict[str, Any] | None) -> None:
        record.mAP = test.get("mAP")
        record.mIoU = test.get("mIoU")
        record.geometric_mean = test.get("geometric_mean")
        record.mAP_coco = test.get("mAP_coco")
        for key in DEPTH_METRICS:
            setattr(record, key, test.get(key))
        record.val = dict(val or {})


def _has_synth_depth(root: Path, pattern: str) -> bool:
    """Whether the synthetic dataset at ``root`` was generated with depth of ``pattern`` (per its synth.json)."""
    try:
        depth = json.loads((root / "synth.json").read_text(encoding="utf-8")).get("depth")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(depth, dict) and str(depth.get("pattern", "")).split(":")[0] == pattern


def _run_cell_in_worker(
    preset: dict[str, Any], out_dir: str, dataset: dict[str, Any], method: str, seed: int, threads: int
) -> CellRecord:
    """One cell in a worker process of ``BenchRunner(jobs=N)`` or a Ray task (``executor="ray"``)."""
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
        weights = {
            k.removeprefix("weight_"): float(v)
            for k, v in row.items()
            if k.startswith("weight_") and v not in ("", None)
        }
        history.append([int(row["step"]), weights])
    return history
