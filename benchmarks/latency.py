"""Deployment latency on this CPU: PyTorch eager fp32, onnxruntime fp32 and onnxruntime INT8.

For each preset, at its deployment resolution (the preset's ``data.image_size``), batch 1:
median and p90 latency (ms), images/s (1000 / median), and the model size in MB (PyTorch:
the saved state_dict; ONNX: the file). The three variants are timed interleaved, one call
each per round, so machine noise hits them alike. The ONNX models are exported and
quantised exactly as ``taskweight export`` does (:mod:`taskweight.export`).

Without a run the network has random weights (latency does not depend on them) and INT8 is
calibrated on procedural synth-kitti scenes at the preset's size; with ``--run PRESET=RUN``
the run's best checkpoint is used, INT8 is calibrated on its training images and each
variant's metrics on ``--split`` (default test) and their drop against PyTorch fp32 are
added to the table. A run replaces the preset it is given for (its own configuration and
size are used).

    python benchmarks/latency.py [--presets quick paper] [--run quick=runs/bench/.../equal]
        [--rounds 200] [--warmup 20] [--threads 2] [--calibration 64] [--split test]
        [--markdown FILE] [--json FILE]

Needs a quiet CPU for numbers worth reporting (nothing else running); ``--rounds 3
--warmup 1 --presets tiny`` checks that it runs.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from table_output import emit  # a sibling script: python puts benchmarks/ on the path

from taskweight.build import build_model
from taskweight.config import TrainConfig, load_config
from taskweight.data import network_input, open_dataset
from taskweight.export import (
    RawHeads,
    export_graph,
    onnx_forward,
    quantize_int8,
    score_forward,
    session,
    split_images,
    torch_forward,
    versions,
)
from taskweight.predict import LoadedRun, load_run
from taskweight.synth import generate_dataset

VARIANTS = ("pytorch_eager_fp32", "onnxruntime_fp32", "onnxruntime_int8")


def synthetic_images(config: TrainConfig, count: int, workdir: Path) -> torch.Tensor:
    """``count`` synth-kitti scenes rendered at the preset's input size, as the network sees them."""
    h, w = config.data.image_size
    root = workdir / "scenes"
    generate_dataset(root, preset="synth-kitti", train=count, val=0, test=0, seed=1, size=(h, w), workers=1)
    dataset: Any = open_dataset("kitti", root, "train", image_size=(h, w))
    return network_input(torch.stack([dataset[i]["image"] for i in range(min(count, len(dataset)))]))


def state_dict_mb(model: torch.nn.Module) -> float:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 2**20


