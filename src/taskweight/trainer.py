"""The training loop: one loop for every weighting strategy.

config → data → model → weighting → (this loop) → metrics. The loop never looks inside a
strategy: each mini-batch it asks the model for the task losses and hands them to
``strategy.backward`` (paper Eq. 2), then steps the optimiser. It validates every epoch,
keeps the best epoch by val geometric mean, checkpoints every epoch so ``resume=True``
continues exactly where a run stopped, and writes ``metrics.json``, ``history.csv``,
``weights.csv``, ``config.yaml`` and TensorBoard scalars into the run folder.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset
from torch.utils.tensorboard import SummaryWriter

from taskweight import weighting
from taskweight.config import TrainConfig, dump_config
from taskweight.data import collate_batch, open_dataset
from taskweight.errors import ConfigError, TrainingError
from taskweight.evaluate import batch_to_device, evaluate
from taskweight.jsonio import dumps, write_json
from taskweight.models import MultiTaskNet, kmeans_anchors, resnet10_multitask
from taskweight.weighting.base import WeightingStrategy

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
INITIAL_LOSS_STEPS = 10
"""Iterations over which the initial loss ratio L_det(0)/L_seg(0) is measured (paper Eq. 4)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; a CPU run with a fixed seed is then reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"option 'device': {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"option 'device': {name} requested but no CUDA device is available")
    return device


def open_split(config: TrainConfig, split: str, *, train: bool) -> Dataset:
    """Open one split of the configured dataset at the network's input size."""
    if config.data.root is None:
        raise ConfigError("option 'data.root' is not set: give --data DIR or data.root in the config")
    return open_dataset(
        config.data.format,
        config.data.root,
        split,
        image_size=tuple(config.data.image_size),
        augment=train and config.data.augment,
        cache=config.data.cache,
        on_error=config.data.on_error,
        **config.data.options,
    )


def make_loader(dataset: Dataset, config: TrainConfig, *, shuffle: bool, epoch_seed: int | None = None) -> DataLoader:
    generator = None
    if shuffle:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + (epoch_seed or 0))
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate_batch,
        num_workers=config.data.num_workers,
        drop_last=False,
    )


def cluster_anchors(dataset: Dataset, k: int, seed: int) -> torch.Tensor:
    """k-means anchors from the (resized) training boxes (YOLOv2, see ``kmeans_anchors``)."""
    sizes = []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        boxes = dataset[i]["boxes"]
        if boxes.numel():
            sizes.append(boxes[:, 2:] - boxes[:, :2])
    if not sizes or sum(len(s) for s in sizes) < k:
        raise TrainingError(f"the training split has fewer than {k} boxes: cannot cluster anchors")
    return kmeans_anchors(torch.cat(sizes), k, seed=seed)


def build_model(config: TrainConfig, anchors: torch.Tensor | None) -> MultiTaskNet:
    if config.model.anchors is not None:
        anchors = torch.tensor(config.model.anchors, dtype=torch.float32)
    return resnet10_multitask(
        width=config.model.width,
        image_height=config.data.image_size[0],
        anchors=anchors,
        head_channels=config.model.head_channels,
        pretrained_encoder=config.model.pretrained,
    )


def build_optimizer(config: TrainConfig, model: MultiTaskNet, strategy: WeightingStrategy) -> torch.optim.Optimizer:
    o = config.optim
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    extra = strategy.trainable_parameters()
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)


