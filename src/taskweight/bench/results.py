"""The benchmark's result records and their files (``results.json``, ``results.csv``).

``results.json`` schema (version 1)::

    {
      "schema": 1,
      "records": [
        {
          "dataset": "synth-kitti",       # dataset name of the bench preset
          "method": "equal",              # weighting method (registry name, or meta / meta_async)
          "seed": 0,
          "status": "ok" | "failed",
          "error": null | "message",      # set when status is "failed"
          "tasks": ["det", "seg", "depth"],  # the tasks the cell trained; absent: the paper's det, seg
          "mAP": 0.61,                    # test split, IoU 0.5, mean over classes
          "mIoU": 0.82,                   # test split, void/road/sidewalk
          "AbsRel": 0.08, "RMSE": 3.1, "delta1": 0.93,  # test split depth metrics, only with depth
          "geometric_mean": 0.71,         # of the tasks' scores: sqrt(mAP · mIoU), or (mAP · mIoU · delta1)^(1/3)
          "mAP_coco": 0.33,               # test split, COCO mAP@[.5:.95]
          "val": {...},                   # val metrics of the selected checkpoint
          "epochs": 12,                   # total training epochs spent (a search: all evaluations)
          "train_time_s": 95.2,           # seconds in training steps (validation excluded; a search: all
                                          # evaluations; results before the protocol option: the search's wall time)
          "weights": {"det": 1.0, "seg": 70.0},   # final / found task weights
          "frequencies": {"det": 1, "seg": 7} | null,  # async frequencies (meta_async)
          "async_unit": "step" | "epoch" | null,        # what those frequencies count (meta_async)
          "weight_history": [[step, {"det": w, "seg": w}], ...],  # ≤ 200 samples, for plots
          "run_dir": "cells/synth-kitti/equal/seed0",
          "protocol": "matched" | "paper",  # the bench protocol the cell ran under
          "checkpoint": "cells/synth-kitti/equal/seed0/run/best.pt",  # the checkpoint scored on test
          "lineage": [0, 3, 7] | null,      # search: the evaluations that trained the best model, oldest first;
                                            # control: those of the search cell it matches
          "lineage_epochs": 16 | null       # the epochs along that lineage (a control trains this many)
        }, ...
      ]
    }
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from taskweight.classes import DEFAULT_TASKS, DEPTH_METRICS, check_tasks
from taskweight.durable import atomic_text_writer
from taskweight.errors import DataFormatError
from taskweight.jsonio import write_json

SCHEMA_VERSION = 1
CSV_COLUMNS = (
    "dataset",
    "method",
    "seed",
    "status",
    "mAP",
    "mIoU",
    "geometric_mean",
    "mAP_coco",
    "epochs",
    "train_time_s",
    "weights",
    "frequencies",
    "error",
    "protocol",
    "lineage_epochs",
)
"""Columns of ``results.csv``; a results file with depth (or tasks other than the paper's) adds
:data:`TASK_CSV_COLUMNS`."""
TASK_CSV_COLUMNS = ("tasks", *DEPTH_METRICS)


@dataclass
class CellRecord:
    """One (dataset, method, seed) cell of the benchmark."""

    dataset: str
    method: str
    seed: int
    status: str = "ok"
    error: str | None = None
    tasks: list[str] | None = None  # the tasks trained; None: the paper's two (DEFAULT_TASKS)
    mAP: float | None = None
    mIoU: float | None = None
    geometric_mean: float | None = None
    mAP_coco: float | None = None
    AbsRel: float | None = None  # depth metrics (test split), when the cell trained depth
    RMSE: float | None = None
    delta1: float | None = None
    val: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    train_time_s: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    frequencies: dict[str, int] | None = None
    weight_history: list[Any] = field(default_factory=list)
    run_dir: str = ""
    protocol: str = "matched"
    checkpoint: str = ""
    lineage: list[int] | None = None
    lineage_epochs: int | None = None
    async_unit: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.dataset, self.method, self.seed)

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks the cell trained: ``tasks``, or for a record without them the paper's two
        (and depth when it has depth metrics)."""
        if self.tasks:
            return check_tasks(self.tasks)
        return check_tasks([*DEFAULT_TASKS, *(["depth"] if self.delta1 is not None else [])])

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data; the depth metrics only when the cell has them and the tasks only
        when they are not the paper's two (two-task results files stay as they were)."""
        data = asdict(self)
        for key in DEPTH_METRICS:
            if data[key] is None:
                del data[key]
        if data["tasks"] is None or tuple(data["tasks"]) == DEFAULT_TASKS:
            del data["tasks"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | None = None) -> CellRecord:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"dataset", "method", "seed"} - set(data)
        if missing:
            raise DataFormatError(source or Path("<record>"), f"result record lacks {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def save_results(out_dir: Path, records: list[CellRecord]) -> None:
    """Write ``results.json`` and ``results.csv`` (records sorted by dataset, method, seed)."""
    records = sorted(records, key=lambda r: (r.dataset, r.method, r.seed))
    write_json(out_dir / "results.json", {"schema": SCHEMA_VERSION, "records": [r.to_dict() for r in records]})
    other_tasks = any(r.task_names != DEFAULT_TASKS for r in records)
    columns = (*CSV_COLUMNS, *TASK_CSV_COLUMNS) if other_tasks else CSV_COLUMNS
    with atomic_text_writer(out_dir / "results.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in records:
            row = {**r.to_dict(), "tasks": ",".join(r.task_names)}
            writer.writerow(
                [
                    json.dumps(row[c], sort_keys=True)
                    if isinstance(row.get(c), dict)
                    else ("" if row.get(c) is None else row[c])
                    for c in columns
                ]
            )


def merge_results(paths: Sequence[Path]) -> list[CellRecord]:
    """The records of several ``results.json`` files (or folders) as one table.

    A cell (dataset, method, seed) found in two files must be the same record in both (e.g.
    a baseline cell copied into two bench folders); two different records of one cell are an
    error naming both files.
    """
    merged: dict[tuple[str, str, int], tuple[Path, CellRecord]] = {}
    for path in paths:
        for record in load_results(path):
            seen = merged.get(record.key)
            if seen is None:
                merged[record.key] = (path, record)
            elif seen[1].to_dict() != record.to_dict():
                raise DataFormatError(
                    path,
                    f"cell {'/'.join(map(str, record.key))} is also in {seen[0]} with other numbers; "
                    "leave one of the two out",
                )
    return [record for _, record in merged.values()]


def load_results(path: Path) -> list[CellRecord]:
    """Read ``results.json`` (or a folder holding it); errors name the file."""
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise DataFormatError(path, "results file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from exc
    if not isinstance(data, dict) or "records" not in data:
        raise DataFormatError(path, "expected an object with a 'records' list")
    if data.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise DataFormatError(path, f"schema {data.get('schema')} is not supported (expected {SCHEMA_VERSION})")
    return [CellRecord.from_dict(r, path) for r in data["records"]]
