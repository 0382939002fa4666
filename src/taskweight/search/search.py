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

from taskweight.jsonio import dumps, write_json
from taskweight.search.errors import SearchError
from taskweight.search.evaluation import Candidate, EvalResult, TrainerEvaluator, target_of
from taskweight.search.optimizers import OPTIMIZERS, make_optimizer, sanitize_fitness
from taskweight.search.space import SearchSpace, task_weight_space

if TYPE_CHECKING:
    from taskweight.config import TrainConfig

Evaluate = Callable[[Candidate], EvalResult]

JOURNAL = "journal.jsonl"
META = "search_meta.json"
EXECUTORS = ("local", "ray")
TRANSFERS = ("generation", "best")


def default_transfer(executor: str) -> str:
    """``best`` (the paper's continuous fine-tuning) for one run after another, ``generation`` for Ray."""
    return "best" if executor == "local" else "generation"


@dataclass
class SearchResult:
    """Outcome of a search (also summarised in ``out_dir/search.json``)."""

    out_dir: Path
    journal_path: Path
    records: list[dict[str, Any]]
    best_index: int | None
    best_candidate: Candidate | None
    best_metrics: dict[str, Any] | None
    best_checkpoint: Path | None
    total_epochs: int
    total_wall_time_s: float
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def best_config(self) -> dict[str, Any]:
        return self.best_candidate.config if self.best_candidate is not None else {}

    @property
    def best_fitness(self) -> float:
        return target_of(self.best_metrics) if self.best_metrics else float("nan")

    @property
    def evaluated_configs(self) -> list[dict[str, Any]]:
        return [r["config"] for r in self.records]


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
    start = time.perf_counter()
    result = evaluate(candidate)
    if result.wall_time_s is None:
        result.wall_time_s = time.perf_counter() - start
    return result


