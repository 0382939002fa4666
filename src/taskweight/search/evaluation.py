"""The evaluation contract of the search, the trainer evaluator and a toy test double.

The search calls ``evaluate(candidate) -> EvalResult`` once per configuration. With the Ray
executor ``evaluate`` runs in a worker process, so it must be picklable (a module-level
class instance such as :class:`TrainerEvaluator` or :class:`ToyEvaluator` is).

Dynamic weight transfer (paper §IV-C): ``candidate.init_checkpoint`` is the checkpoint of
the best model so far (see the transfer modes in :mod:`taskweight.search.search`; ``None``
for a run from scratch) and ``candidate.start_epoch`` the epochs that model has received
along its lineage; an evaluator fine-tunes from it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskweight.config import TrainConfig


@dataclass
class Candidate:
    """One configuration to evaluate.

    Attributes:
        index: position in the search (0-based, also the journal line).
        generation: optimiser generation that proposed it (0 = initial population).
        config: decoded configuration, e.g. ``{"weights": {"det": .15, "seg": .85},
            "frequencies": {"det": 1, "seg": 7}, "raw_weights": {...}, "genes": {...}}``.
        genes: internal gene values (exponents for log-scale genes, unrounded integers).
        parents: indices of the evaluated candidates it was bred from.
        init_checkpoint: checkpoint to start training from (dynamic weight transfer).
        start_epoch: epochs the model at ``init_checkpoint`` has received along its lineage
            (0 from scratch): where an epoch-counted async clock continues from.
        run_dir: folder reserved for this evaluation (``out_dir/evals/NNNN``).
    """

    index: int
    config: dict[str, Any]
    genes: dict[str, Any]
    parents: list[int] = field(default_factory=list)
    init_checkpoint: Path | None = None
    generation: int = 0
    run_dir: Path | None = None
    start_epoch: int = 0


@dataclass
class EvalResult:
    """What one evaluation produced.

    ``metrics`` holds at least ``mAP``, ``mIoU`` and ``geometric_mean`` on the val split
    (the target); ``checkpoint`` is the val-selected model (``None`` if the run failed);
    ``train_time_s`` the part of the run spent in training steps, where the evaluator knows it.
    """

    metrics: dict[str, Any]
    checkpoint: Path | None
    epochs: int
    wall_time_s: float | None = None
    error: str | None = None
    train_time_s: float | None = None
    attempts: int = 1
    """Runs it took: more than 1 when Ray re-ran the evaluation after its worker process died."""


def target_of(metrics: dict[str, Any]) -> float:
    """The search target: geometric mean of val mAP and mIoU (NaN if unavailable)."""
    gm = metrics.get("geometric_mean")
    if gm is None and metrics.get("mAP") is not None and metrics.get("mIoU") is not None:
        gm = math.sqrt(max(float(metrics["mAP"]), 0.0) * max(float(metrics["mIoU"]), 0.0))
    try:
        return float("nan") if gm is None else float(gm)
    except (TypeError, ValueError):
        return float("nan")


# ------------------------------------------------------------------------ toy double
@dataclass
class ToyEvaluator:
    """A cheap deterministic stand-in for training, for tests and demos.

    With decoded task weights it models the paper's trade-off on ``r = log10(w_seg/w_det)``:
    detection mAP falls and segmentation mIoU rises with ``r`` (logistic curves), so their
    geometric mean peaks in between (near ``w_seg ≈ 0.85``, cf. Table I); async
    frequencies scale each metric by a Gaussian bump around ``best_frequencies``. Any other
    space is scored by a smooth bump around ``optimum`` (unit coordinates per gene, via
    ``genes_unit`` in the config, or the raw gene values otherwise).

    It writes a small JSON "checkpoint" to ``run_dir/best.pt`` recording the candidate and
    the checkpoint it started from, so weight transfer can be checked.
    """

    epochs: int = 1
    best_frequencies: dict[str, int] = field(default_factory=lambda: {"det": 1, "seg": 7})
    optimum: dict[str, float] = field(default_factory=dict)
    write_checkpoint: bool = True

    def metrics(self, config: dict[str, Any], genes: dict[str, Any]) -> dict[str, float]:
        weights = config.get("weights")
        if weights and "det" in weights and "seg" in weights:
            r = math.log10(weights["seg"] / weights["det"])
            m_ap = 0.75 / (1.0 + math.exp((r - 1.3) / 0.35))
            m_iou = 0.85 / (1.0 + math.exp(-(r + 0.3) / 0.35))
            for task, f in (config.get("frequencies") or {}).items():
                bump = math.exp(-((f - self.best_frequencies.get(task, 1)) ** 2) / 18.0)
                if task == "det":
                    m_ap *= 0.7 + 0.3 * bump
                else:
                    m_iou *= 0.7 + 0.3 * bump
        else:
            dist2 = sum((float(genes[k]) - v) ** 2 for k, v in self.optimum.items())
            m_ap = m_iou = math.exp(-dist2)
        return {"mAP": m_ap, "mIoU": m_iou, "geometric_mean": math.sqrt(m_ap * m_iou)}

    def __call__(self, candidate: Candidate) -> EvalResult:
        start = time.perf_counter()
        metrics = self.metrics(candidate.config, candidate.genes)
        checkpoint = None
        if self.write_checkpoint and candidate.run_dir is not None:
            candidate.run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint = candidate.run_dir / "best.pt"
            checkpoint.write_text(
                json.dumps(
                    {
                        "index": candidate.index,
                        "init_from": None if candidate.init_checkpoint is None else str(candidate.init_checkpoint),
                        "metrics": metrics,
                    }
                )
            )
        return EvalResult(metrics, checkpoint, self.epochs, time.perf_counter() - start)


# ------------------------------------------------------------------- trainer evaluator
FINE_TUNE_WARMUP_STEPS = 5
ASYNC_UNITS = ("step", "epoch")


def training_config(
    base: TrainConfig,
    config: dict[str, Any],
    *,
    async_frequencies: bool,
    epochs: int,
    fine_tune: bool = False,
    async_unit: str = "step",
    start_epoch: int = 0,
) -> TrainConfig:
    """The run configuration of one candidate.

    ``fine_tune`` (the run starts from a transferred checkpoint) caps the LR warm-up at
    ``FINE_TUNE_WARMUP_STEPS``: the warm-up exists to start training from scratch, and at one
    epoch per evaluation the full one would take most of the run (20 of 25 steps in the
    ``synth`` bench); the few steps left let the fresh AdamW moments settle.

    ``meta`` → method ``static`` with ``weights``; ``meta_async`` → method ``async`` with
    ``weights`` and ``frequencies``; ``epochs`` = epochs per evaluation.

    ``async_unit`` is what the async periods count (paper §IV-D): ``step`` (each run's
    optimiser steps, from 0) or ``epoch`` — the epochs of the continuous fine-tuning: the run's
    clock starts at ``start_epoch``, the epochs its start model received along its lineage, so
    a period longer than one evaluation still zeroes the task in the right epochs.
    """
    from taskweight.config import MethodConfig

    if async_unit not in ASYNC_UNITS:
        raise ValueError(f"async_unit must be one of {', '.join(ASYNC_UNITS)}, got {async_unit!r}")
    options: dict[str, Any] = {"weights": {t: float(w) for t, w in config["weights"].items()}}
    if async_frequencies:
        options["frequencies"] = {t: int(f) for t, f in config["frequencies"].items()}
        if async_unit == "epoch":
            options.update(unit="epoch", offset=int(start_epoch))
        method = MethodConfig(name="async", options=options)
    else:
        method = MethodConfig(name="static", options=options)
    update: dict[str, Any] = {"epochs": int(epochs), "method": method}
    if fine_tune:
        warmup = min(base.optim.warmup_steps, FINE_TUNE_WARMUP_STEPS)
        update["optim"] = base.optim.model_copy(update={"warmup_steps": warmup})
    return base.model_copy(update=update)


@dataclass
class TrainerEvaluator:
    """Train one candidate with :class:`taskweight.trainer.Trainer` and report val metrics.

    The run goes to ``candidate.run_dir`` (wiped first: an evaluation interrupted by a kill
    is re-run from its start), starts from ``candidate.init_checkpoint`` (dynamic weight
    transfer) and trains ``epochs_per_eval`` epochs; the val-selected ``best.pt`` is the
    result's checkpoint. A run that fails with :class:`taskweight.errors.TrainingError`
    (e.g. a NaN loss under an extreme weighting) is reported as a failed evaluation.
    ``async_unit``: what the async periods count, see :func:`training_config`.
    """

    base_config: TrainConfig
    async_frequencies: bool = False
    epochs_per_eval: int = 1
    show_progress: bool = False
    async_unit: str = "step"

    def describe(self) -> dict[str, Any]:
        """What makes two searches' evaluations comparable (checked when a search resumes)."""
        return {
            "type": "trainer",
            "epochs_per_eval": self.epochs_per_eval,
            "async_unit": self.async_unit if self.async_frequencies else None,
        }

    def __call__(self, candidate: Candidate) -> EvalResult:
        from taskweight.errors import TrainingError
        from taskweight.trainer import Trainer

        if candidate.run_dir is None:
            raise ValueError("TrainerEvaluator needs candidate.run_dir")
        run_dir = Path(candidate.run_dir)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        cfg = training_config(
            self.base_config,
            candidate.config,
            async_frequencies=self.async_frequencies,
            epochs=self.epochs_per_eval,
            fine_tune=candidate.init_checkpoint is not None,
            async_unit=self.async_unit,
            start_epoch=candidate.start_epoch,
        )
        start = time.perf_counter()
        try:
            result = Trainer(cfg, run_dir, init_from=candidate.init_checkpoint, show_progress=self.show_progress).fit()
        except TrainingError as exc:
            nan = float("nan")
            return EvalResult(
                {"mAP": nan, "mIoU": nan, "geometric_mean": nan}, None, 0, time.perf_counter() - start, error=str(exc)
            )
        best = dict(result.metrics.get("best") or {})
        metrics = {k: v for k, v in best.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if result.metrics.get("best_epoch") is not None:
            metrics["best_epoch"] = result.metrics["best_epoch"]
        checkpoint = run_dir / "best.pt"
        return EvalResult(
            metrics,
            checkpoint if checkpoint.is_file() else None,
            int(result.metrics.get("epochs", self.epochs_per_eval)),
            time.perf_counter() - start,
            train_time_s=result.metrics.get("train_time_s"),
        )