def time_variants(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each variant, interleaved round by round."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def measure_preset(
    name: str, run_dir: Path | None, args: argparse.Namespace, workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of the table for one preset (one per variant) and what they were measured on."""
    run: LoadedRun | None = None
    if run_dir is not None:
        run = load_run(run_dir, device="cpu", precision="fp32")
        config, model = run.config, run.model
        calibration = split_images(run, run.config.data.train_split, args.calibration)
    else:
        config = load_config(name)
        model = build_model(config, None)
        calibration = synthetic_images(config, args.calibration, workdir)
    model = model.float().cpu().eval()
    h, w = config.data.image_size
    fp32 = workdir / f"{name}.onnx"
    int8 = workdir / f"{name}.int8.onnx"
    export_graph(RawHeads(model), calibration[:1], fp32)
    quantize_int8(fp32, int8, calibration)
    image = calibration[:1].contiguous()
    heads = RawHeads(model).eval()
    sessions = {
        "onnxruntime_fp32": session(fp32, threads=args.threads),
        "onnxruntime_int8": session(int8, threads=args.threads),
    }
    feed = {"image": image.numpy()}

    @torch.no_grad()
    def eager() -> Any:
        return heads(image)

    calls: dict[str, Callable[[], Any]] = {
        "pytorch_eager_fp32": eager,
        "onnxruntime_fp32": lambda: sessions["onnxruntime_fp32"].run(None, feed),
        "onnxruntime_int8": lambda: sessions["onnxruntime_int8"].run(None, feed),
    }
    times = time_variants(calls, args.rounds, args.warmup)
    sizes = {
        "pytorch_eager_fp32": state_dict_mb(model),
        "onnxruntime_fp32": fp32.stat().st_size / 2**20,
        "onnxruntime_int8": int8.stat().st_size / 2**20,
    }
    metrics: dict[str, dict[str, float]] = {}
    if run is not None:
        forwards = {
            "pytorch_eager_fp32": torch_forward(model),
            "onnxruntime_fp32": onnx_forward(fp32, threads=args.threads),
            "onnxruntime_int8": onnx_forward(int8, threads=args.threads),
        }
        metrics = {v: score_forward(run, f, args.split) for v, f in forwards.items()}
    rows = []
    for variant in VARIANTS:
        ms = times[variant]
        row: dict[str, Any] = {
            "preset": name,
            "size": f"{h}x{w}",
            "variant": variant,
            "median_ms": statistics.median(ms),
            "p90_ms": float(np.percentile(ms, 90)),
            "img_per_s": 1000.0 / statistics.median(ms),
            "model_mb": sizes[variant],
        }
        if metrics:
            base = metrics["pytorch_eager_fp32"]
            row["metrics"] = metrics[variant]
            row["drop"] = {k: base[k] - metrics[variant][k] for k in ("mAP", "mIoU", "geometric_mean")}
        rows.append(row)
    source = {"preset": name, "run": str(run_dir) if run_dir else None, "calibration_images": len(calibration)}
    return rows, source


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    with_metrics = any("drop" in r for r in rows)
    head = "| preset | input | variant | median ms | p90 ms | img/s | size MB |"
    rule = "|---|---|---|---:|---:|---:|---:|"
    if with_metrics:
        head += f" mAP ({args.split}) | mIoU | drop mAP | drop mIoU |"
        rule += "---:|---:|---:|---:|"
    lines = [head, rule]
    for r in rows:
        line = (
            f"| {r['preset']} | {r['size']} | {r['variant']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['img_per_s']:.1f} | {r['model_mb']:.2f} |"
        )
        if with_metrics:
            if "drop" in r:
                m, d = r["metrics"], r["drop"]
                line += f" {m['mAP']:.4f} | {m['mIoU']:.4f} | {d['mAP']:+.4f} | {d['mIoU']:+.4f} |"
            else:
                line += " – | – | – | – |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["quick", "paper"], help="configuration presets")
    parser.add_argument(
        "--run", action="append", default=[], metavar="PRESET=RUN", help="a trained run for a preset (repeatable)"
    )
    parser.add_argument("--rounds", type=int, default=200, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per variant first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of torch and onnxruntime")
    parser.add_argument("--calibration", type=int, default=64, help="images INT8 is calibrated on")
    parser.add_argument("--split", default="test", help="split the metrics are measured on (with --run)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this file")
    args = parser.parse_args(argv)
    runs: dict[str, Path] = {}
    for pair in args.run:
        preset, sep, folder = pair.partition("=")
        if not sep:
            parser.error(f"--run expects PRESET=RUN, got {pair!r}")
        runs[preset] = Path(folder)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    sources = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            print(f"{preset}: exporting, quantising, timing {args.rounds} rounds …", file=sys.stderr, flush=True)
            preset_rows, source = measure_preset(preset, runs.get(preset), args, Path(tmp))
            rows += preset_rows
            sources.append(source)
    text = markdown(rows, args)
    threads = args.threads or torch.get_num_threads()
    text += f"\n\nbatch 1, {threads} thread(s), {args.rounds} rounds after {args.warmup} warm-up calls; " + ", ".join(
        f"{k} {v}" for k, v in versions().items() if k in ("torch", "onnxruntime", "onnx")
    )
    emit(text, args.markdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"rows": rows, "sources": sources, "threads": threads, "versions": versions(), "args": vars(args)}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
