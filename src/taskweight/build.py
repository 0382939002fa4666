"""Build a run's parts from its configuration: device, data splits, loaders, anchors, model,
optimiser and learning-rate schedule.

The trainer, the scorer, the search, the benchmarks and the tests assemble a run with these
functions only, so a run means the same thing wherever it is built.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from taskweight.config import TrainConfig
from taskweight.data import EpochSampler, collate_batch, format_option, open_dataset
from taskweight.distributed import Distributed
from taskweight.errors import ConfigError, TrainingError
from taskweight.models import MultiTaskNet, kmeans_anchors, resnet10_multitask
from taskweight.weighting.base import WeightingStrategy


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; a CPU run with a fixed seed is then reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` = the first CUDA device when there is one, else the CPU; errors name the option."""
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
    options = dict(config.data.options)
    if "depth" in config.tasks:
        if not format_option(config.data.format, "depth"):
            raise ConfigError(
                f"option 'tasks': the {config.data.format} format reads no depth ground truth "
                "(the kitti, cityscapes and woodscape formats read depth)"
            )
        options["depth"] = True
    return open_dataset(
        config.data.format,
        config.data.root,
        split,
        image_size=config.data.image_size,
        augment=train and config.data.augment,
        cache=config.data.cache,
        on_error=config.data.on_error,
        **options,
    )


def make_loader(
    dataset: Dataset,
    config: TrainConfig,
    *,
    shuffle: bool,
    epoch_seed: int | None = None,
    device: torch.device | None = None,
    distributed: Distributed | None = None,
) -> DataLoader:
    """A loader of collated batches; pinned memory when batches go to a CUDA device.

    A shuffled loader visits the split in the order of epoch ``epoch_seed`` (default 0), drawn
    from (seed, epoch) alone; ``loader.sampler.set_epoch(e)`` moves it to epoch e, so one loader
    serves a run and a resumed run draws the same orders (:class:`taskweight.data.EpochSampler`).
    With ``data.num_workers`` > 0 the workers stay alive across epochs and each visit's flip is
    seeded from (seed, epoch, index) (:mod:`taskweight.data.sampler`).

    ``distributed``: this rank's share of the split (a ``DistributedSampler`` shuffled from the
    same (seed, epoch) on every rank; the last samples repeat so that every rank takes as many
    steps)."""
    workers = config.data.num_workers
    options: dict[str, Any] = {}
    if distributed is not None:
        shard: DistributedSampler = DistributedSampler(
            dataset,
            num_replicas=distributed.world_size,
            rank=distributed.rank,
            shuffle=shuffle,
            seed=config.seed * 1_000_003,
        )
        shard.set_epoch(epoch_seed or 0)
        sampler: Sampler = shard
    elif shuffle:
        sampler = EpochSampler(len(dataset), seed=config.seed, keyed=workers > 0, epoch=epoch_seed or 0)  # type: ignore[arg-type]  # our datasets have __len__
        # the loader's own draws (its workers' base seed) come from a private generator, never the global one
        options = {"generator": torch.Generator().manual_seed(0), "persistent_workers": workers > 0}
    else:
        sampler = SequentialSampler(dataset)  # type: ignore[arg-type]  # our datasets have __len__
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_batch,
        num_workers=workers,
        pin_memory=device is not None and device.type == "cuda",
        drop_last=False,
        **options,
    )


def cluster_anchors(dataset: Dataset, k: int, seed: int) -> torch.Tensor:
    """k-means anchors from the (resized) training boxes (YOLOv2, see ``kmeans_anchors``)."""
    sizes = []
    for i in range(len(dataset)):  # type: ignore[arg-type]  # torch's Dataset declares no __len__; ours have one
        boxes = dataset[i]["boxes"]
        if boxes.numel():
            sizes.append(boxes[:, 2:] - boxes[:, :2])
    if not sizes or sum(len(s) for s in sizes) < k:
        raise TrainingError(f"the training split has fewer than {k} boxes: cannot cluster anchors")
    return kmeans_anchors(torch.cat(sizes), k, seed=seed)


def build_model(config: TrainConfig, anchors: torch.Tensor | None) -> MultiTaskNet:
    """The paper's network (§V-A) at the configured width with the heads of the configured tasks;
    explicit anchors in the config win (they are unused without a detection head)."""
    if config.model.anchors is not None:
        anchors = torch.tensor(config.model.anchors, dtype=torch.float32)
    return resnet10_multitask(
        width=config.model.width,
        image_height=config.data.image_size[0],
        anchors=anchors,
        head_channels=config.model.head_channels,
        pretrained_encoder=config.model.pretrained,
        tasks=config.tasks,
        det_assignment=config.model.det_assignment,
        det_stride=config.model.det_stride,
    )


def build_optimizer(config: TrainConfig, model: MultiTaskNet, strategy: WeightingStrategy) -> torch.optim.Optimizer:
    """The configured optimiser over the network and the strategy's learnable weights (no decay on those),
    with fused kernels where torch has them; call it after the model is on its device."""
    o = config.optim
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    extra = strategy.trainable_parameters()
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    # fused kernels: one pass over all parameters (AdamW step 3.5 ms → 0.5 ms for the quick preset on the CPU)
    fused: dict[str, Any] = {"fused": True} if _fused_available() else {}
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, **fused)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay, **fused)
    return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, **fused)


def _fused_available() -> bool:
    """Fused optimiser kernels run on CPU and CUDA since torch 2.4."""
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)


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


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule of :func:`lr_factor` over ``config.epochs`` epochs."""
    total = steps_per_epoch * config.epochs
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s, total, steps_per_epoch))
