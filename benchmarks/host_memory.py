"""The training step on the CPU with and without keeping freed host memory (``keep_host_memory``).

Keeping freed memory (:func:`taskweight.hostmemory.keep_freed_memory`) is process-wide and cannot be
undone, so every measurement runs in a fresh interpreter. The rounds alternate between the two
settings, so drift in the machine hits both alike. Each process times the quick preset's full step
(as ``throughput.py``'s (d): loader, losses, strategy, optimiser, ``precision: auto``) over
``--steps`` steps after 5 untimed ones. The script prints the median img/s of each setting and their
ratio.

    python benchmarks/host_memory.py [--rounds 3] [--steps 25] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from table_output import emit  # a sibling script: python puts benchmarks/ on the path

WARMUP = 5


def measure(keep: bool, steps: int) -> tuple[float, str]:
    """(img/s of the full step, the precision it ran in), in this process."""
    from throughput import Repeated, full_step

    from taskweight.build import build_model, cluster_anchors, open_split
    from taskweight.config import load_config
    from taskweight.hostmemory import keep_freed_memory
    from taskweight.synth import generate_dataset

    if keep and keep_freed_memory() == 0:
        raise SystemExit("keeping freed memory needs Linux with glibc")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth-kitti"
        config = load_config("quick", overrides={"data": {"root": str(root)}, "device": "cpu"})
        height, width = config.data.image_size
        generate_dataset(root, train=4 * config.batch_size, val=1, test=1, seed=0, size=(height, width))
        dataset = open_split(config, "train", train=True)
        for i in range(len(dataset)):  # type: ignore[arg-type]
            dataset[i]  # fill the decoded-sample cache, as after a run's first epoch
        torch.manual_seed(0)
        base = build_model(config, cluster_anchors(dataset, config.model.num_anchors, 0))
        epoch = Repeated(dataset, 16 * config.batch_size)
        run, step = full_step(config, base, "equal", torch.device("cpu"), epoch)
        times = []
        for index in range(WARMUP + steps):
            started = time.perf_counter()
            run()
            if index >= WARMUP:
                times.append(time.perf_counter() - started)
    return config.batch_size / statistics.median(times), step.precision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, alternating")
    parser.add_argument("--steps", type=int, default=25, help="timed steps per process")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--_one", choices=("system", "keep"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._one is not None:
        rate, precision = measure(args._one == "keep", args.steps)
        print(f"{rate} {precision}")
        return 0
    rates: dict[str, list[float]] = {"system": [], "keep": []}
    precision = "?"
    for _ in range(args.rounds):
        for mode in rates:
            command = [sys.executable, __file__, "--_one", mode, "--steps", str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rate, precision = done.stdout.split()[-2:]
            rates[mode].append(float(rate))
    system, keep = (statistics.median(rates[m]) for m in ("system", "keep"))
    rows = "\n".join(
        f"| {label} | {', '.join(f'{r:.1f}' for r in rates[mode])} | {statistics.median(rates[mode]):.1f} |"
        for mode, label in (("system", "glibc defaults"), ("keep", "freed memory kept"))
    )
    text = (
        f"Full training step, preset quick, device cpu ({torch.get_num_threads()} threads), precision {precision}; "
        f"{args.rounds} processes per setting, alternating, median of {args.steps} steps each\n\n"
        "| host memory | img/s per process | median |\n|---|---|---:|\n"
        f"{rows}\n\nkept / defaults = {keep / system:.2f}"
    )
    emit(text, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