class RayExecutor:
    """Runs the candidates of a generation in parallel as Ray tasks; yields in candidate order.

    Uses the running Ray instance if there is one, else ``ray.init(address)`` (a local
    instance when ``address`` is None, shut down again by :meth:`close`). A task takes one
    GPU when the cluster has GPUs, else one CPU. On a multi-node cluster ``out_dir`` must be
    on a file system every node sees (checkpoints travel by path).
    """

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise SearchError("the ray executor needs Ray: pip install 'taskweight[ray]'") from exc
        self.ray = ray
        self.owns = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level="warning")
            except Exception as exc:  # connection errors come in many types
                raise SearchError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}") from exc
            self.owns = True
        gpus = ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 1}
        self.remote = ray.remote(**resources)(_ray_evaluate)
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
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()


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


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """Records of a journal; a torn last line (killed mid-write) is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise SearchError(f"{path}:{number}: corrupt journal line") from None
    return records


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


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    for key in ("optimizer", "optimizer_options", "seed", "space", "transfer"):
        if key == "transfer" and key not in old:  # journals written before the option: generation
            old[key] = "generation"
        if json.loads(dumps(old.get(key))) != json.loads(dumps(meta.get(key))):
            raise SearchError(
                f"{path}: cannot resume: option {key!r} differs from the journaled search "
                f"({old.get(key)!r} then, {meta.get(key)!r} now); use the same settings or a new --out"
            )


# --------------------------------------------------------------------------- driver
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
        evaluate: ``Candidate -> EvalResult`` (picklable for ``executor="ray"``).
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
    if budget < 1:
        raise SearchError(f"budget must be >= 1, got {budget}")
    if optimizer not in OPTIMIZERS:
        raise SearchError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if executor not in EXECUTORS:
        raise SearchError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if transfer not in TRANSFERS:
        raise SearchError(f"unknown transfer {transfer!r}; choose one of {', '.join(TRANSFERS)}")
    if transfer == "best" and executor != "local":
        raise SearchError("transfer 'best' runs one evaluation after another: it needs executor 'local' "
                          "(the ray executor runs a generation in parallel; use transfer 'generation')")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    journal_path = out_dir / JOURNAL
    meta_path = out_dir / META
    try:
        opt = make_optimizer(optimizer, space, seed, **(optimizer_options or {}))
    except TypeError as exc:
        raise SearchError(f"bad optimizer option for {optimizer}: {exc}") from None
    meta = {"optimizer": optimizer, "optimizer_options": opt.options(), "seed": int(seed), "space": space.describe(),
            "budget": budget, "executor": executor, "transfer": transfer, "target": "geometric_mean of val mAP and mIoU"}
    previous: list[dict[str, Any]] = []
    if journal_path.is_file() and journal_path.stat().st_size > 0:
        if not resume:
            raise SearchError(f"{journal_path} already exists: pass --resume to continue that search, or use a new --out")
        _check_meta(meta_path, meta)
        previous = read_journal(journal_path)
        # rewrite without a torn last line so appends stay valid JSON Lines
        journal_path.write_text("".join(dumps(r) + "\n" for r in previous))
    write_json(meta_path, meta)
    init_checkpoint = Path(init_checkpoint) if init_checkpoint is not None else None
    console = _console() if progress else None
    if console is not None and previous:
        console.print(f"resuming {out_dir}: replaying {min(len(previous), budget)} journaled evaluation(s)")

    records: list[dict[str, Any]] = []
    shown_best = -math.inf  # best so far including the running generation (progress lines)
    runner = make_executor(executor, ray_address)
    try:
        with journal_path.open("a") as journal:
            while len(records) < budget:
                proposals = opt.ask()[: budget - len(records)]
                start_ckpt = _start_checkpoint(records, out_dir, init_checkpoint)
                candidates = [
                    Candidate(
                        index=p.index, config=space.decode(p.genes), genes=dict(p.genes), parents=list(p.parents),
                        init_checkpoint=start_ckpt, generation=p.generation, run_dir=out_dir / "evals" / f"{p.index:04d}",
                    )
                    for p in proposals
                ]
                gen_records: list[dict[str, Any]] = []
                for cand, proposal in zip(candidates, proposals):
                    if cand.index >= len(previous):
                        break
                    old = previous[cand.index]
                    if old.get("index") != cand.index or not _same_genes(old.get("genes", {}), cand.genes):
                        raise SearchError(
                            f"{journal_path}:{cand.index + 1}: journaled candidate does not match the replayed "
                            f"search (different seed, space, optimiser or evaluator results?)"
                        )
                    gen_records.append(old)
                    shown_best = max(shown_best, sanitize_fitness(old.get("fitness")))
                todo = candidates[len(gen_records):]
                # generation: the whole rest of the generation at once (Ray runs it in parallel);
                # best: one at a time, each from the best model finished before it
                batches = [todo] if transfer == "generation" else [[cand] for cand in todo]
                for batch in batches:
                    if transfer == "best":
                        batch[0].init_checkpoint = _start_checkpoint([*records, *gen_records], out_dir, init_checkpoint)
                    for cand, result in zip(batch, runner.map(evaluate, batch)):
                        proposal = proposals[cand.index - proposals[0].index]
                        record = _record(cand, proposal.info, result, out_dir, optimizer)
                        journal.write(dumps(record) + "\n")
                        journal.flush()
                        gen_records.append(record)
                        shown_best = max(shown_best, sanitize_fitness(record["fitness"]))
                        if console is not None:
                            _log(console, record, len(records) + len(gen_records), budget, shown_best)
                opt.tell(proposals, [sanitize_fitness(r.get("fitness")) for r in gen_records])
                records.extend(gen_records)
    finally:
        runner.close()

    result = _result(out_dir, journal_path, records, _best_record(records), space)
    if report:
        from taskweight.search.report import write_report

        result.outputs = write_report(out_dir, records, meta=meta, space=space, label=label)
    else:
        from taskweight.search.report import write_summary

        result.outputs = {"search.json": write_summary(out_dir, records, meta=meta)}
    return result


def _best_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first record with the highest finite fitness (ties keep the earlier one), or None."""
    best, best_fit = None, -math.inf
    for record in records:
        fit = sanitize_fitness(record.get("fitness"))
        if fit > best_fit:
            best, best_fit = record, fit
    return best


def _start_checkpoint(finished: list[dict[str, Any]], out_dir: Path, init_checkpoint: Path | None) -> Path | None:
    """Dynamic weight transfer: the checkpoint of the best of ``finished``, else ``init_checkpoint``."""
    best = _best_record(finished)
    return _abs(best["checkpoint"], out_dir) if best is not None else init_checkpoint


