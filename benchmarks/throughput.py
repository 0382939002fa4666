"""Training throughput of the quick preset: images/s and peak memory of a full training step.

A full step = forward, both task losses, the weighting strategy's backward, optimiser step,
on batches read from synth-kitti through the KITTI loader. Reports the median over timed
steps after warm-up, and the data-loading share measured in the same run.

    python benchmarks/throughput.py [--preset quick] [--steps 20] [--method equal]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from taskweight import weighting
from taskweight.config import load_config
from taskweight.data import collate_batch, open_dataset
from taskweight.evaluate import batch_to_device
from taskweight.synth import generate_dataset
from taskweight.trainer import build_model, build_optimizer, cluster_anchors


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--method", default="equal")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth-kitti"
        cfg = load_config(args.preset, overrides={"data": {"root": str(root)}, "device": args.device})
        n = cfg.batch_size * (args.steps + args.warmup)
        generate_dataset(root, train=n, val=1, test=1, seed=0)
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                              ("cpu" if args.device == "auto" else args.device))
        dataset = open_dataset("kitti", root, "train", image_size=tuple(cfg.data.image_size), augment=True, cache=False)
        torch.manual_seed(0)
        model = build_model(cfg, cluster_anchors(dataset, cfg.model.num_anchors, 0)).to(device)
        strategy = weighting.get(args.method, tasks=model.tasks).to(device)
        optimizer = build_optimizer(cfg, model, strategy)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, collate_fn=collate_batch)
        rss_before = peak_rss_mib()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step_times, load_times = [], []
        shared, last = model.shared_parameters(), model.last_shared_layer
        t_load = time.perf_counter()
        for i, batch in enumerate(loader):
            loaded = time.perf_counter()
            batch = batch_to_device(batch, device)
            losses = model.compute_losses(model(batch["image"]), batch)
            optimizer.zero_grad(set_to_none=True)
            strategy.backward(losses, shared, last)
            optimizer.step()
            strategy.on_step_end()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            done = time.perf_counter()
            if i >= args.warmup:
                step_times.append(done - loaded)
                load_times.append(loaded - t_load)
            t_load = time.perf_counter()
    step = statistics.median(step_times)
    load = statistics.median(load_times)
    print(f"preset {args.preset}: batch {cfg.batch_size}, input {cfg.data.image_size[0]}x{cfg.data.image_size[1]}, "
          f"width {cfg.model.width}, method {args.method}, device {device}, torch threads {torch.get_num_threads()}")
    print(f"training step (median of {len(step_times)}): {step * 1000:.1f} ms -> {cfg.batch_size / step:.1f} images/s")
    print(f"with data loading ({load * 1000:.1f} ms per batch): {cfg.batch_size / (step + load):.1f} images/s "
          f"(loading = {load / (step + load):.1%} of a step)")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    print(f"peak process RSS: {peak_rss_mib():.0f} MiB (before training steps: {rss_before:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
