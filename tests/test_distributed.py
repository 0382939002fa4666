"""Training on several processes (gloo, CPU): N ranks with batch b take the step of one process
with batch N·b, and every rank holds the same strategy state.

The network is the real one at the ``tiny`` size with its BatchNorm layers in eval mode (on the
CPU each rank normalises with its own batch statistics, so train-mode BatchNorm would differ by
design; everything else — losses, strategies, optimiser — runs as in training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from taskweight import weighting
from taskweight.build import build_model, build_optimizer, cluster_anchors, open_split
from taskweight.config import TrainConfig, load_config
from taskweight.data import collate_batch
from taskweight.distributed import Distributed
from taskweight.engine import TrainStep

METHODS = ("equal", "dynamic_scaling", "gradnorm", "pcgrad", "mgda", "uncertainty")
STEPS = 3
PER_RANK = 2
WORLD = 2


def _train(
    config: TrainConfig,
    anchors: torch.Tensor,
    method: str,
    batches: list[dict[str, Any]],
    distributed: Distributed | None,
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(config, anchors)
    strategy = weighting.get(method, tasks=model.tasks)
    optimizer = build_optimizer(config, model, strategy)
    step = TrainStep(model, strategy, optimizer, device=torch.device("cpu"), precision="fp32", distributed=distributed)
    model.eval()  # BatchNorm with fixed statistics (module docstring)
    start = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    used = []
    for batch in batches:
        out = step(batch)
        used.append({t: float(w) for t, w in out.weights.items()})
        strategy.on_epoch_end()
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "update": torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - start,
        "weights": used,
        "strategy": {k: v.clone() for k, v in strategy.state_dict().items() if isinstance(v, torch.Tensor)},
    }


def _rank(
    rank: int, store: str, out: str, config: TrainConfig, anchors: torch.Tensor, batches: list[list[dict[str, Any]]]
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        group = Distributed(rank, WORLD)
        results = {m: _train(config, anchors, m, batches[rank], group) for m in METHODS}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_runs(tiny_kitti: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = load_config(
        "tiny",
        overrides={
            "data": {"root": str(tiny_kitti), "augment": False},
            "optim": {"name": "sgd", "lr": 0.001, "momentum": 0.9},
        },
    )
    dataset = open_split(config, "train", train=True)
    anchors = cluster_anchors(dataset, config.model.num_anchors, 0)
    items = [dataset[i] for i in range(STEPS * PER_RANK * WORLD)]
    size = PER_RANK * WORLD
    whole = [collate_batch(items[s * size : (s + 1) * size]) for s in range(STEPS)]
    per_rank = [
        [collate_batch(items[s * size + r * PER_RANK : s * size + (r + 1) * PER_RANK]) for s in range(STEPS)]
        for r in range(WORLD)
    ]
    folder = tmp_path_factory.mktemp("ddp")
    mp.start_processes(
        _rank, args=(str(folder / "store"), str(folder), config, anchors, per_rank), nprocs=WORLD, start_method="spawn"
    )
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    single = {m: _train(config, anchors, m, whole, None) for m in METHODS}
    half = {m: _train(config, anchors, m, per_rank[0], None) for m in ("equal", "pcgrad")}
    return {"ranks": ranks, "single": single, "half": half}


def _relative_difference(update: torch.Tensor, reference: torch.Tensor) -> float:
    return float((update - reference).norm() / reference.norm())


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_take_the_step_of_one_process_on_both_batches(two_rank_runs: dict[str, Any], method: str) -> None:
    """The parameters' total update after 3 steps agrees to 1e-5 (relative), the weights to 1e-5."""
    single = two_rank_runs["single"][method]
    for rank in two_rank_runs["ranks"]:
        got = rank[method]
        assert _relative_difference(got["update"], single["update"]) < 1e-5, method
        for a, b in zip(got["weights"], single["weights"], strict=True):
            assert a.keys() == b.keys()
            assert all(abs(a[t] - b[t]) <= 1e-5 * max(1.0, abs(b[t])) for t in a), (method, a, b)


@pytest.mark.parametrize("method", METHODS)
def test_every_rank_holds_the_same_strategy_state(two_rank_runs: dict[str, Any], method: str) -> None:
    first, second = (rank[method] for rank in two_rank_runs["ranks"])
    assert first["weights"] == second["weights"], method
    assert first["strategy"].keys() == second["strategy"].keys()
    for key, value in first["strategy"].items():
        assert torch.equal(value, second["strategy"][key]), (method, key)
    for p, q in zip(first["params"], second["params"], strict=True):
        assert torch.equal(p, q), method


def test_one_rank_alone_would_have_taken_another_step(two_rank_runs: dict[str, Any]) -> None:
    """The comparison above can fail: rank 0's half of the batches alone moves the parameters
    differently by far more than the tolerance."""
    for method, half in two_rank_runs["half"].items():
        assert _relative_difference(two_rank_runs["ranks"][0][method]["update"], half["update"]) > 1e-2, method