def _record(cand: Candidate, info: dict[str, Any], result: EvalResult, out_dir: Path, optimizer: str) -> dict[str, Any]:
    metrics = _plain_metrics(dict(result.metrics))
    fit = sanitize_fitness(target_of(metrics))
    record: dict[str, Any] = {
        "index": cand.index,
        "generation": cand.generation,
        "optimizer": optimizer,
        "genes": cand.genes,
        "config": cand.config,
        "parents": cand.parents,
        "init_checkpoint": _rel(cand.init_checkpoint, out_dir),
        "metrics": metrics,
        "fitness": fit if math.isfinite(fit) else None,
        "epochs": int(result.epochs),
        "checkpoint": _rel(result.checkpoint, out_dir),
        "info": info,
        "wall_time_s": float(result.wall_time_s or 0.0),
    }
    if result.error:
        record["error"] = result.error
    return json.loads(dumps(record))  # exactly what a replay reads back


def _result(out_dir: Path, journal_path: Path, records: list[dict[str, Any]], best: dict[str, Any] | None,
            space: SearchSpace) -> SearchResult:
    best_candidate = None
    if best is not None:
        best_candidate = Candidate(
            index=best["index"], config=best["config"], genes=best["genes"], parents=best["parents"],
            init_checkpoint=_abs(best["init_checkpoint"], out_dir), generation=best["generation"],
            run_dir=out_dir / "evals" / f"{best['index']:04d}",
        )
    return SearchResult(
        out_dir=out_dir,
        journal_path=journal_path,
        records=records,
        best_index=None if best is None else best["index"],
        best_candidate=best_candidate,
        best_metrics=None if best is None else best["metrics"],
        best_checkpoint=None if best is None else _abs(best["checkpoint"], out_dir),
        total_epochs=sum(int(r.get("epochs") or 0) for r in records),
        total_wall_time_s=float(sum(float(r.get("wall_time_s") or 0.0) for r in records)),
    )


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _log(console: Any, record: dict[str, Any], done: int, budget: int, best: float) -> None:
    cfg = record["config"]
    parts = []
    if "weights" in cfg:
        parts.append(" ".join(f"w_{t}={w:.4f}" for t, w in cfg["weights"].items()))
    if cfg.get("frequencies"):
        parts.append(" ".join(f"f_{t}={f}" for t, f in cfg["frequencies"].items()))
    if not parts:
        parts.append(" ".join(f"{k}={v}" for k, v in cfg.get("values", record["genes"]).items()))
    m = record["metrics"]

    def fmt(v: Any) -> str:
        return "nan" if v is None else f"{float(v):.4f}"

    console.print(
        f"[{done}/{budget}] gen {record['generation']} {' '.join(parts)} → mAP {fmt(m.get('mAP'))} "
        f"mIoU {fmt(m.get('mIoU'))} GM {fmt(record['fitness'])} (best {fmt(best if math.isfinite(best) else None)})"
        + (f" [red]failed: {record['error']}[/]" if record.get("error") else "")
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
) -> SearchResult:
    """Meta-learn the task weights (``meta``) or weights + async frequencies (``meta_async``).

    Each evaluation trains ``base_config`` for ``epochs_per_eval`` epochs under
    ``out_dir/evals/NNNN/`` with method ``static`` (or ``async``), fine-tuning from the best
    model so far, and is scored on the val split (paper §IV-C/D, §V-A). ``transfer`` (see the
    module docstring) defaults to :func:`default_transfer` of ``executor``.
    """
    from taskweight.config import dump_config

    if epochs_per_eval < 1:
        raise SearchError(f"epochs_per_eval must be >= 1, got {epochs_per_eval}")
    space = task_weight_space(("det", "seg"), min_weight, max_weight, async_frequencies=async_frequencies,
                              max_frequency=max_frequency)
    evaluator = TrainerEvaluator(base_config, async_frequencies=async_frequencies, epochs_per_eval=epochs_per_eval)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_config(base_config, out_dir / "base_config.yaml")
    if label is None:
        root = base_config.data.root
        label = Path(root).name if root is not None else base_config.data.format
    return run_search(
        evaluator, space, optimizer=optimizer, budget=budget, out_dir=out_dir, seed=seed, executor=executor,
        ray_address=ray_address, resume=resume, init_checkpoint=init_checkpoint, progress=progress,
        optimizer_options=optimizer_options, report=report, label=label,
        transfer=transfer or default_transfer(executor),
    )
