"""Shared checks and output-folder handling of the dataset writers."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Job = TypeVar("Job")
Result = TypeVar("Result")

SPLITS = ("train", "val", "test")


MAX_SIDE = 4096
"""Largest rendered side: a scene is rendered in float32 layers, ~100 bytes a pixel at peak."""


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
