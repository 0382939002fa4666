"""The search driver: journal, kill & resume, executors, weight transfer, outputs, CLI."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskweight.search import (
    Candidate,
    EvalResult,
    SearchError,
    ToyEvaluator,
    TrainerEvaluator,
    read_journal,
    run_search,
    task_weight_space,
    training_config,
)


def _journal(out: Path) -> list[dict[str, Any]]:
    records = [r.to_dict() for r in read_journal(out / "journal.jsonl")]
    for r in records:
        r.pop("wall_time_s")
    return records


class Killed(RuntimeError):
    pass


@dataclass
class KilledAfter(ToyEvaluator):
    """Stands in for a process killed after ``calls`` evaluations."""

    calls: int = 0

    def __call__(self, candidate: Candidate) -> EvalResult:
        if self.calls <= 0:
            raise Killed("killed")
        self.calls -= 1
        return super().__call__(candidate)


def _search(out: Path, evaluate: Any = None, **kw: Any) -> Any:
    kw.setdefault("budget", 14)
    kw.setdefault("seed", 3)
    return run_search(
        evaluate or ToyEvaluator(),
        task_weight_space(async_frequencies=True),
        out_dir=out,
        progress=False,
        report=False,
        **kw,
    )


def test_journal_and_weight_transfer(tmp_path: Path) -> None:
    result = _search(tmp_path / "s")
    records = _journal(tmp_path / "s")
    assert [r["index"] for r in records] == list(range(14))
    assert [r["generation"] for r in records] == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 2
    for r in records:
        assert set(r) >= {"genes", "config", "parents", "init_checkpoint", "metrics", "fitness", "epochs", "checkpoint"}
        assert r["checkpoint"] == f"evals/{r['index']:04d}/best.pt"
    assert all(r["init_checkpoint"] is None and r["parents"] == [] for r in records[:4])
    for gen in (1, 2, 3):
        before = [r for r in records if r["generation"] < gen]
        best = max(before, key=lambda r: r["fitness"])  # first of the best on ties
        for r in records:
            if r["generation"] == gen:
                assert r["init_checkpoint"] == best["checkpoint"]
                assert len(r["parents"]) == 2 and all(p < r["index"] for p in r["parents"])
                # the evaluator really started from it
                assert json.loads(Path(tmp_path / "s" / r["checkpoint"]).read_text())["init_from"].endswith(
                    best["checkpoint"]
                )
    best = max(records, key=lambda r: r["fitness"])
    assert result.best_index == best["index"] and result.best_metrics == best["metrics"]
    assert result.best_checkpoint == tmp_path / "s" / best["checkpoint"]
    assert result.total_epochs == 14 and len(result.evaluated_configs) == 14
    assert (tmp_path / "s" / "search.json").is_file()


def test_best_transfer_starts_each_run_from_the_best_finished_before_it(tmp_path: Path) -> None:
    _search(tmp_path / "s", transfer="best")
    records = _journal(tmp_path / "s")
    assert records[0]["init_checkpoint"] is None
    # unlike transfer="generation", the initial population already fine-tunes its own best
    assert records[1]["init_checkpoint"] == "evals/0000/best.pt"
    for i, r in enumerate(records[1:], 1):
        best = max(records[:i], key=lambda x: x["fitness"])  # first of the best on ties
        assert r["init_checkpoint"] == best["checkpoint"], i
        assert json.loads((tmp_path / "s" / r["checkpoint"]).read_text())["init_from"].endswith(best["checkpoint"])
    # the starts differ from the per-generation mode's, the candidates (toy: start-independent) do not
    _search(tmp_path / "g")
    per_generation = _journal(tmp_path / "g")
    assert [r["genes"] for r in per_generation] == [r["genes"] for r in records]
    assert [r["init_checkpoint"] for r in per_generation] != [r["init_checkpoint"] for r in records]
    assert json.loads((tmp_path / "s" / "search_meta.json").read_text())["transfer"] == "best"


@pytest.mark.parametrize("killed_after", [2, 9])
def test_best_transfer_resumes_exactly(tmp_path: Path, killed_after: int) -> None:
    _search(tmp_path / "full", transfer="best")
    with pytest.raises(Killed):
        _search(tmp_path / "resumed", KilledAfter(calls=killed_after), transfer="best")
    _search(tmp_path / "resumed", resume=True, transfer="best")
    assert _journal(tmp_path / "resumed") == _journal(tmp_path / "full")
    with pytest.raises(SearchError, match="transfer"):
        _search(tmp_path / "resumed", budget=16, resume=True, transfer="generation")


def test_transfer_option_errors(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="unknown transfer"):
        _search(tmp_path / "x", transfer="latest")
    with pytest.raises(SearchError, match="executor 'local'"):
        _search(tmp_path / "y", transfer="best", executor="ray")


def test_initial_population_can_start_from_a_checkpoint(tmp_path: Path) -> None:
    start = tmp_path / "pretrained.pt"
    start.write_text("{}")
    _search(tmp_path / "s", budget=5, init_checkpoint=start)
    records = _journal(tmp_path / "s")
    assert all(r["init_checkpoint"] == str(start) for r in records[:4])
    assert records[4]["init_checkpoint"].startswith("evals/")


@pytest.mark.parametrize("killed_after", [2, 4, 6, 11])
def test_kill_and_resume_gives_the_uninterrupted_journal(tmp_path: Path, killed_after: int) -> None:
    _search(tmp_path / "full")
    with pytest.raises(Killed):
        _search(tmp_path / "resumed", KilledAfter(calls=killed_after))
    assert len(_journal(tmp_path / "resumed")) == killed_after
    # the killed process left a half-written line behind
    with (tmp_path / "resumed" / "journal.jsonl").open("a") as f:
        f.write('{"index": 99, "gen')
    result = _search(tmp_path / "resumed", resume=True)
    assert _journal(tmp_path / "resumed") == _journal(tmp_path / "full")
    assert len(result.records) == 14
    # resuming a finished search re-evaluates nothing
    _search(tmp_path / "resumed", KilledAfter(calls=0), resume=True)


def test_resume_extends_the_budget_like_a_longer_run(tmp_path: Path) -> None:
    _search(tmp_path / "long", budget=18)
    _search(tmp_path / "short", budget=10)
    _search(tmp_path / "short", budget=18, resume=True)
    assert _journal(tmp_path / "short") == _journal(tmp_path / "long")


def test_resume_guards(tmp_path: Path) -> None:
    _search(tmp_path / "s", budget=5)
    with pytest.raises(SearchError, match="--resume"):
        _search(tmp_path / "s", budget=5)
    with pytest.raises(SearchError, match="seed"):
        _search(tmp_path / "s", budget=8, seed=4, resume=True)
    with pytest.raises(SearchError, match="optimizer"):
        _search(tmp_path / "s", budget=8, optimizer="random", resume=True)
    with pytest.raises(SearchError):
        _search(tmp_path / "x", budget=0)
    with pytest.raises(SearchError, match="executor"):
        _search(tmp_path / "x", executor="slurm")


def test_ray_executor_matches_local(tmp_path: Path) -> None:
    import ray  # CI installs ray: a missing ray must fail this test, not skip it

    _search(tmp_path / "local", budget=10)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        result = _search(tmp_path / "ray", budget=10, executor="ray")
        assert ray.is_initialized()  # a running instance is used, not shut down
    finally:
        ray.shutdown()
    assert _journal(tmp_path / "ray") == _journal(tmp_path / "local")
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()


@pytest.mark.parametrize("optimizer", ["random", "cmaes"])
def test_baseline_optimizers_run(tmp_path: Path, optimizer: str) -> None:
    result = _search(tmp_path / optimizer, budget=10, optimizer=optimizer)
    records = _journal(tmp_path / optimizer)
    assert len(records) == 10 and result.best_metrics["geometric_mean"] > 0
    for r in records:
        assert 1 <= r["config"]["frequencies"]["det"] <= 10
    with pytest.raises(Killed):
        _search(tmp_path / f"{optimizer}-2", KilledAfter(calls=5), budget=10, optimizer=optimizer)
    _search(tmp_path / f"{optimizer}-2", budget=10, optimizer=optimizer, resume=True)
    assert _journal(tmp_path / f"{optimizer}-2") == records


@pytest.mark.parametrize("async_frequencies", [False, True])
def test_outputs_are_written(tmp_path: Path, async_frequencies: bool) -> None:
    out = tmp_path / "s"
    result = run_search(
        ToyEvaluator(),
        task_weight_space(async_frequencies=async_frequencies),
        budget=9,
        out_dir=out,
        seed=0,
        progress=True,
        label="KITTI",
    )
    table = (out / "table1.md").read_text()
    best = result.best_config
    assert (
        "| KITTI | ws |" in table
        and f"{best['weights']['seg']:.4f}" in table
        and f"{best['weights']['det']:.4f}" in table
    )
    assert ("async backprop" in table) == async_frequencies
    if async_frequencies:
        assert f"| | async fs | {best['frequencies']['seg']} |" in table
    else:
        assert "| | async fs | - |" in table
    for name in ("fig3a_target.png", "fig3b_metrics.png", "fig4a_weights.png"):
        assert (out / name).stat().st_size > 1000
    assert (out / "fig4b_frequencies.png").is_file() == async_frequencies
    summary = json.loads((out / "search.json").read_text())
    assert summary["evaluations"] == 9 and summary["best"]["index"] == result.best_index
    assert summary["optimizer"] == "es" and summary["total_epochs"] == 9


def test_failed_evaluations_are_journaled_not_fatal(tmp_path: Path) -> None:
    @dataclass
    class Flaky(ToyEvaluator):
        def __call__(self, candidate: Candidate) -> EvalResult:
            if candidate.index % 3 == 1:
                return EvalResult(
                    {"mAP": float("nan"), "mIoU": float("nan"), "geometric_mean": float("nan")},
                    None,
                    0,
                    0.0,
                    error="loss became NaN",
                )
            return super().__call__(candidate)

    result = _search(tmp_path / "s", Flaky(), budget=9)
    records = _journal(tmp_path / "s")
    assert records[1]["fitness"] is None and records[1]["error"] == "loss became NaN"
    assert result.best_index % 3 != 1


# --------------------------------------------------------------- trainer wiring
def test_training_config_maps_methods() -> None:
    from taskweight.config import TrainConfig

    base = TrainConfig(epochs=12, seed=5)
    cfg = training_config(base, {"weights": {"det": 0.2, "seg": 0.8}}, async_frequencies=False, epochs=3)
    assert (cfg.method.name, cfg.method.options, cfg.epochs, cfg.seed) == (
        "static",
        {"weights": {"det": 0.2, "seg": 0.8}},
        3,
        5,
    )
    cfg = training_config(
        base,
        {"weights": {"det": 0.2, "seg": 0.8}, "frequencies": {"det": 1, "seg": 7}},
        async_frequencies=True,
        epochs=2,
    )
    assert cfg.method.name == "async"
    assert cfg.method.options == {"weights": {"det": 0.2, "seg": 0.8}, "frequencies": {"det": 1, "seg": 7}}
    assert cfg.optim.warmup_steps == 50
    fine = training_config(
        base, {"weights": {"det": 0.2, "seg": 0.8}}, async_frequencies=False, epochs=1, fine_tune=True
    )
    assert fine.optim.warmup_steps == 5 and fine.optim.lr == base.optim.lr
    short = base.model_copy(update={"optim": base.optim.model_copy(update={"warmup_steps": 3})})
    assert (
        training_config(
            short, {"weights": {"det": 1.0, "seg": 1.0}}, async_frequencies=False, epochs=1, fine_tune=True
        ).optim.warmup_steps
        == 3
    )
    assert base.method.name == "equal" and base.epochs == 12 and base.optim.warmup_steps == 50  # base untouched


class _FakeTrainer:
    """Records how the evaluator drives the trainer (interface of taskweight.trainer.Trainer)."""

    calls: list[dict[str, Any]] = []

    def __init__(self, cfg: Any, run_dir: Any, *, init_from: Any = None, show_progress: bool = True) -> None:
        self.cfg, self.run_dir, self.init_from = cfg, Path(run_dir), init_from
        _FakeTrainer.calls.append(
            {"cfg": cfg, "run_dir": self.run_dir, "init_from": init_from, "progress": show_progress}
        )

    def fit(self, *, resume: bool = False) -> Any:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "best.pt").write_text("model")
        w = self.cfg.method.options["weights"]
        m = {"mAP": 0.5 + 0.1 * w["det"], "mIoU": 0.5 + 0.1 * w["seg"], "mAP_coco": 0.1}
        m["geometric_mean"] = (m["mAP"] * m["mIoU"]) ** 0.5
        return types.SimpleNamespace(
            metrics={"best": m, "best_epoch": 1, "epochs": self.cfg.epochs, "train_time_s": 1.0}
        )


@pytest.fixture()
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> type[_FakeTrainer]:
    module = types.ModuleType("taskweight.trainer")
    module.Trainer = _FakeTrainer  # type: ignore[attr-defined]  # test double patched into the module
    monkeypatch.setitem(sys.modules, "taskweight.trainer", module)
    _FakeTrainer.calls = []
    return _FakeTrainer


def test_search_task_weights_drives_the_trainer(tmp_path: Path, fake_trainer: type[_FakeTrainer]) -> None:
    from taskweight.config import TrainConfig
    from taskweight.search import search_task_weights

    stale = tmp_path / "s" / "evals" / "0000"
    stale.mkdir(parents=True)
    (stale / "last.pt").write_text("from a killed run")
    result = search_task_weights(
        TrainConfig(seed=2), tmp_path / "s", async_frequencies=True, budget=6, epochs_per_eval=2, seed=0, progress=False
    )
    calls = fake_trainer.calls
    assert len(calls) == 6 and not (stale / "last.pt").exists()
    assert [c["run_dir"] for c in calls] == [tmp_path / "s" / "evals" / f"{i:04d}" for i in range(6)]
    assert all(c["cfg"].epochs == 2 and c["cfg"].method.name == "async" and not c["progress"] for c in calls)
    # local executor: transfer "best" — each run fine-tunes the best model finished before it
    assert calls[0]["init_from"] is None
    # from scratch keeps the warm-up, fine-tuning runs cap it
    assert calls[0]["cfg"].optim.warmup_steps == 50
    assert all(c["cfg"].optim.warmup_steps == 5 for c in calls[1:])
    for i in range(1, 6):
        best_before = max(result.records[:i], key=lambda r: r.fitness)
        assert calls[i]["init_from"] == tmp_path / "s" / best_before.checkpoint, i
    assert result.total_epochs == 12 and (tmp_path / "s" / "table1.md").is_file()
    assert (tmp_path / "s" / "base_config.yaml").is_file()


def test_trainer_evaluator_reports_training_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskweight.config import TrainConfig
    from taskweight.errors import TrainingError

    class Diverges(_FakeTrainer):
        def fit(self, *, resume: bool = False) -> Any:
            raise TrainingError("task loss det became NaN")

    module = types.ModuleType("taskweight.trainer")
    module.Trainer = Diverges  # type: ignore[attr-defined]  # test double patched into the module
    monkeypatch.setitem(sys.modules, "taskweight.trainer", module)
    cand = Candidate(0, {"weights": {"det": 0.5, "seg": 0.5}}, {}, run_dir=tmp_path / "e")
    result = TrainerEvaluator(TrainConfig())(cand)
    assert result.error and result.checkpoint is None


def _invoke(args: list[str]) -> Any:
    """``taskweight search ARGS`` through the real CLI, error boundary included."""
    from taskweight.cli import app

    return CliRunner().invoke(app, ["search", *args])


def test_cli_runs_and_reports(tmp_path: Path, fake_trainer: type[_FakeTrainer]) -> None:
    out = tmp_path / "s"
    args = [
        "--data",
        str(tmp_path),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--budget",
        "5",
        "--async",
        "--seed",
        "1",
        "--no-progress",
    ]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    assert "best configuration" in result.output and "f_det" in result.output
    assert fake_trainer.calls[0]["cfg"].data.root == tmp_path and fake_trainer.calls[0]["cfg"].seed == 1
    assert (out / "table1.md").is_file() and (out / "fig4b_frequencies.png").is_file()
    again = _invoke(args)  # existing journal without --resume
    assert again.exit_code == 2 and "--resume" in again.output
    assert _invoke([*args, "--resume", "--budget", "6"]).exit_code == 0
    assert len(read_journal(out / "journal.jsonl")) == 6
    bad = _invoke(["--out", str(tmp_path / "b"), "--optimizer", "bayes"])
    assert bad.exit_code == 2 and "--optimizer" in bad.output
