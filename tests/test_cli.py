"""The command line: every command is registered, explains itself, and rejects bad options clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskweight.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["synth", "train", "evaluate", "methods", "bench", "report", "search", "data"])
def test_every_command_has_help(command: str):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_methods_lists_strategies_with_their_options():
    result = runner.invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("equal", "gradnorm", "async", "pcgrad", "mgda"):
        assert name in result.output
    assert "alpha, lr, min_weight" in result.output


def test_unknown_method_option_names_the_option(tmp_path: Path):
    result = runner.invoke(
        app,
        ["train", "--out", str(tmp_path / "r"), "--method", "gradnorm", "--method-opt", "alpa=2"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "alpa" in result.output and "alpha" in result.output


def test_train_on_a_missing_root_is_a_clear_error(tmp_path: Path):
    result = runner.invoke(
        app,
        ["train", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere"), "--preset", "tiny"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "nowhere" in result.output


# ------------------------------------------------------------------------------- --tasks
class _CapturingTrainer:
    """Stands in for taskweight.trainer.Trainer: records the configuration `train` builds, trains nothing."""

    configs: list = []

    def __init__(self, config, out, **_kwargs) -> None:
        _CapturingTrainer.configs.append(config)
        self.is_main = False

    @staticmethod
    def check_folder(out, overwrite: bool = False) -> None:
        pass

    def fit(self, resume: bool = False, overwrite: bool = False) -> None:
        return None


@pytest.mark.parametrize(
    ("given", "tasks"),
    [
        ([], ["det", "seg"]),  # the preset's
        (["--tasks", "det,seg,depth"], ["det", "seg", "depth"]),
        (["--tasks", "depth,seg"], ["seg", "depth"]),  # canonical order
        (["--tasks", "depth", "--tasks", "det"], ["det", "depth"]),  # repeated
    ],
)
def test_train_tasks_option_sets_the_configs_tasks(tmp_path: Path, monkeypatch, given, tasks):
    import taskweight.trainer

    monkeypatch.setattr(taskweight.trainer, "Trainer", _CapturingTrainer)
    _CapturingTrainer.configs = []
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "r"), "--preset", "tiny", *given])
    assert result.exit_code == 0, result.output
    (config,) = _CapturingTrainer.configs
    assert config.tasks == tasks


def test_train_gradients_option_reaches_the_config_and_a_bad_value_is_named(tmp_path: Path, monkeypatch):
    import taskweight.trainer

    monkeypatch.setattr(taskweight.trainer, "Trainer", _CapturingTrainer)
    _CapturingTrainer.configs = []
    out = str(tmp_path / "r")
    result = runner.invoke(
        app, ["train", "--out", out, "--preset", "tiny", "--method", "mgda", "--gradients", "representation"]
    )
    assert result.exit_code == 0, result.output
    (config,) = _CapturingTrainer.configs
    assert (config.method.name, config.method.gradients) == ("mgda", "representation")
    result = runner.invoke(app, ["train", "--out", out, "--gradients", "features"], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "method.gradients" in result.output, result.output


@pytest.mark.parametrize("command", ["train", "search"])
@pytest.mark.parametrize(("given", "problem"), [("det,normals", "unknown task"), ("seg,seg", "more than once")])
def test_a_bad_tasks_option_is_named_with_the_valid_tasks(tmp_path: Path, command: str, given: str, problem: str):
    result = runner.invoke(app, [command, "--out", str(tmp_path / "r"), "--tasks", given], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "option '--tasks'" in result.output and problem in result.output
    if problem == "unknown task":
        assert "normals" in result.output and "['det', 'seg', 'depth']" in result.output
    assert not (tmp_path / "r").exists()


def test_search_tasks_option_sets_every_evaluations_tasks(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace

    import taskweight.search.search

    seen = []

    def fake_search(config, out, **_kwargs):
        seen.append(config)
        return SimpleNamespace(best_config={}, best_index=None, journal_path=out / "journal.jsonl")

    monkeypatch.setattr(taskweight.search.search, "search_task_weights", fake_search)
    result = runner.invoke(app, ["search", "--out", str(tmp_path / "s"), "--preset", "tiny", "--tasks", "seg,depth"])
    assert result.exit_code == 2 and "no evaluation succeeded" in result.output  # the stand-in ran nothing
    assert [c.tasks for c in seen] == [["seg", "depth"]]


@pytest.mark.parametrize("command", ["train", "search"])
def test_tasks_option_is_explained(command: str):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--tasks" in text and "det, seg, depth" in text and "depth ground truth" in text


def test_train_cuda_graph_option_reaches_the_config_and_a_bad_value_is_named(tmp_path: Path, monkeypatch):
    import taskweight.trainer

    monkeypatch.setattr(taskweight.trainer, "Trainer", _CapturingTrainer)
    _CapturingTrainer.configs = []
    out = str(tmp_path / "r")
    result = runner.invoke(app, ["train", "--out", out, "--preset", "tiny", "--cuda-graph", "off"])
    assert result.exit_code == 0, result.output
    (config,) = _CapturingTrainer.configs
    assert config.cuda_graph == "off"
    result = runner.invoke(app, ["train", "--out", out, "--cuda-graph", "always"], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "cuda_graph" in result.output, result.output


def test_train_cuda_graph_on_without_a_gpu_names_the_obstacle(tmp_path: Path, tiny_kitti: Path):
    result = runner.invoke(
        app,
        ["train", "--out", str(tmp_path / "r"), "--preset", "tiny", "--data", str(tiny_kitti), "--device", "cpu"]
        + ["--cuda-graph", "on"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code != 0
    assert "option 'cuda_graph': on, but CUDA graphs need a CUDA device" in result.output, result.output


def _finished_run_metrics(**run: Any) -> dict[str, Any]:
    scores = {"mAP": 0.5, "mAP_coco": 0.25, "mIoU": 0.75, "geometric_mean": 0.6124}
    return {
        "final": scores,
        "best": scores,
        "best_epoch": 3,
        "final_weights": {"det": 1.0, "seg": 1.0},
        "initial_loss_ratio_det_over_seg": 120.0,
        "method": "equal",
        **run,
    }


@pytest.mark.parametrize(
    ("run", "line"),
    [
        (
            {"epochs": 3, "train_time_s": 41.6, "precision": "fp32", "channels_last": True, "compile": False},
            "trained 3 epochs in 42 s, precision fp32 + channels-last",
        ),
        (
            {"epochs": 12, "train_time_s": 150.2, "precision": "bf16", "channels_last": False, "cuda_graph": True},
            "trained 12 epochs in 150 s, precision bf16, cuda_graph",
        ),
        (
            {"epochs": 1, "train_time_s": 0.4, "precision": "bf16", "channels_last": True, "compile": True},
            "trained 1 epoch in 0 s, precision bf16 + channels-last, compile",
        ),
    ],
)
def test_train_ends_with_the_precision_the_run_resolved(capsys, run: dict, line: str):
    from taskweight import cli

    cli._print_metrics(_finished_run_metrics(**run))
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2] == "final weights: w_det = 1, w_seg = 1; initial L_det/L_seg = 120.0"
    assert printed[-1] == line
