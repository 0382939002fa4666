"""Training throughput on 1 process against N processes (``taskweight train --nproc N``), in ONE run.

Both sides use the whole machine: the single process with ``--threads`` threads (default: every
core), each of the N ranks with threads/N. Runs alternate (1, N, 1, N, ...) so machine noise hits
both alike. img/s = training images of the epochs / the run's ``train_time_s`` (training steps only:
start-up, validation and testing excluded).

    python benchmarks/distributed.py [--preset quick] [--nproc 2] [--images 640] [--epochs 1]
        [--rounds 2] [--method equal] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from table_output import emit  # a sibling script: python puts benchmarks/ on the path

from taskweight.synth import generate_dataset


def _train(root: Path, out: Path, args: argparse.Namespace, nproc: int, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [
        sys.executable,
        "-m",
        "taskweight.cli",
        "train",
        "--preset",
        args.preset,
        "--data",
        str(root),
        "--epochs",
        str(args.epochs),
        "--method",
        args.method,
        "--out",
        str(out),
        "--no-progress",
    ]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    metrics = json.loads((out / "metrics.json").read_text())
    return args.images * args.epochs / float(metrics["train_time_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--images", type=int, default=640, help="training scenes (synth-kitti)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--method", default="equal")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    rates: dict[int, list[float]] = {1: [], args.nproc: []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth-kitti"
        generate_dataset(root, train=args.images, val=16, test=1, seed=0)
        for round_index in range(args.rounds):
            for nproc in (1, args.nproc):
                out = Path(tmp) / f"run-{nproc}-{round_index}"
                rates[nproc].append(_train(root, out, args, nproc, max(1, args.threads // nproc)))
    one, many = statistics.median(rates[1]), statistics.median(rates[args.nproc])
    lines = [
        f"Training throughput, 1 process × {args.threads} threads against {args.nproc} processes × "
        f"{max(1, args.threads // args.nproc)} threads — preset {args.preset}, method {args.method}, "
        f"{args.images} synth-kitti scenes × {args.epochs} epoch(s), median of {args.rounds} alternating rounds",
        "",
        "| processes | img/s (each round) | img/s (median) |",
        "|---:|---|---:|",
        f"| 1 | {', '.join(f'{r:.1f}' for r in rates[1])} | {one:.1f} |",
        f"| {args.nproc} | {', '.join(f'{r:.1f}' for r in rates[args.nproc])} | {many:.1f} |",
        "",
        f"{args.nproc} processes / 1 process = {many / one:.2f}",
    ]
    text = "\n".join(lines)
    emit(text, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
