"""Errors that name the offending input precisely (file, line, option)."""

from __future__ import annotations

from pathlib import Path


class TaskweightError(Exception):
    """Base class of every error this package raises on purpose."""


class DataFormatError(TaskweightError):
    """A data file is missing, malformed or inconsistent.

    The message always starts with ``path[:line]`` so a user can jump to the problem.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")


class ConfigError(TaskweightError, ValueError):
    """An invalid configuration option; the message names the option (and YAML line)."""


class TrainingError(TaskweightError):
    """Training cannot go on, e.g. a task loss became NaN or infinite."""


class RunFolderError(TaskweightError):
    """A run folder cannot be used as asked: results already there, or nothing to resume."""
