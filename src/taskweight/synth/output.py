"""What the dataset writers share: the validated request, checks, the output folder, the
parallel jobs, the per-split counts, split lists, the ``synth.json`` marker and the summary."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Job = TypeVar("Job")
Result = TypeVar("Result")

SPLITS = ("train", "val", "test")


MAX_SIDE = 4096
"""Largest rendered side: a scene is rendered in float32 layers, ~100 bytes a pixel at peak."""
KITTI_DEPTH_FORMAT = "uint16 PNG, metres x 256, 0 = no measurement (KITTI depth)"
"""``synth.json``'s description of depth maps in KITTI's format (synth-kitti, synth-woodscape)."""


@dataclass(frozen=True)
class Request:
    """One checked :func:`~taskweight.synth.generate_dataset` call, as a dataset writer receives it."""

    out: Path
    preset: str
    counts: dict[str, int]  # images per split
    seed: int
    size: tuple[int, int]  # rendered (H, W)
    depth: bool = False
    depth_pattern: str = "dense"
    single_label_fraction: float = 0.0
    workers: int | None = None
    progress: Callable[[int, int], None] | None = None
    started: float = field(default_factory=time.perf_counter, compare=False)

    @property
    def total(self) -> int:
        """Number of images over all splits."""
        return sum(self.counts.values())

    def params(self, format_version: int, **fields: Any) -> dict[str, Any]:
        """The ``synth.json`` document: the parameters every layout records, then ``fields``."""
        return {
            "generator": "taskweight.synth",
            "format_version": format_version,
            "preset": self.preset,
            "seed": self.seed,
            "size": list(self.size),
            "splits": self.counts,
            **fields,
        }

    def summary(self, objects: dict[str, int], per_split: dict[str, dict[str, int]], **extra: Any) -> dict[str, Any]:
        """What :func:`~taskweight.synth.generate_dataset` returns: the request, the object counts,
        ``extra`` and the rendering speed since the request was made."""
        elapsed = time.perf_counter() - self.started
        return {
            "preset": self.preset,
            "out": str(self.out),
            "size": list(self.size),
            "seed": self.seed,
            "splits": self.counts,
            "images": self.total,
            "objects": objects,
            "objects_per_split": per_split,
            **extra,
            "seconds": round(elapsed, 2),
            "scenes_per_second": round(self.total / max(elapsed, 1e-9), 1),
        }


def check_counts(
    train: Any, val: Any, test: Any, seed: Any, size: Any, default_size: tuple[int, int]
) -> tuple[dict[str, int], tuple[int, int]]:
    counts = {"train": train, "val": val, "test": test}
    for split, n in counts.items():
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{split} must be a non-negative integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if size is None:
        size = default_size
    if len(tuple(size)) != 2 or min(int(v) for v in size) < 16 or max(int(v) for v in size) > MAX_SIDE:
        raise ValueError(f"size must be (height, width) with both in [16, {MAX_SIDE}], got {size!r}")
    if sum(counts.values()) == 0:
        raise ValueError("nothing to generate: train + val + test is 0")
    return {k: int(v) for k, v in counts.items()}, (int(size[0]), int(size[1]))


def prepare_output(out: Path, own: set[str], subdirs: list[str]) -> None:
    """Create ``out`` (refusing a non-empty folder with foreign entries), its sub-folders,
    and remove the ``synth.json`` marker (written last: marks a complete dataset)."""
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in own | {"synth.json"})
        if foreign:
            raise ValueError(
                f"{out} is not empty and does not look like a generated dataset "
                f"(found {', '.join(foreign[:5])}); choose another --out"
            )
    for sub in subdirs:
        (out / sub).mkdir(parents=True, exist_ok=True)
    marker = out / "synth.json"
    if marker.exists():
        marker.unlink()


def run_jobs(
    job: Callable[[Job], Result],
    jobs: Sequence[Job],
    workers: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Result]:
    """``[job(j) for j in jobs]``, in order; in ``workers`` spawned processes when > 1.

    ``job`` must be a module-level function (it is pickled by name) and the ``__main__`` module
    importable; if the pool breaks anyway, the remaining jobs run in this process with a warning.
    ``progress(done, total)`` is called after every job.
    """
    workers = 1 if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: list[Result] = []

    def record(result: Result) -> None:
        results.append(result)
        if progress is not None:
            progress(len(results), len(jobs))

    if workers > 1 and len(jobs) > 1:
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                for result in pool.map(job, jobs[len(results) :], chunksize=8):
                    record(result)
        except BrokenProcessPool as exc:  # e.g. a __main__ that cannot be re-imported
            warnings.warn(f"parallel generation failed ({exc}); continuing in this process", stacklevel=3)
    for j in jobs[len(results) :]:
        record(job(j))
    return results


def tally(
    splits: Iterable[str], found: Iterable[Mapping[str, int]], keys: Iterable[str] = ()
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Totals and per-split sums of the counts ``found`` in each image (of the split in ``splits``):
    ``keys`` first, 0 where none was found, then any other key in the order met."""
    keys = tuple(keys)
    per_split = {split: dict.fromkeys(keys, 0) for split in SPLITS}
    for split, counts in zip(splits, found, strict=True):
        for key, n in counts.items():
            per_split[split][key] = per_split[split].get(key, 0) + n
    totals: dict[str, int] = {}
    for split in SPLITS:
        for key, n in per_split[split].items():
            totals[key] = totals.get(key, 0) + n
    return totals, per_split


def remove_files(out: Path, subdirs: Iterable[str], pattern: str = "*") -> None:
    """Delete the files matching ``pattern`` in ``out``'s ``subdirs``: an earlier generation's."""
    for sub in subdirs:
        for p in (out / sub).glob(pattern):
            p.unlink()


def write_split_lists(out: Path, names: Mapping[str, list[str]]) -> None:
    """``out/splits/{split}.txt``: the names of each split's images, one a line."""
    for split in SPLITS:
        (out / "splits" / f"{split}.txt").write_text("".join(n + "\n" for n in names[split]), encoding="ascii")


def write_marker(out: Path, params: dict[str, Any]) -> None:
    """Write ``out/synth.json`` (``params``), last: its presence marks a complete dataset
    (:func:`prepare_output` removes it first)."""
    (out / "synth.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
