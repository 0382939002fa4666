"""Time of one training step of every registered weighting strategy relative to ``equal``.

All strategies are timed in the same process, interleaved (round r runs one step of every
strategy, in an order rotated each round), each on its own copy of the same initial model
and the same synth-kitti batch at the chosen preset, so machine noise hits every strategy
alike. Reported: median step time, ratio to equal's median, and peak memory of a step
(GPU: peak allocated bytes; CPU: peak resident set while stepping, sampled every 2 ms in a
fresh subprocess running that strategy alone).

Every gradient aggregation that allows it is timed twice: on the shared parameters (its name) and
on the shared representation (``name@representation``, ``method.gradients: representation``).

    python benchmarks/step_overhead.py [--preset quick] [--rounds 15] [--methods equal gradnorm ...]
              [--size 384x1248] [--batch 16] [--device cuda] [--no-representation] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from table_output import emit  # a sibling script: python puts benchmarks/ on the path

from taskweight import weighting
from taskweight.build import build_model, build_optimizer, cluster_anchors, resolve_device
from taskweight.config import load_config
from taskweight.data import batch_to_device, collate_batch, open_dataset
from taskweight.engine import TrainStep
from taskweight.synth import generate_dataset

OPTIONS = {"handcrafted": {"iterations": 3}}  # its weights settle after 3 measured steps, inside the warm-up


REPRESENTATION = "@representation"


def split_spec(spec: str) -> tuple[str, str]:
    """``"mgda@representation"`` → (``"mgda"``, ``"representation"``); a plain name → (name, ``"parameters"``)."""
    return (
        (spec.removesuffix(REPRESENTATION), "representation") if spec.endswith(REPRESENTATION) else (spec, "parameters")
    )


def target(spec: str, device_type: str = "cpu") -> float | None:
    """The targets by family, T = 2. On the CPU (quick preset): loss weightings 1.02× equal, GradNorm
    1.05×, gradient aggregations on the shared parameters 1.35×, on the representation 1.10×. On a GPU:
    GradNorm 1.10×, gradient aggregations 1.30× (loss weightings as on the CPU). None for a strategy of
    neither family."""
    name, gradients = split_spec(spec)
    cls = weighting.strategy_class(name)
    gpu = device_type == "cuda"
    if gradients == "representation":
        return None if gpu else 1.10
    if name == "gradnorm":
        return 1.10 if gpu else 1.05
    if issubclass(cls, weighting.LossWeighting):
        return 1.02
    if issubclass(cls, weighting.GradientAggregation):
        return 1.30 if gpu else 1.35
    return None


def _setup(
    preset: str,
    device_name: str,
    root: Path,
    precision: str = "auto",
    size: str | None = None,
    batch: int | None = None,
    cuda_graph: str = "off",
):
    overrides: dict = {"data": {"root": str(root)}, "precision": precision, "cuda_graph": cuda_graph}
    if size:
        overrides["data"]["image_size"] = [int(v) for v in size.lower().split("x")]
    if batch:
        overrides["batch_size"] = batch
    cfg = load_config(preset, overrides=overrides)
    if not (root / "synth.json").is_file():
        height, width = cfg.data.image_size
        generate_dataset(root, train=cfg.batch_size, val=1, test=1, seed=0, size=(max(height, 125), max(width, 414)))
    device = resolve_device(device_name)
    dataset = open_dataset("kitti", root, "train", image_size=tuple(cfg.data.image_size))
    batch = batch_to_device(collate_batch([dataset[i] for i in range(cfg.batch_size)]), device)
    torch.manual_seed(0)
    model = build_model(cfg, cluster_anchors(dataset, cfg.model.num_anchors, 0)).to(device)
    return cfg, device, batch, model


class Runner:
    """One strategy with its own model copy, optimiser and training step (the trainer's own)."""

    def __init__(self, spec: str, cfg, base_model: torch.nn.Module, device: torch.device) -> None:
        self.name = spec
        name, gradients = split_spec(spec)
        self.model = copy.deepcopy(base_model).train()
        self.strategy = weighting.get(name, tasks=self.model.tasks, **OPTIONS.get(name, {})).to(device)
        self.optimizer = build_optimizer(cfg, self.model, self.strategy)
        self.train_step = TrainStep(
            self.model,
            self.strategy,
            self.optimizer,
            device=device,
            precision=cfg.precision,
            channels_last=cfg.channels_last,
            gradients=gradients,
            cuda_graph=cfg.cuda_graph,
        )
        self.device = device

    def step(self, batch: dict) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        self.train_step(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def memory_of(name: str, args: argparse.Namespace, root: Path) -> float:
    """Peak memory (MiB) of steps of ``name``: GPU peak allocated, or CPU peak-RSS growth in a fresh process."""
    cmd = [
        sys.executable,
        __file__,
        "--_memory-of",
        name,
        "--preset",
        args.preset,
        "--device",
        args.device,
        "--precision",
        args.precision,
        "--_root",
        str(root),
    ]
    if args.size:
        cmd += ["--size", args.size]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_mib"])


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * resource.getpagesize() / 2**20


def _memory_child(args: argparse.Namespace) -> None:
    """Peak memory while stepping: GPU peak allocated, or the resident set sampled every 2 ms."""
    import threading

    cfg, device, batch, model = _setup(
        args.preset, args.device, Path(args._root), args.precision, args.size, args.batch
    )
    runner = Runner(args._memory_of, cfg, model, device)
    runner.step(batch)  # allocate optimiser state etc. first
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    peak = [_current_rss_mib()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _current_rss_mib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(3):
        runner.step(batch)
    stop.set()
    sampler.join()
    value = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak[0]
    print(json.dumps({"peak_mib": value}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16 (as train's --precision)")
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument(
        "--cuda-graph",
        default="off",
        help="off (every step eager, the default: strategies compared alike) or auto (CUDA graphs "
        "for the strategies that allow them, marked in the table)",
    )
    parser.add_argument("--size", default=None, help="network input HxW (default: the preset's)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-strategy memory subprocesses")
    parser.add_argument(
        "--no-representation", action="store_true", help="time the gradient aggregations on the shared parameters only"
    )
    parser.add_argument("--_memory-of", dest="_memory_of", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_root", dest="_root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory_of:
        _memory_child(args)
        return 0

    methods = args.methods or weighting.available()
    if "equal" not in methods:
        methods = ["equal", *methods]
    if not args.no_representation:
        methods += [
            m + REPRESENTATION
            for m in methods
            if not m.endswith(REPRESENTATION)
            and issubclass(cls := weighting.strategy_class(m), weighting.GradientAggregation)
            and cls.representation_gradients
            and m + REPRESENTATION not in methods
        ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth-kitti"
        cfg, device, batch, model = _setup(
            args.preset, args.device, root, args.precision, args.size, args.batch, args.cuda_graph
        )
        runners = [Runner(m, cfg, model, device) for m in methods]
        for _ in range(args.warmup):
            for r in runners:
                r.step(batch)
        times: dict[str, list[float]] = {m: [] for m in methods}
        for round_index in range(args.rounds):
            shift = round_index % len(runners)
            for r in runners[shift:] + runners[:shift]:
                times[r.name].append(r.step(batch))
        memory = {} if args.no_memory else {m: memory_of(m, args, root) for m in methods}
    base = statistics.median(times["equal"])
    unit = "peak GPU MiB" if device.type == "cuda" else "peak RSS while stepping (MiB)"
    lines = [
        f"Step time relative to `equal` — preset {args.preset} (batch {cfg.batch_size}, "
        f"{cfg.data.image_size[0]}×{cfg.data.image_size[1]}, width {cfg.model.width}), device {device}, "
        f"precision {runners[0].train_step.precision}, {torch.get_num_threads()} threads, "
        f"median of {args.rounds} interleaved rounds",
        "",
        f"| method | step (ms) | × equal | target | {unit} |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in methods:
        med = statistics.median(times[m])
        goal = target(m, device.type)
        mark = "" if goal is None or med / base <= goal else " ✗"
        mem = f"{memory[m]:.0f}" if m in memory else "—"
        graphed = " (graph)" if next(r for r in runners if r.name == m).train_step.graphs is not None else ""
        lines.append(
            f"| {m}{graphed} | {med * 1000:.1f} | {med / base:.2f}{mark} | {f'≤ {goal:.2f}' if goal else '—'} | {mem} |"
        )
    text = "\n".join(lines)
    emit(text, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