def lr_factor(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 1 % / step decay ×0.1 every ``step_epochs`` / constant."""
    o = config.optim
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "step":
        return 0.1 ** ((step // max(steps_per_epoch, 1)) // o.step_epochs)
    progress = (step - o.warmup_steps) / max(total_steps - o.warmup_steps, 1)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


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
        self.device = resolve_device(config.device)
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress
        if config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        self.train_set = open_split(config, config.data.train_split, train=True)
        self.val_set = open_split(config, config.data.val_split, train=False)
        self.skipped = {name: list(getattr(ds, "skipped", [])) for name, ds in
                        ((config.data.train_split, self.train_set), (config.data.val_split, self.val_set))}
        for name, items in self.skipped.items():
            if items:
                self.console.print(f"[yellow]warning:[/] skipped {len(items)} bad sample(s) of split {name!r} "
                                   f"(on_error=skip), first: {items[0]}")
        if len(self.train_set) == 0:  # type: ignore[arg-type]
            raise TrainingError(f"split {config.data.train_split!r} of {config.data.root} is empty")
        anchors = None
        init_state = None
        if init_from is not None:
            init_state = torch.load(init_from, map_location="cpu", weights_only=True)
            anchors = init_state["model"]["det_head.anchors"]  # the transferred model keeps its anchors
        elif config.model.anchors is None:
            anchors = cluster_anchors(self.train_set, config.model.num_anchors, config.seed)
        self.model = build_model(config, anchors).to(self.device)
        if init_state is not None:
            self.model.load_state_dict(init_state["model"])
        self.strategy = strategy or weighting.get(config.method.name, tasks=self.model.tasks, **config.method.options)
        self.strategy.to(self.device)
        self.optimizer = build_optimizer(config, self.model, self.strategy)
        self.val_loader = make_loader(self.val_set, config, shuffle=False)
        self.steps_per_epoch = math.ceil(len(self.train_set) / config.batch_size)  # type: ignore[arg-type]
        total = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(config, s, total, self.steps_per_epoch)
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
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.det_head.anchors.resize_as_(state["model"]["det_head.anchors"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.strategy.load_state_dict(state["strategy"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = json.loads(state["history"])
        self.best = json.loads(state["best"])
        self.initial_losses = json.loads(state["initial_losses"])
        self.train_time = float(state["train_time"])
        torch.set_rng_state(state["torch_rng"])

    # ------------------------------------------------------------------- fit
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train for ``config.epochs`` epochs (continuing from ``last.pt`` if ``resume``)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        last = self.run_dir / CHECKPOINT_LAST
        if resume and last.is_file():
            self.load_checkpoint(last)
            self.console.print(f"resuming {self.run_dir} after epoch {self.epoch}")
        dump_config(self.config, self.run_dir / "config.yaml")
        writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.global_step or None)
        weights_file = (self.run_dir / "weights.csv").open("a" if resume else "w", newline="")
        weights_csv = csv.writer(weights_file)
        tasks = self.model.tasks
        if weights_file.tell() == 0:
            weights_csv.writerow(["step", "epoch", *(f"loss_{t}" for t in tasks), *(f"weight_{t}" for t in tasks)])
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
        try:
            with Progress(*columns, console=self.console, disable=not self.show_progress) as progress:
                run_bar = progress.add_task("epochs", total=self.config.epochs, completed=self.epoch, info="")
                while self.epoch < self.config.epochs:
                    row = self._train_epoch(progress, writer, weights_csv)
                    weights_file.flush()
                    val = evaluate(self.model, self.val_loader, self.device,
                                   score_threshold=self.config.eval.score_threshold, nms_iou=self.config.eval.nms_iou)
                    row.update({f"val_{k}": v for k, v in val.items()})
                    self.history.append(row)
                    for key, value in val.items():
                        if not math.isnan(value):
                            writer.add_scalar(f"val/{key}", value, self.epoch)
                    if self.best["metrics"] is None or _better(val, self.best["metrics"]):
                        self.best = {"epoch": self.epoch, "metrics": val}
                        torch.save({"model": self.model.state_dict(), "epoch": self.epoch, "metrics": dumps(val)},
                                   self.run_dir / CHECKPOINT_BEST)
                    torch.save(self._state(), last)
                    self._write_history()
                    progress.update(run_bar, completed=self.epoch,
                                    info=f"val mAP {val['mAP']:.3f} mIoU {val['mIoU']:.3f} GM {val['geometric_mean']:.3f}")
        finally:
            weights_file.close()
            writer.close()
        metrics = self._metrics()
        write_json(self.run_dir / "metrics.json", metrics)
        return TrainResult(self.run_dir, metrics, self.history)

    def _train_epoch(self, progress: Progress, writer: SummaryWriter, weights_csv: Any) -> dict[str, Any]:
        self.model.train()
        loader = make_loader(self.train_set, self.config, shuffle=True, epoch_seed=self.epoch)
        bar = progress.add_task(f"epoch {self.epoch + 1}/{self.config.epochs}", total=len(loader), info="")
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        started = time.perf_counter()
        shared = self.model.shared_parameters()
        last_layer = self.model.last_shared_layer
        for batch in loader:
            batch = batch_to_device(batch, self.device)
            details: dict[str, float] = {}
            outputs = self.model(batch["image"])
            losses = self.model.compute_losses(outputs, batch, details)
            values = {t: float(v.detach()) for t, v in losses.items()}
            for task, value in values.items():
                if not math.isfinite(value):
                    raise TrainingError(
                        f"epoch {self.epoch + 1}, step {self.global_step}: the {task} loss is {value} "
                        f"(images {', '.join(map(str, batch.get('names', [])))}); lower optim.lr or check the labels"
                    )
            self.optimizer.zero_grad(set_to_none=True)
            used = self.strategy.backward(losses, shared, last_layer)
            if self.config.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.strategy.on_step_end()
            if self.global_step < INITIAL_LOSS_STEPS and len(values) == len(self.model.tasks):
                for task, value in values.items():
                    self.initial_losses[task].append(value)
            for key, value in {**{f"loss_{t}": v for t, v in values.items()}, **details,
                               **{f"weight_{t}": w for t, w in used.items()}}.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
                writer.add_scalar(key.replace("_", "/", 1), value, self.global_step)
            weights_csv.writerow([self.global_step, self.epoch + 1,
                                  *(_fmt(values.get(t)) for t in self.model.tasks),
                                  *(_fmt(used.get(t)) for t in self.model.tasks)])
            self.global_step += 1
            info = " ".join(f"{t} {v:.3f}" for t, v in values.items())
            progress.update(bar, advance=1, info=info)
        self.strategy.on_epoch_end()
        elapsed = time.perf_counter() - started
        self.train_time += elapsed
        progress.remove_task(bar)
        self.epoch += 1
        writer.add_scalar("lr", self.scheduler.get_last_lr()[0], self.global_step)
        row: dict[str, Any] = {"epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0], "epoch_time_s": elapsed}
        row.update({f"train_{k}": sums[k] / counts[k] for k in sums if not k.startswith("weight_")})
        row.update({k: sums[k] / counts[k] for k in sums if k.startswith("weight_")})
        return row

    def _write_history(self) -> None:
        keys: list[str] = []
        for row in self.history:
            keys.extend(k for k in row if k not in keys)
        with (self.run_dir / "history.csv").open("w", newline="") as handle:
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
            "epochs": self.epoch,
            "train_time_s": self.train_time,
            "final": final,
            "best": self.best["metrics"],
            "best_epoch": self.best["epoch"],
            "final_weights": self.strategy.current_weights(),
            "initial_losses": initial,
            "initial_loss_ratio_det_over_seg": ratio,
            "skipped_samples": {name: [str(item) for item in items] for name, items in self.skipped.items()},
        }


def _better(candidate: dict[str, float], incumbent: dict[str, float]) -> bool:
    """Model selection on val: higher geometric mean (NaN never wins)."""
    new = candidate.get("geometric_mean")
    old = incumbent.get("geometric_mean")
    new = float("nan") if new is None else new
    old = float("nan") if old is None else old
    if math.isnan(new):
        return False
    return math.isnan(old) or new > old


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"

