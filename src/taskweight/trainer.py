"""The training loop: one loop for every weighting strategy.

config → data → model → weighting → (this loop) → metrics. The loop never looks inside a
strategy: each mini-batch goes through :class:`taskweight.engine.TrainStep` (forward in the
configured precision, task losses, ``strategy.backward`` — paper Eq. 2 — and the optimiser
step), and the step's device-side records are read back every ``log_every`` steps. It validates every epoch,
keeps the best epoch by val geometric mean, checkpoints every epoch so ``resume=True``
continues exactly where a run stopped, and writes ``metrics.json``, ``history.csv``,
``weights.csv``, ``config.yaml`` and TensorBoard scalars (and ``tensorboard_images`` validation images
with their predictions drawn) into the run folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.tensorboard import SummaryWriter

from taskweight import weighting
from taskweight.build import (
    build_model,
    build_optimizer,
    build_scheduler,
    cluster_anchors,
    make_loader,
    open_split,
    resolve_device,
    seed_everything,
)
from taskweight.checkpoint import CheckpointError, load_complaint, previous_of, save_checkpoint
from taskweight.checkpoint import load_checkpoint as read_checkpoint
from taskweight.config import TrainConfig, dump_config
from taskweight.distributed import Distributed, convert_batch_norm
from taskweight.durable import FolderLock, atomic_text_writer
from taskweight.engine import StepOutput, TrainStep, check_gradients
from taskweight.errors import RunFolderError, TrainingError
from taskweight.evaluate import evaluate
from taskweight.failpoints import failpoint
from taskweight.hostmemory import keep_freed_memory
from taskweight.jsonio import dumps, write_json
from taskweight.metrics import improves
from taskweight.predict import log_predictions
from taskweight.weighting.base import WeightingStrategy

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
RUN_OUTPUTS = (
    CHECKPOINT_LAST,
    "last.prev.pt",
    CHECKPOINT_BEST,
    "metrics.json",
    "history.csv",
    "weights.csv",
    "tensorboard",
)
"""What a run writes; a new run into a folder holding any of them needs ``overwrite``."""
RESUME_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "strategy",
    "epoch",
    "global_step",
    "history",
    "best",
    "initial_losses",
    "train_time",
    "torch_rng",
)
INITIAL_LOSS_STEPS = 10
"""Iterations over which the initial loss ratio L_det(0)/L_seg(0) is measured (paper Eq. 4)."""


@dataclass
class TrainResult:
    """What a finished run produced (also written to ``run_dir/metrics.json``)."""

    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Train the two-task network with a weighting strategy.

    Args:
        config: validated run configuration.
        run_dir: output folder (created).
        strategy: a ready strategy; default: built from ``config.method``.
        init_from: checkpoint whose model weights start this run (dynamic weight transfer,
            paper §IV-C); optimiser and schedule start fresh.
        show_progress: draw rich progress bars.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        strategy: WeightingStrategy | None = None,
        init_from: str | Path | None = None,
        show_progress: bool = True,
        console: Console | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        # a rank of a multi-process launch (taskweight train --nproc N) joins its process group here
        self.distributed, self.device = Distributed.from_environment(resolve_device(config.device))
        self.is_main = self.distributed is None or self.distributed.is_main
        """Rank 0 (or the only process) validates and writes the run's files."""
        self.console = console if console is not None and self.is_main else Console(stderr=True, quiet=not self.is_main)
        self.show_progress = show_progress and self.is_main
        if config.threads:
            torch.set_num_threads(config.threads)
        self.host_memory_kept = config.keep_host_memory and self.device.type == "cpu" and keep_freed_memory() > 0
        """Whether freed memory stays in this process for the next step (:mod:`taskweight.hostmemory`)."""
        seed_everything(config.seed)
        # the strategy first: a bad method option is reported before any data is read
        self.strategy = strategy or weighting.get(config.method.name, tasks=config.tasks, **config.method.options)
        check_gradients(config.method.gradients, self.strategy, distributed=self.distributed is not None)
        self.train_set = open_split(config, config.data.train_split, train=True)
        self.val_set = open_split(config, config.data.val_split, train=False)
        from rich.markup import escape

        from taskweight.data.problems import skipped_report

        self.skipped = skipped_report((self.train_set, self.val_set))  # {"count": N, "samples": [...]}
        if self.skipped["count"]:
            first = self.skipped["samples"][0]
            where = f"{first['file']}:{first['line']}" if first["line"] is not None else f"{first['file']}"
            self.console.print(
                "[yellow]warning:[/] "
                + escape(
                    f"skipped {self.skipped['count']} bad sample(s) (on_error=skip), first: {first['id']} of split "
                    f"{first['split']!r}: {where}: {first['problem']}"
                ),
                highlight=False,
            )
        if len(self.train_set) == 0:  # type: ignore[arg-type]  # torch's Dataset declares no __len__; ours have one
            raise TrainingError(f"split {config.data.train_split!r} of {config.data.root} is empty")
        anchors = None
        init_state = None
        if init_from is not None:
            init_state = read_checkpoint(init_from)
            anchors = init_state["model"].get("det_head.anchors")  # the transferred model keeps its anchors
        elif config.model.anchors is None and "det" in config.tasks:
            anchors = cluster_anchors(self.train_set, config.model.num_anchors, config.seed)
        self.model = build_model(config, anchors).to(self.device)
        if init_state is not None:
            self.model.load_state_dict(init_state["model"])
        if self.distributed is not None:
            self.model = convert_batch_norm(self.model, self.device)
        self.strategy.to(self.device)
        self.optimizer = build_optimizer(config, self.model, self.strategy)
        self.val_loader = make_loader(self.val_set, config, shuffle=False, device=self.device)
        # one training loader for the run (its workers, if any, live across epochs); each epoch sets its order
        self.train_loader = make_loader(
            self.train_set, config, shuffle=True, device=self.device, distributed=self.distributed
        )
        ranks = self.distributed.world_size if self.distributed is not None else 1
        per_rank = math.ceil(len(self.train_set) / ranks)  # type: ignore[arg-type]  # Dataset: no __len__ in torch's type
        self.steps_per_epoch = math.ceil(per_rank / config.batch_size)
        self.scheduler = build_scheduler(config, self.optimizer, self.steps_per_epoch)
        self.step = TrainStep(
            self.model,
            self.strategy,
            self.optimizer,
            device=self.device,
            precision=config.precision,
            channels_last=config.channels_last,
            compile=config.compile,
            grad_clip=config.optim.grad_clip,
            scheduler=self.scheduler,
            distributed=self.distributed,
            gradients=config.method.gradients,
            cuda_graph=config.cuda_graph,
        )
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "metrics": None}
        self.initial_losses: dict[str, list[float]] = {t: [] for t in self.model.tasks}
        self.train_time = 0.0

    # ------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "strategy": self.strategy.state_dict(),
            "step": self.step.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": dumps(self.history),
            "best": dumps(self.best),
            "initial_losses": json.dumps(self.initial_losses),
            "train_time": self.train_time,
            "torch_rng": torch.get_rng_state(),
        }

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything needed to continue a run exactly where it stopped."""
        state = read_checkpoint(path, required=RESUME_KEYS)
        try:
            if "det" in self.model.tasks:
                self.model.det_head.anchors.resize_as_(state["model"]["det_head.anchors"])
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.strategy.load_state_dict(state["strategy"])
            self.step.load_state_dict(state.get("step", {}))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                path,
                f"does not fit this run's configuration (model, optimiser or method differ): {load_complaint(exc)}",
            ) from None
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = json.loads(state["history"])
        self.best = json.loads(state["best"])
        self.initial_losses = json.loads(state["initial_losses"])
        self.train_time = float(state["train_time"])
        torch.set_rng_state(state["torch_rng"])

    # ------------------------------------------------------------------- fit
    def fit(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Train for ``config.epochs`` epochs.

        ``resume``: continue from ``last.pt``, or from ``last.prev.pt`` (the epoch before) when
        ``last.pt`` is unreadable — each unreadable file is reported by name; a folder with no
        checkpoint at all (a run killed in its first epoch) starts from scratch. Rows of ``weights.csv``
        written after the checkpoint (a kill during an epoch or its validation) are dropped, so the resumed
        run's files equal an uninterrupted run's.
        ``overwrite``: a new run may replace the results found in ``run_dir``; without it (and
        without ``resume``) a run folder holding results is refused. The folder is locked
        against a second process for the whole run.
        """
        if not self.is_main:  # rank 0 claims the folder first; the others then read the same checkpoint
            assert self.distributed is not None
            self.distributed.barrier()
            resumed = self.distributed.broadcast(None)
            if resumed is None:
                raise TrainingError("rank 0 could not open the run folder: see its error above")
            if resumed:
                self._resume()
            return self._fit(resumed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.run_dir, "run folder"):
            outcome: bool | None = None  # None: the folder could not be claimed (the other ranks stop too)
            try:
                if resume:
                    resumed = self._resume()
                    if not resumed:  # killed before its first checkpoint: start again, without its partial files
                        self._claim_folder(overwrite=True)
                else:
                    self._claim_folder(overwrite)
                    resumed = False
                outcome = resumed
            finally:
                if self.distributed is not None:
                    self.distributed.barrier()
                    self.distributed.broadcast(outcome)
            return self._fit(resumed)

    @staticmethod
    def check_folder(run_dir: str | Path, *, overwrite: bool = False) -> list[str]:
        """The run outputs already in ``run_dir``; :class:`RunFolderError` if there are any and not ``overwrite``."""
        run_dir = Path(run_dir)
        found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
        if found and not overwrite:
            raise RunFolderError(
                f"{run_dir} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                f"--overwrite to replace it, or choose another --out"
            )
        return found

    def _claim_folder(self, overwrite: bool) -> None:
        """Refuse a folder holding a run, or (``overwrite``) remove that run's outputs."""
        for name in self.check_folder(self.run_dir, overwrite=overwrite):
            target = self.run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()

    def _resume(self) -> bool:
        """Load the newest readable checkpoint; ``False`` when the folder has none."""
        last = self.run_dir / CHECKPOINT_LAST
        problems: list[CheckpointError] = []
        for path in (last, previous_of(last)):
            if not path.is_file():
                continue
            try:
                self.load_checkpoint(path)
            except CheckpointError as exc:
                problems.append(exc)
                self.console.print(f"[yellow]warning:[/] {exc}")
                continue
            if problems:
                self.console.print(f"[yellow]warning:[/] resuming from the previous checkpoint {path.name} instead")
            self.console.print(f"resuming {self.run_dir} after epoch {self.epoch}")
            return True
        if problems:
            raise CheckpointError(
                last,
                "cannot resume: no readable checkpoint in the run folder (" + "; ".join(str(p) for p in problems) + ")",
            )
        return False

    def _fit(self, resumed: bool) -> TrainResult:
        last = self.run_dir / CHECKPOINT_LAST
        tasks = self.model.tasks
        writer: SummaryWriter | _NoWriter
        weights_file: IO[str]
        if self.is_main:
            dump_config(self.config, self.run_dir / "config.yaml")
            writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.global_step or None)
            weights_path = self.run_dir / "weights.csv"
            if resumed:
                _truncate_weights(weights_path, self.global_step)
            weights_file = weights_path.open("a" if resumed else "w", newline="")
        else:  # the other ranks hold the same losses and weights: rank 0 records them
            writer, weights_file = _NoWriter(), io.StringIO()
        weights_csv = csv.writer(weights_file)
        if weights_file.tell() == 0:
            weights_csv.writerow(["step", "epoch", *(f"loss_{t}" for t in tasks), *(f"weight_{t}" for t in tasks)])
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        try:
            with Progress(*columns, console=self.console, disable=not self.show_progress) as progress:
                run_bar = progress.add_task("epochs", total=self.config.epochs, completed=self.epoch, info="")
                while self.epoch < self.config.epochs:
                    row = self._train_epoch(progress, writer, weights_csv)
                    weights_file.flush()
                    val = self._validate()
                    row.update({f"val_{k}": v for k, v in val.items()})
                    self.history.append(row)
                    # at the epoch's last step, like the training curves and the learning rate: a resumed
                    # run's writer purges from its checkpoint's global step on, so the scores of an epoch
                    # whose checkpoint never landed are removed before the epoch is validated again
                    epoch_step = self.global_step - 1
                    for key, value in val.items():
                        if not math.isnan(value):
                            writer.add_scalar(f"val/{key}", value, epoch_step)
                    if self.config.tensorboard_images and self.is_main:
                        log_predictions(
                            writer,
                            self.model,
                            self.val_set,
                            self.config.tensorboard_images,
                            epoch_step,
                            device=self.device,
                            precision=self.step.precision,
                            nms_iou=self.config.eval.nms_iou,
                            channels_last=self.config.channels_last,
                        )
                    if self.best["metrics"] is None or improves(
                        val.get("geometric_mean"), self.best["metrics"].get("geometric_mean")
                    ):
                        self.best = {"epoch": self.epoch, "metrics": val}
                        if self.is_main:
                            save_checkpoint(
                                {"model": self.model.state_dict(), "epoch": self.epoch, "metrics": dumps(val)},
                                self.run_dir / CHECKPOINT_BEST,
                            )
                    if self.is_main:
                        save_checkpoint(self._state(), last, keep_previous=True)
                        self._write_history()
                    progress.update(
                        run_bar,
                        completed=self.epoch,
                        info=f"val mAP {val['mAP']:.3f} mIoU {val['mIoU']:.3f} GM {val['geometric_mean']:.3f}",
                    )
        finally:
            weights_file.close()
            writer.close()
        metrics = self._metrics()
        if self.is_main:
            write_json(self.run_dir / "metrics.json", metrics)
        return TrainResult(self.run_dir, metrics, self.history)

    def _validate(self) -> dict[str, float]:
        """Validation metrics over the whole val split: computed by rank 0, the same on every rank."""
        val: dict[str, float] | None = None
        if self.is_main:
            val = evaluate(
                self.model,
                self.val_loader,
                self.device,
                score_threshold=self.config.eval.score_threshold,
                nms_iou=self.config.eval.nms_iou,
                precision=self.step.precision,
                channels_last=self.config.channels_last,
            )
        if self.distributed is not None:
            val = self.distributed.broadcast(val)
        assert val is not None
        return val

    def _train_epoch(self, progress: Progress, writer: SummaryWriter | _NoWriter, weights_csv: Any) -> dict[str, Any]:
        self.model.train()
        loader = self.train_loader
        loader.sampler.set_epoch(self.epoch)  # type: ignore[attr-defined]  # EpochSampler or DistributedSampler
        bar = progress.add_task(f"epoch {self.epoch + 1}/{self.config.epochs}", total=len(loader), info="")
        log = _StepLog(self, writer, weights_csv)
        started = time.perf_counter()
        for batch in loader:
            log.add(self.global_step, self.step(batch), batch["names"])
            self.global_step += 1
            failpoint("train_step")
            if len(log.pending) >= self.config.log_every:
                progress.update(bar, info=log.flush())
            progress.update(bar, advance=1)
        log.flush()
        self.strategy.on_epoch_end()
        elapsed = time.perf_counter() - started
        self.train_time += elapsed
        progress.remove_task(bar)
        self.epoch += 1
        lr = float(self.scheduler.get_last_lr()[0])  # a device tensor when the step runs as a CUDA graph
        # at the epoch's last step, not the next one: a resumed run's writer purges the steps from its
        # checkpoint's global step on, and would drop this epoch's value with them
        writer.add_scalar("lr", lr, self.global_step - 1)
        row: dict[str, Any] = {"epoch": self.epoch, "lr": lr, "epoch_time_s": elapsed}
        row.update({f"train_{k}": log.sums[k] / log.counts[k] for k in log.sums if not k.startswith("weight_")})
        row.update({k: log.sums[k] / log.counts[k] for k in log.sums if k.startswith("weight_")})
        return row

    def _write_history(self) -> None:
        keys: list[str] = []
        for row in self.history:
            keys.extend(k for k in row if k not in keys)
        with atomic_text_writer(self.run_dir / "history.csv", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)

    def _metrics(self) -> dict[str, Any]:
        final = {k.removeprefix("val_"): v for k, v in self.history[-1].items() if k.startswith("val_")}
        initial = {t: sum(v) / len(v) for t, v in self.initial_losses.items() if v}
        ratio = initial["det"] / initial["seg"] if "det" in initial and initial.get("seg") else None
        return {
            "method": self.config.method.name,
            "method_options": self.config.method.options,
            "precision": self.step.precision,
            "channels_last": self.config.channels_last,
            "compile": self.config.compile,
            "cuda_graph": self.step.graphs is not None,
            "host_memory_kept": self.host_memory_kept,
            "epochs": self.epoch,
            "train_time_s": self.train_time,
            "final": final,
            "best": self.best["metrics"],
            "best_epoch": self.best["epoch"],
            "final_weights": self.strategy.current_weights(),
            "initial_losses": initial,
            "initial_loss_ratio_det_over_seg": ratio,
            "skipped_samples": self.skipped,
        }


