"""The command line: every command is registered, explains itself, and rejects bad options clearly."""

from __future__ import annotations

from pathlib import Path

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
