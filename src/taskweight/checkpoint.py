"""Checkpoint files: atomic saves, one generation kept back, loads that name the bad file.

A run keeps ``last.pt`` (everything needed to resume) and, from its second epoch on,
``last.prev.pt`` (the epoch before). A save first writes the new state to a temporary
file, then moves the current ``last.pt`` to ``last.prev.pt`` and renames the new file into
place (:func:`taskweight.durable.atomic_write`), so at every instant at least one complete
checkpoint exists. Loading uses ``torch.load(weights_only=True)`` and turns every way a
file can be broken (empty, truncated, random bytes, not a checkpoint, missing keys) into a
:class:`CheckpointError` that names the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from taskweight.durable import atomic_write
from taskweight.errors import TaskweightError


class CheckpointError(TaskweightError):
    """A checkpoint file is missing, truncated, corrupt or not the kind expected."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")


def load_complaint(exc: Exception, *, limit: int = 300) -> str:
    """What torch said when a state did not load, in one line of at most ``limit`` characters: its
    headline and its first detail (for a ``load_state_dict``: the first key that is missing,
    unexpected or of another shape, with both shapes), or the exception's type when it said nothing."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return " ".join(lines[:2])[:limit]


def previous_of(path: str | Path) -> Path:
    """``last.pt`` → ``last.prev.pt``: the generation kept back by :func:`save_checkpoint`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(state: dict[str, Any], path: str | Path, *, keep_previous: bool = False) -> None:
    """Write ``state`` to ``path`` atomically; with ``keep_previous`` the old file becomes ``*.prev.pt``."""
    path = Path(path)

    def write(handle: Any) -> None:
        torch.save(state, handle)
        if keep_previous and path.is_file():
            handle.flush()
            os.replace(path, previous_of(path))

    atomic_write(path, write)


def load_checkpoint(path: str | Path, *, required: Iterable[str] = ("model",)) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; any defect is a :class:`CheckpointError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "the file is empty (0 bytes): a write was interrupted")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
        KeyError,
        IndexError,
        AttributeError,
        TypeError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"cannot be read as a PyTorch checkpoint ({size} bytes; {first[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a checkpoint dictionary")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(path, f"is not a taskweight checkpoint of this kind: missing {', '.join(missing)}")
    return state
