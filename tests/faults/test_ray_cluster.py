"""The search and the benchmark on a real Ray cluster: a head node and a worker node, started by
``ray start`` as separate processes, reached through ``--address``.

- search: one evaluation's worker process is SIGKILLed mid-run; Ray re-runs it (task retries), the
  search still finishes with every evaluation in the journal, and the journal says which one
  needed a second attempt;
- bench: ``--executor ray`` writes the same results as the local executor.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
BUDGET = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# every process of the cluster (head, worker node, the search's driver) shares one token: the same
# whether or not this machine has a ~/.ray/auth_token of its own
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _ray(*args: str) -> None:
    result = subprocess.run([RAY, *args], env=ENV, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def _evaluation_workers() -> list[int]:
    """PIDs of the Ray worker processes running an evaluation (their process title is the task's name)."""
    table = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in table.splitlines()[1:] if line.split()[1:2] == ["ray::_ray_evaluate"]]


def _training_run(out: Path) -> Path | None:
    """An evaluation's run folder whose training has started and not finished."""
    for config in sorted(out.glob("evals/*/config.yaml")):
        if not (config.parent / "metrics.json").exists():
            return config.parent
    return None


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head node and a worker node of 1 CPU each, as separate processes; yields the address."""
    address = f"127.0.0.1:{_free_port()}"
    _ray(
        "start",
        "--head",
        f"--port={address.split(':')[1]}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
    )
    try:
        _ray("start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats")
        yield address
    finally:
        _ray("stop", "--force")


def _cli(*args: str, threads: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskweight.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV if threads is None else {**ENV, "OMP_NUM_THREADS": str(threads)},
    )


def _search_args(cluster: str, data: Path, out: Path) -> list[str]:
    """A tiny search of BUDGET evaluations on the cluster, a generation's evaluations in parallel."""
    return [
        "search",
        "--preset",
        "tiny",
        "--data",
        str(data),
        "--budget",
        str(BUDGET),
        "--seed",
        "0",
        "--executor",
        "ray",
        "--transfer",
        "generation",
        "--address",
        cluster,
        "--out",
        str(out),
        "--no-progress",
    ]


@pytest.mark.slow
def test_a_search_on_a_two_node_cluster_survives_a_killed_worker(
    cluster: str, tmp_path: Path, tiny_kitti: Path
) -> None:
    out = tmp_path / "search"
    search = _cli(*_search_args(cluster, tiny_kitti, out))
    running = None
    deadline = time.monotonic() + 600
    while running is None and time.monotonic() < deadline and search.poll() is None:
        running = _training_run(out)
        time.sleep(0.05)
    assert running is not None, "no evaluation started training on the cluster"
    victims = _evaluation_workers()
    assert victims, "no worker process runs an evaluation"
    for pid in victims:  # every evaluation in flight, the one training in `running` among them
        os.kill(pid, signal.SIGKILL)
    _, stderr = search.communicate(timeout=900)
    assert search.returncode == 0, stderr[-3000:]
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(BUDGET))
    assert all(r.get("fitness") is not None and not r.get("error") for r in records), records
    attempts = {r["index"]: r.get("attempts", 1) for r in records}
    killed = int(running.name)  # evals/NNNN
    assert attempts[killed] == 2, attempts  # counted when it started training, and once more when re-run
    assert set(attempts.values()) <= {1, 2}, attempts
    assert (out / records[killed]["checkpoint"]).is_file()
    assert (running / "metrics.json").is_file()  # the re-run trained the evaluation to its end


@pytest.mark.slow
def test_bench_cells_on_the_cluster_give_the_local_results(cluster: str, tmp_path: Path, tiny_kitti: Path) -> None:
    preset = tmp_path / "bench.yaml"
    preset.write_text(
        "train_preset: tiny\ntrain_overrides: {epochs: 2}\nmethods: [equal, gradnorm]\nseeds: 1\n"
        f"datasets:\n  - {{name: t, format: kitti, root: {tiny_kitti}}}\n"
    )
    runs = {
        # a Ray cell computes with one thread (it holds one CPU): the same as a one-thread local run, bit for bit
        "local": _cli("bench", "--preset", str(preset), "--out", str(tmp_path / "local"), "--no-progress", threads=1),
        "ray": _cli(
            "bench",
            "--preset",
            str(preset),
            "--out",
            str(tmp_path / "ray"),
            "--no-progress",
            "--executor",
            "ray",
            "--address",
            cluster,
        ),
    }
    for name, run in runs.items():
        _, stderr = run.communicate(timeout=900)
        assert run.returncode == 0, (name, stderr[-3000:])

    def records(folder: Path) -> list[dict[str, Any]]:
        out = json.loads((folder / "results.json").read_text())["records"]
        return [{k: v for k, v in r.items() if k not in {"train_time_s", "wall_time_s", "checkpoint"}} for r in out]

    local, ray = records(tmp_path / "local"), records(tmp_path / "ray")
    assert [r["method"] for r in ray] == ["equal", "gradnorm"]
    assert ray == local


@pytest.mark.slow
def test_a_search_whose_driver_is_killed_resumes_on_the_cluster(cluster: str, tmp_path: Path, tiny_kitti: Path) -> None:
    """SIGKILL the search's driver once its first evaluations are journaled; `--resume` against the
    same cluster keeps those lines as they were and completes the budget."""
    out = tmp_path / "search"
    args = _search_args(cluster, tiny_kitti, out)
    driver = _cli(*args)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and driver.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the search ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    text = journal.read_text()
    before = text.splitlines()[: text.count("\n")]  # complete lines (a kill can tear the last one)
    assert 1 <= len(before) < BUDGET, before
    resumed = _cli(*args, "--resume")
    _, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    after = journal.read_text().splitlines()
    assert after[: len(before)] == before, (before, after)
    assert [json.loads(line)["index"] for line in after] == list(range(BUDGET)), after
    assert all(json.loads(line).get("fitness") is not None for line in after)