class _StepLog:
    """Per-step records kept on the device and read back every ``log_every`` steps.

    A flush is the loop's only host synchronisation: it converts the pending steps' losses,
    weights and loss terms in one transfer, stops the run at the first non-finite loss (naming
    epoch, step, task and images), and writes every pending step to ``weights.csv`` and
    TensorBoard, so nothing is sampled away.
    """

    def __init__(self, trainer: Trainer, writer: SummaryWriter | _NoWriter, weights_csv: Any) -> None:
        self.trainer = trainer
        self.writer = writer
        self.weights_csv = weights_csv
        self.pending: list[tuple[int, StepOutput, list[str]]] = []
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, step: int, output: StepOutput, names: list[str]) -> None:
        self.pending.append((step, output, names))

    def flush(self) -> str:
        """Read the pending steps back; return a progress line of the last one."""
        if not self.pending:
            return ""
        trainer = self.trainer
        tasks = trainer.model.tasks
        tensors: list[torch.Tensor] = []
        records = []
        for step, out, names in self.pending:
            entries: dict[str, torch.Tensor | float] = {f"loss_{t}": v for t, v in out.losses.items()}
            entries.update({f"weight_{t}": w for t, w in out.weights.items()})
            entries.update(out.details)
            slots: dict[str, int | float] = {}
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    slots[key] = len(tensors)
                    tensors.append(value.detach().float().reshape(()))
                else:
                    slots[key] = float(value)
            records.append((step, names, slots))
        numbers = torch.stack(tensors).cpu().tolist() if tensors else []
        self.pending = []
        values: dict[str, float] = {}
        for step, names, slots in records:
            values = {k: numbers[v] if isinstance(v, int) else v for k, v in slots.items()}
            for task in tasks:
                loss = values.get(f"loss_{task}")
                if loss is not None and not math.isfinite(loss):
                    raise TrainingError(
                        f"epoch {trainer.epoch + 1}, step {step}: the {task} loss is {loss} "
                        f"(images {', '.join(map(str, names))}); lower optim.lr or check the labels"
                    )
            if step < INITIAL_LOSS_STEPS and all(f"loss_{t}" in values for t in tasks):
                for task in tasks:
                    trainer.initial_losses[task].append(values[f"loss_{task}"])
            for key, value in values.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1
                self.writer.add_scalar(key.replace("_", "/", 1), value, step)
            self.weights_csv.writerow(
                [
                    step,
                    trainer.epoch + 1,
                    *(_fmt(values.get(f"loss_{t}")) for t in tasks),
                    *(_fmt(values.get(f"weight_{t}")) for t in tasks),
                ]
            )
        return " ".join(f"{t} {values[f'loss_{t}']:.3f}" for t in tasks if f"loss_{t}" in values)


class _NoWriter:
    """The TensorBoard writer of a rank other than 0: records nothing (rank 0 records the same values)."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def resumable(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run ``fit(resume=True)`` can continue (from a checkpoint, or
    from its start when it was killed before its first one)."""
    return bool(Trainer.check_folder(run_dir, overwrite=True)) or (Path(run_dir) / "config.yaml").is_file()


def _truncate_weights(path: Path, next_step: int) -> None:
    """Keep the header and the rows of steps before ``next_step`` (the rest are trained again)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < next_step]
    if len(kept) == len(rows):
        return
    with atomic_text_writer(path, newline="") as handle:
        csv.writer(handle).writerows(kept)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
