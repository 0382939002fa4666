"""What a dataset reports about its bad samples.

A loader indexes every sample of a split and collects its problems, each a
:class:`~taskweight.errors.DataFormatError` naming the file and, where there is one, the line.
With ``on_error="skip"`` a sample with problems is dropped and recorded as a
:class:`SkippedSample` (split, id, file, line, problem); :func:`skipped_report` gathers them of
several datasets (the trainer's ``metrics.json``).  A split left without a usable sample raises
:class:`EmptySplitError`, which still carries what was found (``data check`` counts it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskweight.errors import DataFormatError


@dataclass(frozen=True)
class SkippedSample:
    """A sample that ``on_error="skip"`` dropped: its split and id (sample name), the file and
    line (None when not applicable) of its first problem, and what is wrong."""

    split: str
    id: str
    file: str
    line: int | None
    problem: str

    @classmethod
    def of(cls, split: str, name: str, error: DataFormatError) -> SkippedSample:
        return cls(split=split, id=name, file=str(error.path), line=error.line, problem=error.reason)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "id": self.id, "file": self.file, "line": self.line, "problem": self.problem}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.problem}"


def _skipped_dict(item: Any, split: str) -> dict[str, Any]:
    """One entry of a dataset's ``skipped`` list as a dict (also (name, message) pairs of
    datasets of other registered formats)."""
    if isinstance(item, SkippedSample):
        return item.to_dict()
    if isinstance(item, dict):
        return {
            "split": item.get("split", split),
            "id": item.get("id"),
            "file": item.get("file"),
            "line": item.get("line"),
            "problem": item.get("problem"),
        }
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"split": split, "id": str(item[0]), "file": None, "line": None, "problem": str(item[1])}
    return {"split": split, "id": None, "file": None, "line": None, "problem": str(item)}


def skipped_report(datasets: Iterable[Any]) -> dict[str, Any]:
    """``{"count": N, "samples": [{"split", "id", "file", "line", "problem"}, ...]}`` of the
    samples that ``on_error="skip"`` dropped from ``datasets`` (all splits together, in order;
    a dataset given twice, or two datasets of one split, list a sample once)."""
    samples: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for ds in datasets:
        split = str(getattr(ds, "split", ""))
        for item in getattr(ds, "skipped", None) or []:
            entry = _skipped_dict(item, split)
            key = (entry["split"], entry["id"], entry["file"], entry["line"], entry["problem"])
            if key not in seen:
                seen.add(key)
                samples.append(entry)
    return {"count": len(samples), "samples": samples}


class EmptySplitError(DataFormatError):
    """A split left without a usable sample; ``skipped``, ``problems`` and ``unmapped`` are
    those of the dataset that could not be opened (so ``data check`` still counts them)."""

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        skipped: list[SkippedSample],
        problems: list[DataFormatError],
        unmapped: dict[str, dict[int | str, int]],
    ) -> None:
        super().__init__(path, message)
        self.skipped = skipped
        self.problems = problems
        self.unmapped = unmapped
