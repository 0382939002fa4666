"""Training throughput of a preset in fp32 and in a mixed precision, measured in ONE run.

Four measurements, interleaved round by round so machine noise hits them alike:

    (a) model only, fp32        forward + backward of a plain loss on an in-memory batch
    (b) model only, PRECISION   the same under autocast, channels-last as configured
    (c) full step, fp32         the trainer's step as before mixed precision: DataLoader (cached,
                                augmented), both task losses, the strategy's backward, optimiser
    (d) full step, PRECISION    the same step with the preset's precision and memory layout

It prints img/s of each, d/c (the speed-up of training) and d/b (the share of the step that
the network itself takes: data, losses and strategy cost the rest). Every full step is the
trainer's own :class:`taskweight.engine.TrainStep`.

    python benchmarks/throughput.py [--preset quick] [--precision auto] [--method equal]
        [--size 384x1248] [--batch 16] [--rounds 12] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from table_output import emit  # a sibling script: python puts benchmarks/ on the path

from taskweight import weighting
from taskweight.build import build_model, build_optimizer, cluster_anchors, make_loader, open_split, resolve_device
from taskweight.config import TrainConfig, load_config
from taskweight.data import SampleKey, batch_to_device
from taskweight.engine import TrainStep
from taskweight.precision import autocast, resolve_precision
from taskweight.synth import generate_dataset


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(
    model: torch.nn.Module, images: torch.Tensor, precision: str, device: torch.device
) -> Callable[[], None]:
    """(a)/(b): forward + backward of mean(outputs) on a fixed in-memory batch."""

    def run() -> None:
        with autocast(precision, device):
            outputs = model(images)
        loss = sum(v.float().mean() for v in outputs.values())
        model.zero_grad(set_to_none=True)
        loss.backward()

    return run


class Repeated(torch.utils.data.Dataset):
    """``size`` items cycling over ``base`` (index modulo its length), keyed visits included."""

    def __init__(self, base: torch.utils.data.Dataset, size: int) -> None:
        self.base, self.size = base, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | SampleKey) -> dict:
        n = len(self.base)  # type: ignore[arg-type]
        if isinstance(key, SampleKey):
            return self.base[SampleKey(key.index % n, key.seed)]
        return self.base[key % n]


def full_step(
    cfg: TrainConfig, base: torch.nn.Module, method: str, device: torch.device, dataset: torch.utils.data.Dataset
) -> tuple[Callable[[], None], TrainStep]:
    """(c)/(d): the trainer's step on batches drawn from a DataLoader over the cached split."""
    model = copy.deepcopy(base).train()
    strategy = weighting.get(method, tasks=model.tasks).to(device)
    optimizer = build_optimizer(cfg, model, strategy)
    step = TrainStep(
        model,
        strategy,
        optimizer,
        device=device,
        precision=cfg.precision,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
        cuda_graph=cfg.cuda_graph,
    )
    loader = make_loader(dataset, cfg, shuffle=True, device=device)  # one loader, as the trainer keeps
    batches: Iterator = iter(())
    epoch = [0]

    def run() -> None:
        nonlocal batches
        batch = next(batches, None)
        if batch is None:
            epoch[0] += 1
            loader.sampler.set_epoch(epoch[0])
            batches = iter(loader)
            batch = next(batches)
        step(batch)

    return run, step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--precision", default="auto", help="the precision compared with fp32: auto, bf16 or fp16")
    parser.add_argument("--method", default="equal")
    parser.add_argument("--size", default=None, help="network input HxW (default: the preset's)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds (each times every measurement once)")
    parser.add_argument("--steps", type=int, default=3, help="steps per measurement and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network in (b) and (d)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cuda-graph", default="auto", help="CUDA graphs for (d): auto, on or off ((c) never)")
    parser.add_argument(
        "--epoch-batches",
        type=int,
        default=16,
        help="batches per epoch of the loader (the 4 batches of scenes repeat): a loader restarts "
        "its pipeline every epoch, which a real epoch of tens of batches amortises",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="loader worker processes for (c) and (d) (default: the preset's data.num_workers)",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth-kitti"
        overrides: dict = {"data": {"root": str(root)}, "device": str(device)}
        if args.size:
            overrides["data"]["image_size"] = [int(v) for v in args.size.lower().split("x")]
        if args.batch:
            overrides["batch_size"] = args.batch
        if args.workers is not None:
            overrides["data"]["num_workers"] = args.workers
        fast = load_config(
            args.preset,
            overrides={
                **overrides,
                "precision": args.precision,
                "compile": args.compile,
                "cuda_graph": args.cuda_graph,
            },
        )
        slow = load_config(
            args.preset, overrides={**overrides, "precision": "fp32", "channels_last": False, "cuda_graph": "off"}
        )
        precision = resolve_precision(fast.precision, device)
        n = fast.batch_size * 4
        height, width = fast.data.image_size
        generate_dataset(root, train=n, val=1, test=1, seed=0, size=(max(height, 125), max(width, 414)))
        dataset = open_split(fast, "train", train=True)
        for i in range(len(dataset)):  # type: ignore[arg-type]
            dataset[i]  # fill the decoded-sample cache, as after a run's first epoch
        torch.manual_seed(0)
        base = build_model(fast, cluster_anchors(dataset, fast.model.num_anchors, 0)).to(device)
        images = batch_to_device(next(iter(make_loader(dataset, fast, shuffle=False))), device)["image"]

        fp32_model = copy.deepcopy(base).train()
        fast_model = copy.deepcopy(base).train()
        if fast.channels_last:
            fast_model.to(memory_format=torch.channels_last)
        fast_forward = torch.compile(fast_model) if fast.compile else fast_model
        epoch = Repeated(dataset, args.epoch_batches * fast.batch_size)
        step_c, _ = full_step(slow, base, args.method, device, epoch)
        step_d, train_step = full_step(fast, base, args.method, device, epoch)
        cl_images = images.contiguous(memory_format=torch.channels_last) if fast.channels_last else images
        runs = {
            "a": model_only(fp32_model, images, "fp32", device),
            "b": model_only(fast_forward, cl_images, precision, device),  # type: ignore[arg-type]
            "c": step_c,
            "d": step_d,
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        for round_index in range(args.warmup + args.rounds):
            keys = list(runs)
            shift = round_index % len(keys)
            for key in keys[shift:] + keys[:shift]:
                _sync(device)
                started = time.perf_counter()
                for _ in range(args.steps):
                    runs[key]()
                _sync(device)
                if round_index >= args.warmup:
                    times[key].append((time.perf_counter() - started) / args.steps)

    rate = {k: fast.batch_size / statistics.median(v) for k, v in times.items()}
    labels = {
        "a": "(a) model only, fp32",
        "b": f"(b) model only, {precision}{' + channels-last' if fast.channels_last else ''}",
        "c": "(c) full step, fp32 (as before)",
        "d": f"(d) full step, {precision}{' + channels-last' if fast.channels_last else ''}"
        f"{' + CUDA graph' if train_step.graphs is not None else ''}",
    }
    threads = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    lines = [
        f"Throughput — preset {args.preset}, input {height}×{width}, batch {fast.batch_size}, width "
        f"{fast.model.width}, method {args.method}, device {device} ({threads}), compile {fast.compile}, "
        f"loader workers {fast.data.num_workers}; "
        f"median of {args.rounds} interleaved rounds × {args.steps} steps",
        "",
        "| measurement | img/s |",
        "|---|---:|",
        *(f"| {labels[k]} | {rate[k]:.1f} |" for k in runs),
        "",
        f"d/c (training speed-up) = {rate['d'] / rate['c']:.2f}   "
        f"d/b (network share of the step) = {rate['d'] / rate['b']:.2f}   "
        f"b/a = {rate['b'] / rate['a']:.2f}",
    ]
    text = "\n".join(lines)
    emit(text, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
