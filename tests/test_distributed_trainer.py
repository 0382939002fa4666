"""The trainer on two processes (gloo, CPU), set up the way ``taskweight train --nproc 2`` sets them up
(``torch.distributed.run``'s environment variables): both ranks end with the same network and the same
history (rank 0 validates and broadcasts), only rank 0 writes the run folder, and a two-rank run resumed
after its first epoch ends where the uninterrupted two-rank run ends, bit for bit.

``tests/test_distributed.py`` checks the step itself against one process; this file checks the loop
around it (the folder claim, the barriers, the validation broadcast, the resume on every rank).
"""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from taskweight import distributed
from taskweight.config import TrainConfig, load_config
from taskweight.trainer import Trainer

WORLD = 2
pytestmark = pytest.mark.slow


def _rank(rank: int, port: int, config: TrainConfig, run: str, resume: bool, out: str) -> None:
    os.environ.update(
        WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    try:
        trainer = Trainer(config, run, show_progress=False)
        trainer.fit(resume=resume)
        record = {
            "model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "history": json.dumps(trainer.history),
            "is_main": trainer.is_main,
            "global_step": trainer.global_step,
        }
        torch.save(record, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _two_ranks(config: TrainConfig, run: Path, out: Path, *, resume: bool = False) -> list[dict[str, Any]]:
    out.mkdir(parents=True)
    mp.start_processes(
        _rank, args=(_free_port(), config, str(run), resume, str(out)), nprocs=WORLD, start_method="spawn"
    )
    records = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for record in records:
        record["history"] = [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in json.loads(record["history"])]
    return records


@pytest.fixture(scope="module")
def runs(tiny_kitti: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``whole``: two epochs on two ranks; ``resumed``: one epoch, then resumed to two (augmentation on)."""
    config = load_config("tiny", overrides={"data": {"root": str(tiny_kitti)}, "epochs": 2, "method": {"name": "dwa"}})
    folder = tmp_path_factory.mktemp("ddp-trainer")
    whole = _two_ranks(config, folder / "whole", folder / "out-whole")
    _two_ranks(config.model_copy(update={"epochs": 1}), folder / "resumed", folder / "out-first")
    resumed = _two_ranks(config, folder / "resumed", folder / "out-resumed", resume=True)
    return {"config": config, "folder": folder, "whole": whole, "resumed": resumed}


def test_both_ranks_end_with_the_same_network_and_history(runs: dict[str, Any]) -> None:
    first, second = runs["whole"]
    assert (first["is_main"], second["is_main"]) == (True, False)
    assert first["model"].keys() == second["model"].keys()
    for key, value in first["model"].items():
        assert torch.equal(value, second["model"][key]), key
    assert first["history"] == second["history"] and len(first["history"]) == 2
    assert "val_geometric_mean" in first["history"][0]  # rank 1 did not validate: it got rank 0's scores


def test_only_rank_0_writes_the_run_folder(runs: dict[str, Any]) -> None:
    """One TensorBoard event file, one row of weights.csv per step of rank 0 (12 images a rank, batch 8),
    and the files of one run."""
    run = runs["folder"] / "whole"
    assert len(list((run / "tensorboard").iterdir())) == 1
    with (run / "weights.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = runs["whole"][0]["global_step"]
    assert [int(r["step"]) for r in rows] == list(range(steps)) and steps == 2 * 2
    with (run / "history.csv").open(newline="") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2]
    saved = torch.load(run / "last.pt", weights_only=True)
    for key, value in runs["whole"][0]["model"].items():
        assert torch.equal(saved["model"][key], value), key


def test_a_resumed_two_rank_run_ends_where_the_uninterrupted_one_ends(runs: dict[str, Any]) -> None:
    for rank in range(WORLD):
        whole, resumed = runs["whole"][rank], runs["resumed"][rank]
        for key, value in whole["model"].items():
            assert torch.equal(value, resumed["model"][key]), (rank, key)
        assert resumed["history"] == whole["history"]
    folder = runs["folder"]
    assert (folder / "resumed" / "weights.csv").read_bytes() == (folder / "whole" / "weights.csv").read_bytes()
