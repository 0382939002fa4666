"""Tasks from configuration (issue 15): ``tasks`` names any non-empty subset of the known tasks;
the model builds only their heads and the strategy, the metrics, the search space and Table I
follow them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from taskweight import weighting
from taskweight.bench.report import render_table1
from taskweight.bench.results import CellRecord
from taskweight.classes import DEFAULT_TASKS, TASKS, check_tasks, parse_tasks, table_order
from taskweight.config import TrainConfig, load_config
from taskweight.errors import ConfigError
from taskweight.metrics import MultiTaskEvaluator
from taskweight.models import resnet10_multitask
from taskweight.scoring import score_run
from taskweight.search.report import table1_markdown
from taskweight.search.space import task_weight_space
from taskweight.trainer import Trainer

SUBSETS = [["det"], ["seg"]]  # single tasks trained on tiny_kitti (depth: tests/test_depth.py)


def _config(tiny_kitti: Path, tasks: list[str], **overrides) -> TrainConfig:
    return load_config(
        "tiny",
        overrides={"data": {"root": str(tiny_kitti)}, "epochs": 2, "tasks": tasks, "precision": "fp32", **overrides},
    )


# ------------------------------------------------------------------------------ configuration
def test_default_tasks_are_the_papers_two():
    assert TrainConfig().tasks == list(DEFAULT_TASKS) == ["det", "seg"]


def test_tasks_are_put_in_canonical_order():
    assert load_config("tiny", overrides={"tasks": ["seg", "det"]}).tasks == ["det", "seg"]
    assert check_tasks(["seg"]) == ("seg",)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [([], "at least one task"), (["normals"], "unknown task"), (["seg", "seg"], "more than once")],
)
def test_bad_task_lists_name_the_option(tasks, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config("tiny", overrides={"tasks": tasks})
    assert "option 'tasks'" in str(info.value)


def test_command_line_task_lists_are_checked_like_the_configs():
    assert parse_tasks(["depth,det"]) == ("det", "depth")
    assert parse_tasks(["seg", "depth", "det"]) == TASKS
    assert parse_tasks([" det , seg "]) == ("det", "seg")
    for given, message in (([], "at least one task"), (["det,normals"], "unknown task"), (["seg", "seg"], "more than")):
        with pytest.raises(ValueError, match=message) as info:
            parse_tasks(given, "--tasks")
        assert str(info.value).startswith("option '--tasks': ")
        with pytest.raises(ValueError, match=message):
            check_tasks([t for item in given for t in item.split(",")])  # the same rule as the config's


# ---------------------------------------------------------------------------------- model
@pytest.mark.parametrize("tasks", SUBSETS)
def test_model_builds_only_the_named_heads(tasks):
    model = resnet10_multitask(width=0.25, image_height=64, tasks=tasks)
    assert model.tasks == tuple(tasks)
    heads = {name for name, _ in model.named_children() if name.endswith("_head")}
    assert heads == {f"{t}_head" for t in tasks}
    outputs = model(torch.rand(2, 3, 64, 192))
    assert set(outputs) == set(tasks)
    other = next(t for t in SUBSETS if t != tasks)[0]
    with pytest.raises(KeyError, match="no head"):
        model.task_parameters(other)
    with pytest.raises(ValueError, match="head"):
        model.predict(torch.rand(1, 3, 64, 192))


def test_losses_only_for_the_models_tasks(tiny_kitti):
    from taskweight.data import batch_to_device, collate_batch, open_dataset

    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    batch = batch_to_device(collate_batch([data[i] for i in range(4)]), torch.device("cpu"))
    for tasks in SUBSETS:
        model = resnet10_multitask(width=0.25, image_height=64, tasks=tasks)
        assert set(model.compute_losses(model(batch["image"]), batch)) == set(tasks)


def test_geometric_mean_over_the_configured_tasks():
    evaluator = MultiTaskEvaluator(tasks=["seg"])
    batch = {
        "has_det": torch.tensor([True]),
        "has_seg": torch.tensor([True]),
        "seg": torch.tensor([[[0, 1], [2, 1]]]),
        "boxes": [torch.zeros(0, 4)],
        "labels": [torch.zeros(0, dtype=torch.long)],
        "ignore_boxes": [torch.zeros(0, 4)],
    }
    evaluator.update(None, torch.tensor([[[0, 1], [2, 2]]]), batch)
    result = evaluator.compute()
    assert math.isnan(result["mAP"])
    assert result["geometric_mean"] == pytest.approx(result["mIoU"])


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("tasks", SUBSETS)
def test_subset_config_trains_scores_and_resumes(tmp_path, tiny_kitti, tasks):
    config = _config(tiny_kitti, tasks, tensorboard_images=2)
    straight = tmp_path / "straight"
    result = Trainer(config, straight, show_progress=False).fit()
    assert set(result.metrics["final_weights"]) == set(tasks)
    score = {"det": "mAP", "seg": "mIoU"}[tasks[0]]
    final = result.metrics["final"]
    assert final["geometric_mean"] == pytest.approx(final[score])
    with (straight / "weights.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["step", "epoch", *(f"loss_{t}" for t in tasks), *(f"weight_{t}" for t in tasks)]
    history = list(csv.DictReader((straight / "history.csv").open()))
    assert all(float(r[f"train_loss_{tasks[0]}"]) > 0 for r in history)

    resumed = tmp_path / "resumed"
    Trainer(config.model_copy(update={"epochs": 1}), resumed, show_progress=False).fit()
    Trainer(config, resumed, show_progress=False).fit(resume=True)
    a, b = torch.load(straight / "last.pt")["model"], torch.load(resumed / "last.pt")["model"]
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)

    scored = score_run(straight, split="val")
    assert scored["geometric_mean"] == pytest.approx(scored[score])
    assert json.loads((straight / "metrics.json").read_text())["final_weights"].keys() == set(tasks)


def test_subset_run_is_refused_by_predict(tmp_path, tiny_kitti):
    from taskweight.predict import load_run

    run = tmp_path / "seg"
    Trainer(_config(tiny_kitti, ["seg"], epochs=1, tensorboard_images=0), run, show_progress=False).fit()
    with pytest.raises(ConfigError, match="no det head"):
        load_run(run)


# -------------------------------------------------------------------- strategies, search, tables
@pytest.mark.parametrize("tasks", SUBSETS)
def test_strategies_and_search_space_follow_the_tasks(tasks):
    assert set(weighting.get("equal", tasks=tasks).current_weights()) == set(tasks)
    space = task_weight_space(tasks, async_frequencies=True)
    assert space.tasks == tuple(tasks)
    assert sorted(g.name for g in space.genes) == sorted([f"log10_w_{t}" for t in tasks] + [f"freq_{t}" for t in tasks])


def test_table1_rows_follow_the_tasks():
    search = table1_markdown({"weights": {"seg": 1.0}, "frequencies": {"seg": 3}}, tasks=["seg"])
    assert "| ws |" in search and "| async fs | 3 |" in search
    assert "wd" not in search and "fd" not in search
    records = [CellRecord(dataset="d", method="equal", seed=0, status="ok", weights={"seg": 1.0})]
    bench = render_table1(records)
    assert "| w_s |" in bench and "| w_d |" not in bench
    assert table_order(["det", "seg"]) == ["seg", "det"]
