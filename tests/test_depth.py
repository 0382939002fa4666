"""Depth, the third task (issue 15): KITTI's depth format, the synthetic z-buffer, the loader, the
head's loss, the metrics and T = 3 training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskweight import weighting
from taskweight.build import open_split
from taskweight.config import load_config
from taskweight.data import batch_to_device, collate_batch, open_dataset
from taskweight.data.depth import KITTI_DEPTH_MAX, encode_kitti_depth, read_kitti_depth, write_kitti_depth
from taskweight.engine import TrainStep
from taskweight.errors import ConfigError, DataFormatError
from taskweight.metrics import MultiTaskEvaluator, geometric_mean
from taskweight.models import resnet10_multitask
from taskweight.models.depth import SILOG_LAMBDA, DepthHead
from taskweight.synth import geometry as g
from taskweight.synth.raster import Canvas, plane_of
from taskweight.synth.scene import render_scene
from taskweight.trainer import Trainer

THREE = ["det", "seg", "depth"]


# ---------------------------------------------------------------------------- KITTI depth format
def test_kitti_depth_png_decodes_values_and_invalid_pixels(tmp_path):
    """A hand-made uint16 PNG: p / 256 metres, p = 0 is no measurement."""
    pixels = np.array([[0, 256, 512], [1, 65535, 0]], np.uint16)
    path = tmp_path / "0000000005.png"
    Image.fromarray(pixels).save(path)
    depth = read_kitti_depth(path)
    assert depth.dtype == np.float32 and depth.shape == (2, 3)
    np.testing.assert_array_equal(depth, np.array([[0, 1, 2], [1 / 256, 65535 / 256, 0]], np.float32))
    assert (depth == 0).sum() == 2


def test_kitti_depth_encoding_round_trip_and_limits(tmp_path):
    depth = np.array([[0.0, 1.0, 12.3456], [np.nan, KITTI_DEPTH_MAX + 1, 1e-4]])
    encoded = encode_kitti_depth(depth)
    assert encoded.dtype == np.uint16
    np.testing.assert_array_equal(encoded, [[0, 256, round(12.3456 * 256)], [0, 0, 1]])
    write_kitti_depth(tmp_path / "d.png", depth)
    back = read_kitti_depth(tmp_path / "d.png")
    assert abs(back[0, 2] - 12.3456) <= 1 / 512
    assert back[1, 0] == 0 and back[1, 1] == 0


def test_an_8bit_png_is_not_a_depth_map(tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(path)
    with pytest.raises(DataFormatError, match="16-bit"):
        read_kitti_depth(path)


# ------------------------------------------------------------------------- synthetic z-buffer
def _ray_plane_depth(points: np.ndarray, rows: np.ndarray, cols: np.ndarray, f: float, cx: float, cy: float):
    """Independent reference: solve o + t·ray on the plane through three of ``points``."""
    p0, p1, p2 = points[0], points[1], points[2]
    normal = np.cross(p1 - p0, p2 - p0)
    rays = np.stack([(cols + 0.5 - cx) / f, (rows + 0.5 - cy) / f, np.ones(len(rows))], axis=1)
    return (normal @ p0) / (rays @ normal)


def test_a_known_tilted_plane_renders_its_analytic_depth():
    f, cx, cy, h, w = 100.0, 48.0, 32.0, 64, 96
    canvas = Canvas(h, w, np.zeros((h, w), np.float32), np.zeros((h, w), np.float32), camera=(f, cx, cy))
    quad = np.array([[-3.0, -2.0, 6.0], [3.0, -2.0, 9.0], [3.0, 2.0, 11.0], [-3.0, 2.0, 8.0]])  # a planar quad
    projected = np.stack([cx + f * quad[:, 0] / quad[:, 2], cy + f * quad[:, 1] / quad[:, 2]], axis=1)
    canvas.fill(projected, (0.5, 0.5, 0.5), 1, surface=quad)
    assert canvas.depth is not None
    rows, cols = np.nonzero(canvas.depth)
    assert len(rows) > 500
    expected = _ray_plane_depth(quad, rows, cols, f, cx, cy)
    np.testing.assert_allclose(canvas.depth[rows, cols], expected, rtol=1e-12)
    assert (canvas.depth[canvas.sem == 0] == 0).all()  # nothing drawn: no depth
    normal, offset = plane_of(quad)
    assert np.allclose(quad @ normal, offset)


def test_the_z_buffer_keeps_the_nearer_surface_whatever_the_painting_order():
    f, cx, cy, h, w = 50.0, 16.0, 16.0, 32, 32
    canvas = Canvas(h, w, np.zeros((h, w), np.float32), np.zeros((h, w), np.float32), camera=(f, cx, cy))
    square = np.array([[-1, -1], [w + 1, -1], [w + 1, h + 1], [-1, h + 1]], float)
    canvas.fill(square, (1, 1, 1), 1, surface=(np.array([0.0, 0.0, 1.0]), 5.0))  # near wall, painted first
    canvas.fill(square, (1, 1, 1), 2, surface=(np.array([0.0, 0.0, 1.0]), 9.0))  # far wall painted over it
    assert (canvas.sem == 2).all() and np.allclose(canvas.depth, 5.0)


def test_scene_road_depth_is_the_ground_plane_and_the_image_is_unchanged():
    """Road pixels lie on the ground plane Y = camera height: Z = h·f / (v + ½ − c_y)."""
    exact = total = 0
    for index in range(4):
        plain = render_scene(index, "train", 0, (64, 192))
        scene = render_scene(index, "train", 0, (64, 192), depth=True)
        assert plain.depth is None and scene.depth is not None
        np.testing.assert_array_equal(plain.image, scene.image)
        np.testing.assert_array_equal(plain.semantic_ids, scene.semantic_ids)
        cam = scene.camera
        rows, cols = np.nonzero(scene.semantic_ids == g.ROAD)
        analytic = cam.height * cam.f / (rows + 0.5 - cam.cy)
        depth = scene.depth[rows, cols]
        # never behind the visible ground; equal unless a nearer surface (a curb over an edge line
        # painted on top of it) covers the pixel in the geometry
        assert (depth <= analytic * (1 + 1e-12)).all()
        exact += int(np.isclose(depth, analytic, rtol=1e-12, atol=0).sum())
        total += len(rows)
        assert (scene.depth[scene.semantic_ids == g.SKY] == 0).all()
    assert exact >= 0.98 * total


def test_synth_kitti_writes_depth_pngs_the_loader_pairs_by_name(tiny_kitti_depth):
    names = (tiny_kitti_depth / "splits" / "val.txt").read_text().split()
    data = open_dataset("kitti", tiny_kitti_depth, "val", depth=True)
    scene = render_scene(0, "val", 0, (64, 192), depth=True)
    first = data[0]
    assert first["has_depth"] and first["name"] == names[0]
    expected = read_kitti_depth(tiny_kitti_depth / "training" / "depth" / f"{names[0]}.png")
    np.testing.assert_array_equal(first["depth"].numpy(), expected)
    valid = (scene.depth > 0) & (scene.depth <= KITTI_DEPTH_MAX)  # farther: not encodable, written as 0
    assert np.abs(expected[valid] - scene.depth[valid]).max() <= 1 / 512 + 1e-6  # quantised to 1/256 m
    assert (expected[~valid] == 0).all()
    without = open_dataset("kitti", tiny_kitti_depth, "val")
    assert not without[0]["has_depth"] and "depth" not in without[0]


def test_depth_is_resized_nearest_and_flipped_with_the_image(tiny_kitti_depth):
    data = open_dataset("kitti", tiny_kitti_depth, "val", depth=True, image_size=(32, 96))
    item = data[0]
    assert item["depth"].shape == (32, 96)
    raw = read_kitti_depth(tiny_kitti_depth / "training" / "depth" / f"{item['name']}.png")
    assert set(np.unique(item["depth"].numpy())) <= set(np.unique(raw))  # nearest: measured values only


def test_a_format_without_depth_is_refused_by_the_tasks_option(tmp_path, monkeypatch):
    import taskweight.data as data_module

    def no_depth(root, split, *, image_size=None, augment=False, on_error="raise", mapping=None, cache=False):
        raise AssertionError("not opened: the tasks option is refused first")

    monkeypatch.setitem(data_module._FORMATS, "nodepth", no_depth)  # kitti, cityscapes, woodscape all read depth
    config = load_config("tiny", overrides={"data": {"format": "nodepth", "root": str(tmp_path)}, "tasks": THREE})
    with pytest.raises(ConfigError, match="option 'tasks'.*no depth"):
        open_split(config, "train", train=True)


# ---------------------------------------------------------------------------------- loss, metrics
def test_scale_invariant_log_loss_by_hand():
    target = torch.tensor([[[2.0, 4.0], [0.0, 8.0]]])  # one invalid pixel
    c = 0.3
    pred = torch.log(target.clamp_min(1e-6)) + c
    pred[0, 1, 0] = 123.0  # the invalid pixel's prediction is ignored
    loss = DepthHead.loss(pred, target)
    assert loss.item() == pytest.approx(c * c - SILOG_LAMBDA * c * c)
    d = torch.tensor([0.1, -0.2, 0.4])
    pred = torch.log(torch.tensor([[[2.0, 4.0], [1.0, 8.0]]]))
    pred[0, 0, 0] += d[0]
    pred[0, 0, 1] += d[1]
    pred[0, 1, 1] += d[2]
    expected = float((d**2).mean() - SILOG_LAMBDA * d.mean() ** 2)
    assert DepthHead.loss(pred, target).item() == pytest.approx(expected, rel=1e-5)
    assert DepthHead.loss(pred, target, torch.tensor([False])).item() == 0.0  # unlabelled image


def test_depth_metrics_by_hand():
    evaluator = MultiTaskEvaluator(tasks=["depth"])
    target = torch.tensor([[[1.0, 2.0], [4.0, 0.0]]])
    pred = torch.tensor([[[1.0, 3.0], [4.0, 9.0]]])
    evaluator.update(None, None, {"depth": target, "has_depth": torch.tensor([True])}, pred)
    result = evaluator.compute()
    assert result["AbsRel"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert result["RMSE"] == pytest.approx(math.sqrt(1 / 3))
    assert result["delta1"] == pytest.approx(2 / 3)  # 3/2 ≥ 1.25
    assert result["geometric_mean"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------- training T = 3
@pytest.fixture(scope="module")
def batch(tiny_kitti_depth: Path) -> dict:
    data = open_dataset("kitti", tiny_kitti_depth, "train", image_size=(64, 192), depth=True)
    return batch_to_device(collate_batch([data[i] for i in range(8)]), torch.device("cpu"))


def _losses(model, batch) -> dict[str, float]:
    with torch.no_grad():
        return {k: v.item() for k, v in model.compute_losses(model(batch["image"]), batch).items()}


@pytest.mark.parametrize("name", ["equal", "gradnorm", "upgrad"])
def test_three_tasks_all_losses_fall(name: str, batch: dict):
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64, tasks=THREE)
    strategy = weighting.get(name, tasks=model.tasks)
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.trainable_parameters()], lr=3e-3)
    step = TrainStep(model, strategy, optimizer, device=torch.device("cpu"), precision="fp32")
    model.train()
    before = _losses(model, batch)
    assert set(before) == set(THREE)
    for _ in range(20):
        step(batch)
    strategy.on_epoch_end()
    after = _losses(model, batch)
    for task in THREE:
        assert after[task] < 0.7 * before[task], (name, task, before, after)
    assert set(strategy.current_weights()) == set(THREE)


@pytest.mark.parametrize("tasks", [THREE, ["seg", "depth"]])
def test_depth_configs_train_and_score_the_geometric_mean_of_their_tasks(tmp_path, tiny_kitti_depth, tasks):
    config = load_config(
        "tiny",
        overrides={"data": {"root": str(tiny_kitti_depth)}, "epochs": 2, "tasks": tasks, "precision": "fp32"},
    )
    run = tmp_path / "run"
    result = Trainer(config, run, show_progress=False).fit()
    final = result.metrics["final"]
    assert {"AbsRel", "RMSE", "delta1"} <= set(final) and 0 <= final["delta1"] <= 1
    scores = {"det": final["mAP"], "seg": final["mIoU"], "depth": final["delta1"]}
    assert final["geometric_mean"] == pytest.approx(geometric_mean(*(scores[t] for t in tasks)), nan_ok=True)
    assert set(result.metrics["final_weights"]) == set(tasks)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss_depth"] < first["train_loss_depth"]
    resumed = tmp_path / "resumed"
    Trainer(config.model_copy(update={"epochs": 1}), resumed, show_progress=False).fit()
    Trainer(config, resumed, show_progress=False).fit(resume=True)
    a, b = torch.load(run / "last.pt")["model"], torch.load(resumed / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------- tables
def test_table2_has_depth_rows_only_where_depth_was_trained():
    from taskweight.bench.report import render_table2, summarize
    from taskweight.bench.results import CellRecord

    records = [
        CellRecord(dataset="three", method=m, seed=s, mAP=0.5, mIoU=0.6, geometric_mean=0.5, delta1=d, AbsRel=a, RMSE=3)
        for m, d, a in (("equal", 0.8, 0.2), ("gradnorm", 0.7, 0.1))
        for s in (0, 1)
    ]
    records += [CellRecord(dataset="two", method="equal", seed=0, mAP=0.5, mIoU=0.6, geometric_mean=0.55)]
    table = render_table2(summarize(records))
    lines = table.splitlines()
    depth_rows = [line for line in lines if "(depth" in line]
    assert len(depth_rows) == 3
    assert "**0.8000 ±" in next(line for line in depth_rows if "δ<1.25" in line)
    assert "**0.1000 ±" in next(line for line in depth_rows if "AbsRel" in line)  # lower is better
    two = lines.index(next(line for line in lines if line.startswith("| two |")))
    assert not any("(depth" in line for line in lines[two : two + 3])
    assert "delta1" in records[0].to_dict() and "delta1" not in records[-1].to_dict()


def test_table2_rows_follow_each_datasets_tasks_and_the_paper_comparison_keeps_the_papers_two(tmp_path):
    import csv

    from taskweight.bench.paper import compare_with_paper
    from taskweight.bench.report import render_table2, summarize
    from taskweight.bench.results import CSV_COLUMNS, CellRecord, load_results, save_results

    methods = ("equal", "gradnorm", "meta_async")
    sd = [
        CellRecord(
            dataset="kitti-sd",
            method=m,
            seed=0,
            tasks=["seg", "depth"],
            mAP=math.nan,
            mIoU=0.8,
            delta1=0.5 + 0.1 * i,
            AbsRel=0.2,
            RMSE=3.0,
            geometric_mean=math.sqrt(0.8 * (0.5 + 0.1 * i)),
        )
        for i, m in enumerate(methods)
    ]
    two = [
        CellRecord(dataset="kitti", method=m, seed=0, mAP=0.5, mIoU=0.8, geometric_mean=math.sqrt(0.4)) for m in methods
    ]
    summary = summarize(sd + two)
    assert summary["tasks"] == {"kitti-sd": ["seg", "depth"], "kitti": ["det", "seg"]}
    lines = render_table2(summary).splitlines()

    def titles(dataset: str) -> list[str]:
        first = next(i for i, line in enumerate(lines) if line.startswith(f"| {dataset} |"))
        end = next(i for i in range(first, len(lines)) if "Compute" in lines[i])
        return [line.split("|")[2].strip() for line in lines[first:end]]

    assert titles("kitti-sd") == [
        "mIoU (segment)",
        "δ<1.25 (depth)",
        "AbsRel (depth, lower is better)",
        "RMSE m (depth, lower is better)",
        "Geometric mean (mIoU · δ<1.25)",
    ]
    assert titles("kitti") == ["mAP (detection)", "mIoU (segment)", "Geometric mean"]  # as it always was
    comparison = compare_with_paper(summary)
    assert "kitti" in comparison and "kitti-sd" not in comparison

    save_results(tmp_path, two)  # a two-task results file is written as it always was
    with (tmp_path / "results.csv").open() as handle:
        assert tuple(next(csv.reader(handle))) == CSV_COLUMNS
    assert "tasks" not in json.loads((tmp_path / "results.json").read_text())["records"][0]
    save_results(tmp_path, sd + two)
    back = {r.dataset: r for r in load_results(tmp_path)}
    assert back["kitti-sd"].task_names == ("seg", "depth") and back["kitti"].task_names == ("det", "seg")
    with (tmp_path / "results.csv").open() as handle:
        rows = {(r["dataset"], r["method"]): r for r in csv.DictReader(handle)}
    assert rows["kitti-sd", "equal"]["tasks"] == "seg,depth" and rows["kitti", "equal"]["tasks"] == "det,seg"
    assert float(rows["kitti-sd", "gradnorm"]["delta1"]) == pytest.approx(0.6)
    assert rows["kitti", "equal"]["delta1"] == ""


def test_lidar_pattern_keeps_the_beam_rows_of_the_dense_depth(tmp_path):
    from taskweight.synth import generate_dataset
    from taskweight.synth.kitti_writer import LIDAR_RANGE_M

    generate_dataset(
        tmp_path / "lidar",
        preset="synth-kitti",
        train=2,
        val=0,
        test=0,
        size=(64, 192),
        depth=True,
        depth_pattern="lidar",
    )
    scene = render_scene(0, "train", 0, (64, 192), depth=True)
    sparse = read_kitti_depth(tmp_path / "lidar" / "training" / "depth" / "000000.png")
    rows = np.flatnonzero((sparse > 0).any(axis=1))
    assert 3 <= len(rows) < 64 and (sparse[np.setdiff1d(np.arange(64), rows)] == 0).all()
    kept = sparse > 0
    assert np.abs(sparse[kept] - scene.depth[kept]).max() <= 1 / 512 + 1e-6
    assert scene.depth[kept].max() <= LIDAR_RANGE_M
    with pytest.raises(ValueError, match="depth_pattern"):
        generate_dataset(tmp_path / "x", preset="synth-kitti", train=1, val=0, test=0, depth=True, depth_pattern="x")
