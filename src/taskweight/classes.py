"""Class conventions shared by every loader, the model and the metrics.

Detection classes (paper §V-B: cars, pedestrians, cyclists) and the three segmentation
classes the paper keeps (§V-B: "road, sidewalk and merged the other classes into void").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

TASKS: Final[tuple[str, ...]] = ("det", "seg", "depth")
"""The known tasks, in their canonical order: names used as keys of loss and weight dicts
everywhere (paper's w_det, w_seg; depth is issue 15's third task). This is the one place
task names are listed; everything else follows a run's configured ``tasks`` (a non-empty
subset of these)."""

PAPER_TASKS: Final[tuple[str, ...]] = ("det", "seg")
"""The paper's two tasks: the ones ``predict``, ``compare`` and ``export`` need (they also draw and
write depth when a run has it)."""

DEFAULT_TASKS: Final[tuple[str, ...]] = PAPER_TASKS
"""The tasks a configuration trains when it names none (the paper's two)."""

TASK_SCORES: Final[dict[str, str]] = {"det": "mAP", "seg": "mIoU", "depth": "delta1"}
"""The metric of each task that enters the geometric mean (paper Table II)."""

DEPTH_METRICS: Final[tuple[str, ...]] = ("AbsRel", "RMSE", "delta1")
"""The depth metrics a run with depth reports (:mod:`taskweight.metrics`): AbsRel, RMSE (metres), δ<1.25."""


TABLE_TASK_ORDER: Final[tuple[str, ...]] = ("seg", "det", "depth")
"""The order of the paper's tables (Table I: w_s before w_d); tasks not listed follow."""

TASK_SHORT: Final[dict[str, str]] = {"seg": "s", "det": "d"}
"""Paper notation of a task in table labels: w_s / w_d, f_s / f_d (others: the task name)."""


def table_order(tasks: Iterable[str]) -> list[str]:
    """``tasks`` in the paper's table order (:data:`TABLE_TASK_ORDER`), the others after them as given."""
    names = list(dict.fromkeys(tasks))
    ordered = [t for t in TABLE_TASK_ORDER if t in names]
    return ordered + [t for t in names if t not in ordered]


def check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """``tasks`` validated (non-empty, known, no repeats) and put in the canonical order of :data:`TASKS`."""
    names = list(tasks)
    if not names:
        raise ValueError("tasks must name at least one task")
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known tasks are {list(TASKS)}")
    repeated = sorted({t for t in names if names.count(t) > 1})
    if repeated:
        raise ValueError(f"task(s) {repeated} named more than once")
    return tuple(t for t in TASKS if t in names)


def parse_tasks(values: Iterable[str], option: str = "--tasks") -> tuple[str, ...]:
    """Task names given on a command line as comma lists and/or repeated values (``det,seg`` ``depth``),
    validated by :func:`check_tasks`; a ValueError names ``option`` and lists the known tasks."""
    names = [name for item in values for name in item.replace(",", " ").split()]
    try:
        return check_tasks(names)
    except ValueError as exc:
        raise ValueError(f"option '{option}': {exc}") from None


DET_CLASSES: Final[tuple[str, ...]] = ("car", "pedestrian", "cyclist")
CAR: Final[int] = 0
PEDESTRIAN: Final[int] = 1
CYCLIST: Final[int] = 2

SEG_CLASSES: Final[tuple[str, ...]] = ("void", "road", "sidewalk")
VOID: Final[int] = 0
ROAD: Final[int] = 1
SIDEWALK: Final[int] = 2
IGNORE_INDEX: Final[int] = 255
"""Segmentation pixels with this value carry no label and are excluded from loss and mIoU."""

NUM_DET_CLASSES: Final[int] = len(DET_CLASSES)
NUM_SEG_CLASSES: Final[int] = len(SEG_CLASSES)
