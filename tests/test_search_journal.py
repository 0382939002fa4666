"""Journal records, the best record, lineages, and the epoch-counted async clock of the search."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from taskweight import weighting
from taskweight.search import (
    Candidate,
    EvalResult,
    JournalRecord,
    SearchError,
    ToyEvaluator,
    best_record,
    lineage,
    lineage_epochs,
    read_journal,
    run_search,
    task_weight_space,
    training_config,
)


def _rec(index: int, fitness: float | None, init: str | None, epochs: int = 2) -> JournalRecord:
    return JournalRecord(
        index=index,
        genes={"g": index},
        config={},
        fitness=fitness,
        epochs=epochs,
        init_checkpoint=init,
        checkpoint=None if fitness is None else f"evals/{index:04d}/best.pt",
    )


# evaluation:  0 (scratch) ← 1 ← 3 ← 5;  2 ← 1;  4 failed (from 3)
RECORDS = [
    _rec(0, 0.30, None),
    _rec(1, 0.50, "evals/0000/best.pt"),
    _rec(2, 0.40, "evals/0001/best.pt", epochs=3),
    _rec(3, 0.60, "evals/0001/best.pt"),
    _rec(4, None, "evals/0003/best.pt"),
    _rec(5, 0.60, "evals/0003/best.pt"),
]


def test_best_record_is_the_first_highest_finite_fitness() -> None:
    assert best_record(RECORDS).index == 3  # 5 ties with 3: the earlier one wins
    assert best_record(RECORDS[:3]).index == 1
    assert best_record([_rec(0, None, None)]) is None
    assert best_record([]) is None
    nan = JournalRecord(index=0, genes={}, config={}, fitness=float("nan"))
    assert best_record([nan, _rec(1, 0.1, None)]).index == 1


def test_lineage_follows_the_init_checkpoints_back_to_scratch() -> None:
    assert [r.index for r in lineage(RECORDS, RECORDS[5])] == [0, 1, 3, 5]
    assert [r.index for r in lineage(RECORDS, RECORDS[2])] == [0, 1, 2]
    assert [r.index for r in lineage(RECORDS, RECORDS[0])] == [0]
    assert lineage_epochs(RECORDS, RECORDS[5]) == 8
    assert lineage_epochs(RECORDS, RECORDS[2]) == 7  # 2 + 2 + 3
    assert lineage_epochs(RECORDS, None) == 0
    # a chain that starts from a checkpoint the search did not write stops there
    outside = _rec(0, 0.3, "/pretrained.pt")
    assert [r.index for r in lineage([outside], outside)] == [0]


def test_journal_records_round_trip_and_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in RECORDS))
    assert read_journal(path) == RECORDS
    assert "error" not in RECORDS[0].to_dict()
    # time in training: what the evaluator reported, else the evaluation's wall time (older journals, toy runs)
    assert JournalRecord(index=0, genes={}, config={}, wall_time_s=5.0, train_time_s=2.0).training_s == 2.0
    assert JournalRecord(index=0, genes={}, config={}, wall_time_s=5.0).training_s == 5.0
    path.write_text('{"index": 0, "config": {}}\n')
    with pytest.raises(SearchError, match=r"journal.jsonl:1: lacks \['genes'\]"):
        read_journal(path)


def test_search_records_the_start_epoch_of_every_evaluation(tmp_path: Path) -> None:
    run_search(
        ToyEvaluator(epochs=3),
        task_weight_space(async_frequencies=True),
        budget=9,
        out_dir=tmp_path / "s",
        seed=1,
        progress=False,
        report=False,
        transfer="best",
    )
    records = read_journal(tmp_path / "s" / "journal.jsonl")
    assert records[0].start_epoch == 0 and records[0].init_checkpoint is None
    for i, r in enumerate(records[1:], 1):
        start = best_record(records[:i])
        assert r.init_checkpoint == start.checkpoint
        assert r.start_epoch == 3 * len(lineage(records, start)), i


# ------------------------------------------------------------ the async clock
def _seg_weights_per_epoch(strategy: weighting.WeightingStrategy, epochs: int) -> list[float]:
    p = torch.ones(1, requires_grad=True)
    seen = []
    for _ in range(epochs):
        seen.append(strategy.backward({"det": p.sum(), "seg": p.sum()})["seg"])
        strategy.on_step_end()
        strategy.on_epoch_end()
    return seen


def test_async_offset_starts_the_clock_later() -> None:
    s = weighting.get("async", frequencies={"det": 1, "seg": 3}, unit="epoch", offset=4)
    # t = 4, 5, 6, 7, 8, 9: seg is due at 6 and 9 only
    assert _seg_weights_per_epoch(s, 6) == [0, 0, 0.5, 0, 0, 0.5]
    assert _seg_weights_per_epoch(weighting.get("async", frequencies={"det": 1, "seg": 3}, unit="epoch"), 4) == [
        0.5,
        0,
        0,
        0.5,
    ]
    with pytest.raises(ValueError, match="option 'offset'"):
        weighting.get("async", offset=-1)


def test_training_config_counts_async_periods_in_lineage_epochs() -> None:
    from taskweight.config import TrainConfig

    cfg = {"weights": {"det": 0.2, "seg": 0.8}, "frequencies": {"det": 1, "seg": 7}}
    by_epoch = training_config(TrainConfig(), cfg, async_frequencies=True, epochs=2, async_unit="epoch", start_epoch=6)
    assert by_epoch.method.options == {
        "weights": {"det": 0.2, "seg": 0.8},
        "frequencies": {"det": 1, "seg": 7},
        "unit": "epoch",
        "offset": 6,
    }
    by_step = training_config(TrainConfig(), cfg, async_frequencies=True, epochs=2, start_epoch=6)
    assert "unit" not in by_step.method.options and "offset" not in by_step.method.options
    static = training_config(TrainConfig(), cfg, async_frequencies=False, epochs=2, async_unit="epoch")
    assert static.method.name == "static" and set(static.method.options) == {"weights"}
    with pytest.raises(ValueError, match="async_unit"):
        training_config(TrainConfig(), cfg, async_frequencies=True, epochs=2, async_unit="hour")


@dataclass
class _Described(ToyEvaluator):
    unit: str = "step"

    def describe(self) -> dict:
        return {"type": "toy", "async_unit": self.unit}


def test_resume_refuses_another_evaluator(tmp_path: Path) -> None:
    space = task_weight_space(async_frequencies=True)
    run_search(_Described(), space, budget=3, out_dir=tmp_path, progress=False, report=False)
    assert json.loads((tmp_path / "search_meta.json").read_text())["evaluator"] == {"type": "toy", "async_unit": "step"}
    with pytest.raises(SearchError, match="'evaluator' differs"):
        run_search(
            _Described(unit="epoch"), space, budget=4, out_dir=tmp_path, progress=False, report=False, resume=True
        )
    run_search(_Described(), space, budget=4, out_dir=tmp_path, progress=False, report=False, resume=True)
    assert len(read_journal(tmp_path / "journal.jsonl")) == 4


def test_trainer_evaluator_passes_the_start_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from taskweight.config import TrainConfig
    from taskweight.search import TrainerEvaluator

    seen = {}

    class Fake:
        def __init__(self, cfg, run_dir, *, init_from=None, show_progress=True):
            seen["options"], seen["init_from"], self.run_dir = cfg.method.options, init_from, Path(run_dir)

        def fit(self, *, resume=False):
            self.run_dir.mkdir(parents=True)
            (self.run_dir / "best.pt").write_text("model")
            m = {"mAP": 0.5, "mIoU": 0.5, "geometric_mean": 0.5}
            return types.SimpleNamespace(metrics={"best": m, "best_epoch": 1, "epochs": 2, "train_time_s": 7.5})

    module = types.ModuleType("taskweight.trainer")
    module.Trainer = Fake  # type: ignore[attr-defined]  # test double patched into the module
    monkeypatch.setitem(sys.modules, "taskweight.trainer", module)
    start = tmp_path / "start.pt"
    cand = Candidate(
        3,
        {"weights": {"det": 0.5, "seg": 0.5}, "frequencies": {"det": 2, "seg": 1}},
        {},
        init_checkpoint=start,
        run_dir=tmp_path / "e",
        start_epoch=10,
    )
    result = TrainerEvaluator(TrainConfig(), async_frequencies=True, epochs_per_eval=2, async_unit="epoch")(cand)
    assert seen["options"]["offset"] == 10 and seen["options"]["unit"] == "epoch" and seen["init_from"] == start
    assert isinstance(result, EvalResult) and result.train_time_s == 7.5 and result.epochs == 2
