"""Where one training step's time goes: torch.profiler over a few steps of one strategy.

The step is the trainer's own (:class:`taskweight.engine.TrainStep`) on a synth-kitti batch that is
already on the device (as in ``step_overhead.py``), so the data path is left out. Printed:

- per step: wall time (also measured without the profiler), the device's busy time (the sum of
  its kernels' self time) and the number of kernel launches: a wall time far above the busy time
  means the step is launch-bound (the host cannot issue kernels as fast as the device runs them);
- the operators with the most self time on the device and on the host.

    python benchmarks/profile_step.py [--method equal] [--device cuda] [--size 384x1248] [--batch 16]
        [--steps 5] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from step_overhead import Runner, _setup  # sibling scripts: python puts benchmarks/ on the path
from table_output import emit
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--method", default="equal", help="a strategy (name@representation: on Z)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", default=None, help="network input HxW (default: the preset's)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (after 5 untimed ones)")
    parser.add_argument("--top", type=int, default=15, help="operators listed per table")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cfg, device, batch, model = _setup(
            args.preset, args.device, Path(tmp) / "synth", args.precision, args.size, args.batch
        )
        runner = Runner(args.method, cfg, model, device)
        for _ in range(5):
            runner.train_step(batch)
        _sync(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            runner.train_step(batch)
        _sync(device)
        plain = (time.perf_counter() - started) / args.steps * 1e3
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        started = time.perf_counter()
        with profile(activities=activities) as prof:
            for _ in range(args.steps):
                runner.train_step(batch)
            _sync(device)
        wall = (time.perf_counter() - started) / args.steps * 1e3

    events = prof.key_averages()
    on_device = device.type == "cuda"
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]  # kernels only: ops would count them twice
    busy = sum(e.self_device_time_total for e in kernels) / args.steps / 1e3 if on_device else float("nan")
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    height, width = cfg.data.image_size
    lines = [
        f"Profile of one step — method {args.method}, preset {args.preset} (batch {cfg.batch_size}, {height}×{width}), "
        f"device {device}, precision {runner.train_step.precision}; {args.steps} profiled steps",
        "",
        f"- wall time per step: {plain:.1f} ms ({wall:.1f} ms under the profiler)",
    ]
    if on_device:
        lines += [
            f"- device busy per step (sum of kernel self time): {busy:.1f} ms ({busy / plain:.0%} of the wall time)",
            f"- kernel launches per step: {launches / args.steps:.0f}",
        ]
    tables = [("device", "self_device_time_total")] if on_device else []
    for title, sort in [*tables, ("host", "self_cpu_time_total")]:
        lines += [
            "",
            f"Operators by self time on the {title}:",
            "",
            "```",
            events.table(sort_by=sort, row_limit=args.top, max_name_column_width=48),
            "```",
        ]
    text = "\n".join(lines)
    emit(text, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
