"""The search driver: ask → evaluate (local or Ray) → journal → tell, with exact resume.

Every finished evaluation is appended to ``out_dir/journal.jsonl`` (one JSON object a
line, in candidate order). ``resume=True`` rebuilds the optimiser from its seed and
*replays* the journal — each generation is asked again, the recorded results are told
instead of re-evaluated (genes are checked to match) — and continues, so a search killed
after k evaluations and resumed ends with the same journal (wall times aside) as one that
never stopped. Evaluations in flight when it was killed are lost and run again.

Dynamic weight transfer (paper §IV-C: "for each new configuration ... train from the
previously best model"), in one of two modes (``transfer``):

- ``generation`` (default): every candidate of a generation starts from the checkpoint of
  the best evaluation told *before that generation* (the initial population from
  ``init_checkpoint`` or from scratch). Fixing it per generation is what lets the Ray
  executor run a generation's candidates in parallel and still write the very same journal
  as the local executor. The best model's lineage grows by ``epochs_per_eval`` per generation.
- ``best``: every candidate starts from the best evaluation finished before it, including
  earlier candidates of its own generation — continuous fine-tuning, one run after another
  (local executor only). The lineage can grow by ``epochs_per_eval`` per evaluation.

A model's *lineage* is the chain of runs that trained it (:func:`~taskweight.search.journal.lineage`);
each candidate also carries ``start_epoch``, the epochs its start model received along it.
The records are :class:`~taskweight.search.journal.JournalRecord`; "best" is
:func:`~taskweight.search.journal.best_record` everywhere.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from taskweight.durable import FolderLock
from taskweight.jsonio import dumps, write_json
from taskweight.raycluster import EXECUTORS, RayCluster
from taskweight.search.errors import SearchError
from taskweight.search.evaluation import ASYNC_UNITS, Candidate, EvalResult, TrainerEvaluator, target_of
from taskweight.search.journal import JournalRecord, best_record, lineage, lineage_epochs, read_journal, write_journal
from taskweight.search.optimizers import OPTIMIZERS, Optimizer, Proposal, make_optimizer, sanitize_fitness
from taskweight.search.space import SearchSpace, task_weight_space

if TYPE_CHECKING:
    from taskweight.config import TrainConfig

Evaluate = Callable[[Candidate], EvalResult]

JOURNAL = "journal.jsonl"
META = "search_meta.json"
TRANSFERS = ("generation", "best")


def default_transfer(executor: str) -> str:
    """``best`` (the paper's continuous fine-tuning) for one run after another, ``generation`` for Ray."""
    return "best" if executor == "local" else "generation"


@dataclass
class SearchResult:
    """Outcome of a search (also summarised in ``out_dir/search.json``)."""

    out_dir: Path
    journal_path: Path
    records: list[JournalRecord]
    best: JournalRecord | None
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def best_index(self) -> int | None:
        return None if self.best is None else self.best.index

    @property
    def best_config(self) -> dict[str, Any]:
        return {} if self.best is None else self.best.config

    @property
    def best_metrics(self) -> dict[str, Any] | None:
        return None if self.best is None else self.best.metrics

    @property
    def best_fitness(self) -> float:
        return target_of(self.best.metrics) if self.best is not None else float("nan")

    @property
    def best_checkpoint(self) -> Path | None:
        return None if self.best is None else _abs(self.best.checkpoint, self.out_dir)

    @property
    def best_lineage(self) -> list[JournalRecord]:
        """The runs that trained the best model, oldest first (see :func:`lineage`)."""
        return [] if self.best is None else lineage(self.records, self.best)

    @property
    def best_lineage_epochs(self) -> int:
        """Epochs trained along the best model's lineage (its start checkpoint's training included)."""
        return lineage_epochs(self.records, self.best)

    @property
    def total_epochs(self) -> int:
        return sum(int(r.epochs) for r in self.records)

    @property
    def total_wall_time_s(self) -> float:
        return float(sum(r.wall_time_s for r in self.records))

    @property
    def total_train_time_s(self) -> float:
        """Time in training steps over all evaluations (an evaluation's wall time where it reports none)."""
        return float(sum(r.training_s for r in self.records))

    @property
    def evaluated_configs(self) -> list[dict[str, Any]]:
        return [r.config for r in self.records]


# ------------------------------------------------------------------------ executors
class LocalExecutor:
    """Evaluates candidates one after another in this process."""

    def map(self, evaluate: Evaluate, candidates: Sequence[Candidate]) -> Iterator[EvalResult]:
        for cand in candidates:
            start = time.perf_counter()
            result = evaluate(cand)
            if result.wall_time_s is None:
                result.wall_time_s = time.perf_counter() - start
            yield result

    def close(self) -> None:
        pass


def _ray_evaluate(evaluate: Evaluate, candidate: Candidate) -> EvalResult:
    attempt = _count_attempt(candidate)
    start = time.perf_counter()
    result = evaluate(candidate)
    if result.wall_time_s is None:
        result.wall_time_s = time.perf_counter() - start
    result.attempts = attempt
    return result


def _count_attempt(candidate: Candidate) -> int:
    """This run's number among the runs of ``candidate``, counted in ``RUN_DIR.attempts`` beside its
    run folder (a file every node sees, as the checkpoints are); 1 without a run folder."""
    if candidate.run_dir is None:
        return 1
    counter = Path(f"{candidate.run_dir}.attempts")
    counter.parent.mkdir(parents=True, exist_ok=True)
    with counter.open("a") as handle:  # one line per attempt: appends from two nodes cannot lose a count
        handle.write("run\n")
    return len(counter.read_text().splitlines())


class RayExecutor:
    """Runs the candidates of a generation in parallel as Ray tasks; yields in candidate order.

    A task whose worker process dies is re-run by Ray (:mod:`taskweight.raycluster`: up to
    ``RAY_RETRIES`` times, from the start of the evaluation, its run folder wiped), and the journal
    records ``attempts``. The cluster is the one at ``address`` (see :class:`RayCluster`); on
    several nodes ``out_dir`` must be on a file system every node sees (checkpoints travel by path).
    """

    def __init__(self, address: str | None = None) -> None:
        self.cluster = RayCluster(address, SearchError)
        self.ray = self.cluster.ray
        self.remote = self.cluster.task(_ray_evaluate)
        self._evaluate_ref: tuple[int, Any] | None = None

    def map(self, evaluate: Evaluate, candidates: Sequence[Candidate]) -> Iterator[EvalResult]:
        if self._evaluate_ref is None or self._evaluate_ref[0] != id(evaluate):
            self._evaluate_ref = (id(evaluate), self.ray.put(evaluate))
        refs = [self.remote.remote(self._evaluate_ref[1], cand) for cand in candidates]
        done = 0
        try:
            for ref in refs:
                result = self.ray.get(ref)
                done += 1
                yield result
        finally:
            for ref in refs[done:]:
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        self.cluster.close()


def make_executor(name: str, address: str | None = None) -> LocalExecutor | RayExecutor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise SearchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


# -------------------------------------------------------------------------- journal
def _rel(path: Path | None, root: Path) -> str | None:
    """A path relative to ``root`` when inside it (journals stay comparable and movable)."""
    if path is None:
        return None
    path = Path(path)
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _abs(path: str | None, root: Path) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else root / p


def _plain_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, str)) or value is None:
            out[key] = value
        elif isinstance(value, (int, np.integer)):
            out[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            out[key] = float(value)
        else:
            out[key] = value
    return out


def _same_genes(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) or isinstance(y, float):
            if not math.isclose(float(x), float(y), rel_tol=1e-12, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


RESUME_KEYS = ("optimizer", "optimizer_options", "seed", "space", "transfer", "evaluator")
"""Settings a resumed search must share with the journaled one (``evaluator`` where both describe it)."""


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    for key in RESUME_KEYS:
        if key == "transfer" and key not in old:  # journals written before the option: generation
            old[key] = "generation"
        if key == "evaluator" and (key not in old or key not in meta):  # before evaluators described themselves
            continue
        if json.loads(dumps(old.get(key))) != json.loads(dumps(meta.get(key))):
            raise SearchError(
                f"{path}: cannot resume: option {key!r} differs from the journaled search "
                f"({old.get(key)!r} then, {meta.get(key)!r} now); use the same settings or a new --out"
            )


def _open_journal(out_dir: Path, meta: dict[str, Any], resume: bool) -> list[JournalRecord]:
    """The journaled records to replay (none for a new search); writes ``search_meta.json``."""
    journal_path, meta_path = out_dir / JOURNAL, out_dir / META
    previous: list[JournalRecord] = []
    if journal_path.is_file() and journal_path.stat().st_size > 0:
        if not resume:
            raise SearchError(
                f"{journal_path} already exists: pass --resume to continue that search, or use a new --out"
            )
        _check_meta(meta_path, meta)
        previous = read_journal(journal_path)
        write_journal(journal_path, previous)  # without a torn last line, so appends stay valid JSON Lines
    write_json(meta_path, meta)
    return previous


# --------------------------------------------------------------------------- driver
def _check_options(*, budget: int, optimizer: str, executor: str, transfer: str) -> None:
    if budget < 1:
        raise SearchError(f"budget must be >= 1, got {budget}")
    if optimizer not in OPTIMIZERS:
        raise SearchError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if executor not in EXECUTORS:
        raise SearchError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if transfer not in TRANSFERS:
        raise SearchError(f"unknown transfer {transfer!r}; choose one of {', '.join(TRANSFERS)}")
    if transfer == "best" and executor != "local":
        raise SearchError(
            "transfer 'best' runs one evaluation after another: it needs executor 'local' "
            "(the ray executor runs a generation in parallel; use transfer 'generation')"
        )


def run_search(
    evaluate: Evaluate,
    space: SearchSpace,
    *,
    optimizer: str = "es",
    budget: int,
    out_dir: str | Path,
    seed: int = 0,
    executor: str = "local",
    ray_address: str | None = None,
    resume: bool = False,
    init_checkpoint: str | Path | None = None,
    progress: bool = True,
    optimizer_options: dict[str, Any] | None = None,
    report: bool = True,
    label: str | None = None,
    transfer: str = "generation",
) -> SearchResult:
    """Search ``space`` for the configuration maximising the val geometric mean.

    Args:
        evaluate: ``Candidate -> EvalResult`` (picklable for ``executor="ray"``); a
            ``describe()`` method, if it has one, goes into ``search_meta.json`` and must
            match on resume.
        space: the search space (e.g. :func:`task_weight_space`).
        optimizer: ``es`` (the paper's), ``random`` or ``cmaes``.
        budget: number of evaluations in total (a resumed search counts journaled ones).
        out_dir: ``journal.jsonl``, ``search_meta.json``, ``evals/NNNN/``, report files.
        seed: optimiser seed; same seed and results → same sequence of candidates.
        executor: ``local`` (sequential) or ``ray`` (a generation in parallel).
        ray_address: Ray cluster address (``None``: a local instance).
        resume: replay ``journal.jsonl`` and continue.
        init_checkpoint: checkpoint the initial population starts from (default: scratch).
        progress: print one line per finished evaluation (stderr).
        optimizer_options: keyword options of the optimiser class.
        report: write ``search.json``, ``table1.md`` and the figures when done.
        label: dataset name used in ``table1.md``.
        transfer: where a candidate's training starts — ``generation`` (the best checkpoint
            told before its generation) or ``best`` (the best finished before it, sequential;
            local executor only). See the module docstring.
    """
    _check_options(budget=budget, optimizer=optimizer, executor=executor, transfer=transfer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        opt = make_optimizer(optimizer, space, seed, **(optimizer_options or {}))
    except TypeError as exc:
        raise SearchError(f"bad optimizer option for {optimizer}: {exc}") from None
    meta = {
        "optimizer": optimizer,
        "optimizer_options": opt.options(),
        "seed": int(seed),
        "space": space.describe(),
        "budget": budget,
        "executor": executor,
        "transfer": transfer,
        "target": "geometric_mean of val mAP and mIoU",
    }
    describe = getattr(evaluate, "describe", None)
    if callable(describe):
        meta["evaluator"] = describe()
    with FolderLock(out_dir, "search folder"):  # one process writes a search folder
        previous = _open_journal(out_dir, meta, resume)
        console = _console() if progress else None
        if console is not None and previous:
            console.print(f"resuming {out_dir}: replaying {min(len(previous), budget)} journaled evaluation(s)")
        driver = _Driver(
            evaluate,
            space,
            opt,
            out_dir,
            budget,
            transfer,
            Path(init_checkpoint) if init_checkpoint is not None else None,
            previous,
            console,
        )
        runner = make_executor(executor, ray_address)
        try:
            records = driver.run(runner)
        finally:
            runner.close()
        result = SearchResult(
            out_dir=out_dir, journal_path=out_dir / JOURNAL, records=records, best=best_record(records)
        )
        from taskweight.search.report import write_report, write_summary

        if report:
            result.outputs = write_report(out_dir, records, meta=meta, space=space, label=label)
        else:
            result.outputs = {"search.json": write_summary(out_dir, records, meta=meta)}
        return result


@dataclass
class _Driver:
    """Ask → replay or evaluate → journal → tell, generation after generation, until the budget is spent.

    Journaled candidates (``previous``) are told their recorded results instead of being
    evaluated again, after checking that the optimiser proposed the very same genes.
    """

    evaluate: Evaluate
    space: SearchSpace
    opt: Optimizer
    out_dir: Path
    budget: int
    transfer: str
    init_checkpoint: Path | None
    previous: list[JournalRecord]
    console: Any = None
    records: list[JournalRecord] = field(default_factory=list)
    shown_best: float = -math.inf  # best so far including the running generation (progress lines)

    def run(self, runner: LocalExecutor | RayExecutor) -> list[JournalRecord]:
        with (self.out_dir / JOURNAL).open("a") as journal:
            while len(self.records) < self.budget:
                proposals = self.opt.ask()[: self.budget - len(self.records)]
                candidates = self._candidates(proposals)
                told = self._replay(candidates)
                for batch in self._batches(candidates[len(told) :]):
                    if self.transfer == "best":
                        self._set_start(batch[0], [*self.records, *told])
                    for cand, result in zip(batch, runner.map(self.evaluate, batch), strict=True):
                        info = proposals[cand.index - proposals[0].index].info
                        record = _record(cand, info, result, self.out_dir, self.opt.name)
                        journal.write(dumps(record.to_dict()) + "\n")
                        journal.flush()
                        told.append(record)
                        self._show(record, len(self.records) + len(told))
                self.opt.tell(proposals, [r.fit for r in told])
                self.records.extend(told)
        return self.records

    def _candidates(self, proposals: Sequence[Proposal]) -> list[Candidate]:
        """The generation's candidates, each starting from the best model told before the generation."""
        candidates = [
            Candidate(
                index=p.index,
                config=self.space.decode(p.genes),
                genes=dict(p.genes),
                parents=list(p.parents),
                generation=p.generation,
                run_dir=self.out_dir / "evals" / f"{p.index:04d}",
            )
            for p in proposals
        ]
        for cand in candidates:
            self._set_start(cand, self.records)
        return candidates

    def _set_start(self, cand: Candidate, finished: Sequence[JournalRecord]) -> None:
        """Dynamic weight transfer: start from the best of ``finished`` (else ``init_checkpoint``)."""
        best = best_record(finished)
        cand.init_checkpoint = _abs(best.checkpoint, self.out_dir) if best is not None else self.init_checkpoint
        cand.start_epoch = lineage_epochs(finished, best)

    def _replay(self, candidates: Sequence[Candidate]) -> list[JournalRecord]:
        """The journaled records of the leading ``candidates`` (checked to be the same candidates)."""
        told: list[JournalRecord] = []
        for cand in candidates:
            if cand.index >= len(self.previous):
                break
            old = self.previous[cand.index]
            if old.index != cand.index or not _same_genes(old.genes, cand.genes):
                raise SearchError(
                    f"{self.out_dir / JOURNAL}:{cand.index + 1}: journaled candidate does not match the replayed "
                    f"search (different seed, space, optimiser or evaluator results?)"
                )
            told.append(old)
            self.shown_best = max(self.shown_best, old.fit)
        return told

    def _batches(self, todo: list[Candidate]) -> list[list[Candidate]]:
        """``generation``: the rest of the generation at once (Ray runs it in parallel); ``best``: one at a time."""
        return [todo] if self.transfer == "generation" else [[cand] for cand in todo]

    def _show(self, record: JournalRecord, done: int) -> None:
        self.shown_best = max(self.shown_best, record.fit)
        if self.console is not None:
            _log(self.console, record, done, self.budget, self.shown_best)


def _record(cand: Candidate, info: dict[str, Any], result: EvalResult, out_dir: Path, optimizer: str) -> JournalRecord:
    metrics = _plain_metrics(dict(result.metrics))
    fit = sanitize_fitness(target_of(metrics))
    record = JournalRecord(
        index=cand.index,
        generation=cand.generation,
        optimizer=optimizer,
        genes=cand.genes,
        config=cand.config,
        parents=cand.parents,
        init_checkpoint=_rel(cand.init_checkpoint, out_dir),
        start_epoch=int(cand.start_epoch),
        metrics=metrics,
        fitness=fit if math.isfinite(fit) else None,
        epochs=int(result.epochs),
        checkpoint=_rel(result.checkpoint, out_dir),
        info=info,
        wall_time_s=float(result.wall_time_s or 0.0),
        train_time_s=None if result.train_time_s is None else float(result.train_time_s),
        error=result.error or None,
        attempts=int(result.attempts),
    )
    return JournalRecord.from_dict(record.to_dict())  # exactly what a replay reads back


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _log(console: Any, record: JournalRecord, done: int, budget: int, best: float) -> None:
    cfg = record.config
    parts = []
    if "weights" in cfg:
        parts.append(" ".join(f"w_{t}={w:.4f}" for t, w in cfg["weights"].items()))
    if cfg.get("frequencies"):
        parts.append(" ".join(f"f_{t}={f}" for t, f in cfg["frequencies"].items()))
    if not parts:
        parts.append(" ".join(f"{k}={v}" for k, v in cfg.get("values", record.genes).items()))
    m = record.metrics

    def fmt(v: Any) -> str:
        return "nan" if v is None else f"{float(v):.4f}"

    console.print(
        f"[{done}/{budget}] gen {record.generation} {' '.join(parts)} → mAP {fmt(m.get('mAP'))} "
        f"mIoU {fmt(m.get('mIoU'))} GM {fmt(record.fitness)} (best {fmt(best if math.isfinite(best) else None)})"
        + (f" [red]failed: {record.error}[/]" if record.error else "")
    )


# ------------------------------------------------------------------ trainer wiring
def search_task_weights(
    base_config: TrainConfig,
    out_dir: str | Path,
    *,
    async_frequencies: bool = False,
    budget: int = 16,
    epochs_per_eval: int = 1,
    optimizer: str = "es",
    seed: int = 0,
    executor: str = "local",
    ray_address: str | None = None,
    resume: bool = False,
    progress: bool = True,
    init_checkpoint: str | Path | None = None,
    min_weight: dict[str, float] | None = None,
    max_weight: dict[str, float] | None = None,
    max_frequency: int = 10,
    optimizer_options: dict[str, Any] | None = None,
    report: bool = True,
    label: str | None = None,
    transfer: str | None = None,
    async_unit: str = "step",
) -> SearchResult:
    """Meta-learn the task weights (``meta``) or weights + async frequencies (``meta_async``).

    Each evaluation trains ``base_config`` for ``epochs_per_eval`` epochs under
    ``out_dir/evals/NNNN/`` with method ``static`` (or ``async``), fine-tuning from the best
    model so far, and is scored on the val split (paper §IV-C/D, §V-A). ``transfer`` (see the
    module docstring) defaults to :func:`default_transfer` of ``executor``. ``async_unit``:
    the async periods count each run's optimiser steps (``step``) or the epochs of the
    continuous fine-tuning (``epoch``, as §IV-D's text); see :func:`training_config`.
    """
    from taskweight.config import dump_config

    if epochs_per_eval < 1:
        raise SearchError(f"epochs_per_eval must be >= 1, got {epochs_per_eval}")
    if async_unit not in ASYNC_UNITS:
        raise SearchError(f"unknown async unit {async_unit!r}; choose one of {', '.join(ASYNC_UNITS)}")
    space = task_weight_space(
        base_config.tasks, min_weight, max_weight, async_frequencies=async_frequencies, max_frequency=max_frequency
    )
    evaluator = TrainerEvaluator(
        base_config, async_frequencies=async_frequencies, epochs_per_eval=epochs_per_eval, async_unit=async_unit
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_config(base_config, out_dir / "base_config.yaml")
    if label is None:
        root = base_config.data.root
        label = Path(root).name if root is not None else base_config.data.format
    return run_search(
        evaluator,
        space,
        optimizer=optimizer,
        budget=budget,
        out_dir=out_dir,
        seed=seed,
        executor=executor,
        ray_address=ray_address,
        resume=resume,
        init_checkpoint=init_checkpoint,
        progress=progress,
        optimizer_options=optimizer_options,
        report=report,
        label=label,
        transfer=transfer or default_transfer(executor),
    )
