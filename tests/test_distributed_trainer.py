"""The trainer on two processes (gloo, CPU), set up the way ``taskweight train --nproc 2`` sets them up
(``torch.distributed.run``'s environment variables): both ranks end with the same parameters and the
same history (rank 0 validates and broadcasts), only rank 0 writes the run folder, and a two-rank run
resumed after its first epoch ends where the uninterrupted two-rank run ends, bit for bit.

BatchNorm's running statistics are the one state the ranks do not share on the CPU (each rank
normalises with its own batch; SyncBatchNorm is for CUDA, ``distributed.convert_batch_norm``): rank 0's
are the ones saved and evaluated, and every rank resumes from them.

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
from test_resume_every_strategy import _Stop, _stop_at_step

WORLD = 2
pytestmark = pytest.mark.slow


def _rank(rank: int, port: int, config: TrainConfig, run: str, resume: bool, stop_at: int, out: str) -> None:
    os.environ.update(
        WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    if stop_at:  # a spawned process of its own: the patch needs no undoing
        _stop_at_step(pytest.MonkeyPatch(), stop_at)
    try:
        trainer = Trainer(config, run, show_progress=False)
        try:
            trainer.fit(resume=resume)
        except _Stop:
            return
        record = {
            "model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "parameters": [name for name, _ in trainer.model.named_parameters()],
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


def _two_ranks(
    config: TrainConfig, run: Path, out: Path, *, resume: bool = False, stop_at: int = 0
) -> list[dict[str, Any]]:
    out.mkdir(parents=True)
    mp.start_processes(
        _rank, args=(_free_port(), config, str(run), resume, stop_at, str(out)), nprocs=WORLD, start_method="spawn"
    )
    if stop_at:
        return []
    records = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for record in records:
        record["history"] = [
            {k: v for k, v in row.items() if k != "epoch_time_s"} for row in json.loads(record["history"])
        ]
    return records


@pytest.fixture(scope="module")
def runs(tiny_kitti: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``whole``: two epochs on two ranks (2 steps an epoch); ``resumed``: stopped after its 3rd step (in epoch 2,
    after the epoch-1 checkpoint), then resumed (augmentation on)."""
    config = load_config("tiny", overrides={"data": {"root": str(tiny_kitti)}, "epochs": 2, "method": {"name": "dwa"}})
    folder = tmp_path_factory.mktemp("ddp-trainer")
    whole = _two_ranks(config, folder / "whole", folder / "out-whole")
    _two_ranks(config, folder / "resumed", folder / "out-first", stop_at=3)
    resumed = _two_ranks(config, folder / "resumed", folder / "out-resumed", resume=True)
    return {"config": config, "folder": folder, "whole": whole, "resumed": resumed}


def _shared(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("train_det_")}


def test_both_ranks_end_with_the_same_parameters_and_history(runs: dict[str, Any]) -> None:
    first, second = runs["whole"]
    assert (first["is_main"], second["is_main"]) == (True, False)
    assert first["model"].keys() == second["model"].keys()
    for key in first["parameters"]:
        assert torch.equal(first["model"][key], second["model"][key]), key
    bn = "encoder.bn1.running_mean"
    assert not torch.equal(first["model"][bn], second["model"][bn])  # each rank's own batch statistics
    # the losses the strategy weighed (all-reduced), the weights and the validation scores (broadcast) agree;
    # the detection loss terms (train_det_*) are each rank's own, and only rank 0's are written
    assert [_shared(row) for row in first["history"]] == [_shared(row) for row in second["history"]]
    assert len(first["history"]) == 2 and "train_det_box" in first["history"][0]
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
    """Rank 0: the whole network (the one saved) and its history. Rank 1: its parameters and the shared
    columns of its history (it resumed with rank 0's BatchNorm statistics and rank 0's history)."""
    for rank in range(WORLD):
        whole, resumed = runs["whole"][rank], runs["resumed"][rank]
        compared = whole["model"] if rank == 0 else whole["parameters"]
        for key in compared:
            assert torch.equal(whole["model"][key], resumed["model"][key]), (rank, key)
        kept = (lambda row: row) if rank == 0 else _shared
        assert [kept(row) for row in resumed["history"]] == [kept(row) for row in whole["history"]]
    folder = runs["folder"]
    assert (folder / "resumed" / "weights.csv").read_bytes() == (folder / "whole" / "weights.csv").read_bytes()
