"""Where a benchmark's cells run when more than one runs at once: local processes or a Ray cluster.

Both pools take the same calls (submit a cell, wait for any to finish, read its record), so the
runner keeps one scheduling loop (control cells wait for their search cell) for ``--jobs N``
and for ``--executor ray``:

- :class:`ProcessCells`: ``jobs`` spawned processes on this machine, sharing its cores (each cell
  gets cores ÷ jobs threads) and its GPU.
- :class:`RayCells`: every ready cell becomes a Ray task (:mod:`taskweight.raycluster`: one CPU
  or one GPU, re-run when its worker process dies). A re-run cell resumes from its run folder's
  checkpoint. On several nodes ``--out`` must be on a file system that every node sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from taskweight.errors import ConfigError
from taskweight.raycluster import EXECUTORS, RayCluster

__all__ = ["EXECUTORS", "ProcessCells", "RayCells", "make_pool"]


class ProcessCells:
    """Cells in ``jobs`` spawned local processes."""

    def __init__(self, jobs: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.slots = jobs
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.submit(fn, *args, self.threads)

    def wait_any(self, handles: Sequence[Any]) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def close(self) -> None:
        self._pool.shutdown()


class RayCells:
    """Cells as Ray tasks on the cluster at ``address`` (None: a Ray instance started for this run)."""

    def __init__(self, address: str | None = None) -> None:
        self.cluster = RayCluster(address, lambda message: ConfigError(f"option '--executor ray': {message}"))
        self.slots = self.cluster.gpus or self.cluster.cpus
        self.threads = 1
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self.cluster.task(fn)
        return self._remote[fn].remote(*args, self.threads)

    def wait_any(self, handles: Sequence[Any]) -> list[Any]:
        done, _ = self.cluster.ray.wait(list(handles), num_returns=1)
        return list(done)

    def result(self, handle: Any) -> Any:
        return self.cluster.ray.get(handle)

    def close(self) -> None:
        self.cluster.close()


def make_pool(executor: str, jobs: int, address: str | None) -> ProcessCells | RayCells:
    """The pool for ``--executor`` (``local``: ``jobs`` processes; ``ray``: the cluster at ``address``)."""
    if executor == "local":
        return ProcessCells(jobs)
    if executor == "ray":
        return RayCells(address)
    raise ConfigError(f"option '--executor' must be one of {', '.join(EXECUTORS)}, got {executor!r}")
