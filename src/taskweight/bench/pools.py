"""Where a benchmark's cells run when more than one runs at once: local processes or a Ray cluster.

Both pools take the same calls (submit a cell, wait for any to finish, read its record), so the
runner keeps one scheduling loop (control cells wait for their search cell) for ``--jobs N``
and for ``--executor ray``:

- :class:`ProcessCells`: ``jobs`` spawned processes on this machine, sharing its cores (each cell
  gets cores ÷ jobs threads) and its GPU.
- :class:`RayCells`: every ready cell becomes a Ray task; Ray places it where a CPU (or, on a
  cluster with GPUs, one GPU) is free, and re-runs it, up to :data:`RAY_RETRIES` times, when
  its worker process dies. The cell resumes from its run folder's checkpoint. On several
  nodes ``--out`` must be on a file system that every node sees.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from taskweight.errors import ConfigError
from taskweight.search.search import EXECUTORS, RAY_RETRIES  # one definition for searches and benchmarks

__all__ = ["EXECUTORS", "RAY_RETRIES", "ProcessCells", "RayCells", "make_pool"]


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
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("option '--executor ray' needs Ray: pip install 'taskweight[ray]'") from exc
        self.ray = ray
        self.owns = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
            except Exception as exc:  # connection errors come in many types
                raise ConfigError(
                    f"option '--address': cannot start or reach Ray at {address or 'a new local instance'}: {exc}"
                ) from exc
            self.owns = True
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        self.slots = gpus or int(resources.get("CPU", 1))
        self.threads = 1
        self._options: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False, **self._options)(fn)
        return self._remote[fn].remote(*args, self.threads)

    def wait_any(self, handles: Sequence[Any]) -> list[Any]:
        done, _ = self.ray.wait(list(handles), num_returns=1)
        return list(done)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def close(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()


def make_pool(executor: str, jobs: int, address: str | None) -> ProcessCells | RayCells:
    """The pool for ``--executor`` (``local``: ``jobs`` processes; ``ray``: the cluster at ``address``)."""
    if executor == "local":
        return ProcessCells(jobs)
    if executor == "ray":
        return RayCells(address)
    raise ConfigError(f"option '--executor' must be one of {', '.join(EXECUTORS)}, got {executor!r}")
