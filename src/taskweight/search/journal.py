"""The search journal: one typed record per finished evaluation, the best of them, a model's lineage.

``out_dir/journal.jsonl`` holds one JSON object a line, in candidate order. Paths in a
record (``checkpoint``, ``init_checkpoint``) are relative to the search folder when inside
it, so a journal stays valid when the folder moves.

"Best" has one meaning throughout the search (:func:`best_record`): the first record with the
highest finite fitness — the val geometric mean of mAP and mIoU; failed evaluations
(``fitness`` None) never win and ties keep the earlier evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from taskweight.durable import atomic_write_text
from taskweight.jsonio import dumps
from taskweight.metrics import improves
from taskweight.search.errors import SearchError
from taskweight.search.optimizers import sanitize_fitness


@dataclass
class JournalRecord:
    """One finished evaluation of the search.

    Attributes:
        index: position in the search (0-based; also the journal line).
        generation: optimiser generation that proposed it.
        optimizer: ``es``, ``random`` or ``cmaes``.
        genes: internal gene values; config: what they decode to (weights, frequencies, ...).
        parents: indices of the evaluations it was bred from.
        init_checkpoint: checkpoint the run started from (None: from scratch).
        start_epoch: epochs the model at ``init_checkpoint`` had received along its lineage.
        metrics: val metrics of the run's selected checkpoint; fitness: their geometric mean
            (None when the run failed).
        epochs: epochs the run trained; checkpoint: its val-selected model (None if it failed).
        info: the optimiser's notes (mutation step, tabu retries, ...).
        wall_time_s: wall time of the evaluation; train_time_s: of that, time in training steps.
        error: why the run failed, if it did.
        attempts: runs it took (more than 1: Ray re-ran it after its worker process died; the
            journal line carries the key only then).
    """

    index: int
    genes: dict[str, Any]
    config: dict[str, Any]
    generation: int = 0
    optimizer: str = "es"
    parents: list[int] = field(default_factory=list)
    init_checkpoint: str | None = None
    start_epoch: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    fitness: float | None = None
    epochs: int = 0
    checkpoint: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    train_time_s: float | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def fit(self) -> float:
        """Fitness to maximise: ``fitness``, or ``-inf`` for a failed (None / non-finite) evaluation."""
        return sanitize_fitness(self.fitness)

    @property
    def training_s(self) -> float:
        """Time in training steps where the evaluator reported it (``train_time_s``), else the wall time."""
        return self.wall_time_s if self.train_time_s is None else float(self.train_time_s)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["error"] is None:
            del data["error"]
        if data["attempts"] == 1:
            del data["attempts"]
        return json.loads(dumps(data))  # plain JSON types: exactly what a replay reads back

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "journal record") -> JournalRecord:
        missing = [k for k in ("index", "genes", "config") if k not in data]
        if missing:
            raise SearchError(f"{where}: lacks {missing}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def read_journal(path: str | Path) -> list[JournalRecord]:
    """Records of a journal; a torn last line (killed mid-write) is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise SearchError(f"{path}:{number}: corrupt journal line") from None
        records.append(JournalRecord.from_dict(data, f"{path}:{number}"))
    return records


def write_journal(path: Path, records: Sequence[JournalRecord]) -> None:
    """Rewrite ``path`` with ``records`` (one JSON object a line), atomically."""
    atomic_write_text(path, "".join(dumps(r.to_dict()) + "\n" for r in records))


def best_record(records: Sequence[JournalRecord]) -> JournalRecord | None:
    """The first record with the highest finite fitness (ties keep the earlier one), or None."""
    best: JournalRecord | None = None
    for record in records:
        if improves(record.fit, None if best is None else best.fit):
            best = record
    return best


def lineage(records: Sequence[JournalRecord], record: JournalRecord) -> list[JournalRecord]:
    """The chain of runs that trained ``record``'s model, oldest first, ``record`` last.

    Each run's ``init_checkpoint`` is the ``checkpoint`` of the run before it in the chain; the
    chain starts at a run from scratch (or from a checkpoint the search did not write).
    """
    by_checkpoint = {r.checkpoint: r for r in records if r.checkpoint is not None}
    chain = [record]
    while chain[-1].init_checkpoint is not None and chain[-1].init_checkpoint in by_checkpoint:
        parent = by_checkpoint[chain[-1].init_checkpoint]
        if parent in chain:  # pragma: no cover - a journal can only point backwards
            raise SearchError(f"journal record {record.index}: its lineage loops at record {parent.index}")
        chain.append(parent)
    return chain[::-1]


def lineage_epochs(records: Sequence[JournalRecord], record: JournalRecord | None) -> int:
    """Epochs trained along ``record``'s lineage (0 for None: a run from scratch)."""
    if record is None:
        return 0
    return sum(int(r.epochs) for r in lineage(records, record))
