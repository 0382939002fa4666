"""Joining a Ray cluster: the one place the search and the benchmark connect, size their tasks and
set their retries.

A task takes one GPU where the cluster has GPUs, else one CPU. When a task's worker process dies
(a node lost, the out-of-memory killer), Ray runs it again, up to :data:`RAY_RETRIES` times; an
exception raised by the task itself is not retried (it is the task's result: a failed evaluation
or cell). On several nodes the output folder must be on a file system every node sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

EXECUTORS = ("local", "ray")
"""Where a search's evaluations or a benchmark's cells run: this machine, or a Ray cluster."""
RAY_RETRIES = 3


class RayCluster:
    """The Ray instance at ``address`` (None: the running one, else a new local instance, which
    :meth:`close` shuts down again). ``error``: the exception type for a missing Ray or a refused
    connection (the caller's, so its message names the caller's option)."""

    def __init__(self, address: str | None, error: Callable[[str], Exception]) -> None:
        try:
            import ray
        except ImportError as exc:
            raise error("the ray executor needs Ray: pip install 'taskweight[ray]'") from exc
        self.ray = ray
        self.owns = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
            except Exception as exc:  # connection errors come in many types
                raise error(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}") from exc
            self.owns = True
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 1))

    def task(self, fn: Callable[..., Any]) -> Any:
        """``fn`` as a Ray remote function holding one GPU (or one CPU), retried when its worker dies."""
        resources: dict[str, Any] = {"num_gpus": 1} if self.gpus else {"num_cpus": 1}
        return self.ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False, **resources)(fn)

    def close(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
