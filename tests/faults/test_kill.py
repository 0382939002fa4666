"""Kill tests: SIGKILL a run at an exact place, resume it, and compare with an uninterrupted run.

The kill comes from a fail point (:mod:`taskweight.failpoints`): the process sends itself
SIGKILL there — no ``finally``, no flush, like a power cut. Each test runs the command three
times in subprocesses: uninterrupted, killed, resumed; the resumed run's outputs must equal
the uninterrupted run's (wall times aside): ``weights.csv`` byte for byte, ``history.csv``
and ``metrics.json`` value for value, the checkpoints' tensors exactly.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

TIMES = {"train_time_s", "epoch_time_s", "wall_time_s", "training_s", "train_time", "elapsed_s", "time_s"}


def _run(args: list[str], failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKWEIGHT_FAILPOINT": failpoint or "", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "taskweight.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def _killed(args: list[str], failpoint: str) -> None:
    result = _run(args, failpoint)
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-2000:])


def _ok(args: list[str]) -> subprocess.CompletedProcess[str]:
    result = _run(args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _history(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(handle)]


def _same_tensors(a: Path, b: Path) -> None:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa["model"].keys() == sb["model"].keys()
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), (a.name, key)


def _assert_same_run(reference: Path, resumed: Path) -> None:
    assert (resumed / "weights.csv").read_bytes() == (reference / "weights.csv").read_bytes()
    assert _history(resumed / "history.csv") == _history(reference / "history.csv")
    metrics = [_without_times(json.loads((d / "metrics.json").read_text())) for d in (reference, resumed)]
    assert metrics[0] == metrics[1]
    _same_tensors(reference / "last.pt", resumed / "last.pt")
    _same_tensors(reference / "best.pt", resumed / "best.pt")


@pytest.fixture(scope="module")
def train_args(tiny_kitti: Path) -> list[str]:
    return ["train", "--preset", "tiny", "--data", str(tiny_kitti), "--epochs", "3", "--no-progress"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, train_args: list[str]) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    _ok([*train_args, "--out", str(out)])
    return out


# tiny: 24 training images, batch 8 → 3 steps an epoch; 8 val images → 1 val batch an epoch
@pytest.mark.parametrize(
    "failpoint",
    [
        "train_step@5",  # in the middle of epoch 2 (weights.csv already holds steps 3–4)
        "validation_batch@2",  # during epoch 2's validation (its training rows are written)
        "write:last.pt@2",  # epoch 2's checkpoint written to a temporary file, not yet renamed
        "write:best.pt@1",  # the first best.pt complete but not in place
        "write:metrics.json@1",  # the very end: everything trained, metrics.json not yet in place
    ],
)
def test_killed_training_resumes_to_the_uninterrupted_result(
    failpoint: str, tmp_path: Path, train_args: list[str], reference_run: Path
) -> None:
    out = tmp_path / "run"
    _killed([*train_args, "--out", str(out)], failpoint)
    assert not (out / "metrics.json").exists()
    _ok([*train_args, "--out", str(out), "--resume"])
    _assert_same_run(reference_run, out)


def test_a_second_process_cannot_write_a_locked_run_folder(tmp_path: Path, train_args: list[str]) -> None:
    from taskweight.durable import FolderLock

    out = tmp_path / "run"
    with FolderLock(out, "run folder"):
        result = _run([*train_args, "--out", str(out)])
    assert result.returncode == 2 and "in use by PID" in result.stderr and "Traceback" not in result.stderr


def _journal(path: Path) -> list[dict[str, Any]]:
    return [_without_times(json.loads(line)) for line in path.read_text().splitlines()]


def test_killed_search_resumes_to_the_uninterrupted_journal(tmp_path: Path, tiny_kitti: Path) -> None:
    args = ["search", "--preset", "tiny", "--data", str(tiny_kitti), "--budget", "3", "--seed", "0", "--no-progress"]
    _ok([*args, "--out", str(tmp_path / "ref")])
    killed = tmp_path / "killed"
    _killed([*args, "--out", str(killed)], "train_step@5")  # tiny: 3 steps an evaluation → inside evaluation 2
    assert len((killed / "journal.jsonl").read_text().splitlines()) == 1
    _ok([*args, "--out", str(killed), "--resume"])
    reference, resumed = _journal(tmp_path / "ref" / "journal.jsonl"), _journal(killed / "journal.jsonl")
    for record in (*reference, *resumed):  # paths differ by the out folder only
        record.pop("checkpoint", None)
        record.pop("init_from", None)
    assert resumed == reference and len(resumed) == 3
    _same_tensors(tmp_path / "ref" / "evals" / "0002" / "best.pt", killed / "evals" / "0002" / "best.pt")


def test_killed_bench_cell_resumes_to_the_uninterrupted_results(tmp_path: Path, tiny_kitti: Path) -> None:
    preset = tmp_path / "bench.yaml"
    preset.write_text(
        "train_preset: tiny\ntrain_overrides: {epochs: 2}\nmethods: [equal, gradnorm]\nseeds: 1\n"
        f"datasets:\n  - {{name: t, format: kitti, root: {tiny_kitti}}}\n"
    )
    args = ["bench", "--preset", str(preset), "--no-progress"]
    _ok([*args, "--out", str(tmp_path / "ref")])
    killed = tmp_path / "killed"
    _killed([*args, "--out", str(killed)], "train_step@8")  # the gradnorm cell, epoch 1 of 2
    records = json.loads((killed / "results.json").read_text())["records"]
    assert [r["method"] for r in records] == ["equal"]
    _ok([*args, "--out", str(killed)])

    def load(folder: Path) -> list[dict[str, Any]]:
        out = _without_times(json.loads((folder / "results.json").read_text())["records"])
        for record in out:
            record.pop("checkpoint", None)
        return out

    assert load(killed) == load(tmp_path / "ref")
    for method in ("equal", "gradnorm"):
        cell = Path("cells/t") / method / "seed0/run"
        assert (killed / cell / "weights.csv").read_bytes() == (tmp_path / "ref" / cell / "weights.csv").read_bytes()


@pytest.mark.slow
def test_killed_two_process_training_resumes_to_the_uninterrupted_result(tmp_path: Path, train_args: list[str]) -> None:
    """`train --nproc 2` (gloo): 24 images over 2 ranks with batch 8 → 2 steps an epoch. Every rank
    kills itself at its 3rd step (epoch 2); the launch fails; `--resume --nproc 2` must end where an
    uninterrupted 2-process run ends, and rank 0 alone must have written the run folder."""
    args = [*train_args, "--method", "pcgrad", "--nproc", "2"]
    reference = tmp_path / "reference"
    _ok([*args, "--out", str(reference)])
    out = tmp_path / "run"
    killed = _run([*args, "--out", str(out)], "train_step@3")
    assert killed.returncode == 2 and "exited with status" in killed.stderr, killed.stderr[-2000:]
    assert (out / "last.pt").is_file() and not (out / "metrics.json").exists()
    assert len((out / "weights.csv").read_text().splitlines()) == 1 + 2  # header + epoch 1's two steps
    resumed = _ok([*args, "--out", str(out), "--resume"])
    assert resumed.stdout.count("val metrics") == 1  # rank 0 reports, the other rank stays quiet
    _assert_same_run(reference, out)
    history = _history(out / "history.csv")
    assert len(history) == 3
