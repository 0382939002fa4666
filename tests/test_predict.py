"""taskweight predict / compare: files written, boxes mapped back to the original pixels,
unreadable images reported, the Fig. 5 grid's panels, the TensorBoard images of training; a run
with depth: its depth PNGs decode to the network's depth, its depth pictures follow the colormap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from taskweight.cli import app
from taskweight.compare import GAP, TITLE_HEIGHT, compare_runs, grid_geometry
from taskweight.data.depth import KITTI_DEPTH_SCALE, read_kitti_depth
from taskweight.errors import DataFormatError
from taskweight.predict import (
    DEPTH_COLORMAP,
    DEPTH_RANGE_M,
    NO_DEPTH_COLOR,
    depth_colors,
    load_run,
    predict_image,
    predict_paths,
    preprocess,
    read_image,
    to_original,
)


@pytest.fixture()
def trained_run(tiny_run: Path) -> Path:
    return tiny_run


def _val_images(tiny_kitti: Path, count: int) -> list[Path]:
    names = (tiny_kitti / "splits" / "val.txt").read_text().split()[:count]
    return [tiny_kitti / "training" / "image_2" / f"{n.removesuffix('.png')}.png" for n in names]


def test_to_original_inverts_the_training_stretch_by_hand() -> None:
    # network input 64×192 (h×w); the original image is 128×576: x × 576/192 = 3, y × 128/64 = 2
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 192.0, 64.0], [1.5, 2.25, 3.0, 4.5]])
    mapped = to_original(boxes, (64, 192), (128, 576))
    expected = torch.tensor([[30.0, 40.0, 150.0, 80.0], [0.0, 0.0, 576.0, 128.0], [4.5, 4.5, 9.0, 9.0]])
    assert torch.equal(mapped, expected)
    # a 100×150 original (taller aspect than the network's): x × 150/192 = 0.78125, y × 100/64 = 1.5625
    mapped = to_original(torch.tensor([[64.0, 32.0, 128.0, 64.0]]), (64, 192), (100, 150))
    assert torch.equal(mapped, torch.tensor([[50.0, 50.0, 100.0, 100.0]]))


def test_predict_on_another_size_maps_the_network_boxes_back_exactly(trained_run: Path, tiny_kitti: Path) -> None:
    run = load_run(trained_run)
    assert run.input_size == (64, 192)
    image = read_image(_val_images(tiny_kitti, 1)[0])  # 64×192
    big = torch.nn.functional.interpolate(image[None].float(), size=(128, 576), mode="nearest")[0].to(torch.uint8)
    prediction = predict_image(run, big, score_threshold=0.001)
    # what the network itself finds on the preprocessed (stretched) input, in its own pixels
    x = preprocess(big, (64, 192)).contiguous(memory_format=torch.channels_last)  # as predict_image lays it out
    net_dets, net_seg = run.model.predict(x, score_threshold=0.001, nms_iou=0.5)
    assert len(net_dets[0].boxes) > 0, "the tiny run should find something at threshold 0.001"
    assert prediction.size == (128, 576)
    assert torch.equal(prediction.boxes, net_dets[0].boxes * torch.tensor([3.0, 2.0, 3.0, 2.0]))
    assert torch.equal(prediction.scores, net_dets[0].scores)
    assert prediction.mask.shape == (128, 576)
    # the mask at original size agrees with the network-size map at the centre of every 2×3 block
    agree = (prediction.mask[::2, 1::3] == net_seg[0].numpy()).mean()
    assert agree > 0.95


def test_predict_writes_every_file_and_reports_a_corrupt_image(
    trained_run: Path, tiny_kitti: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    good = _val_images(tiny_kitti, 3)
    for path in good:
        (images / path.name).write_bytes(path.read_bytes())
    (images / "broken.png").write_bytes(good[0].read_bytes()[:200])  # truncated PNG
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["predict", str(trained_run), "--images", str(images), "--out", str(out), "--score-threshold", "0.001"]
    )
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output and "1 of 4 image(s) could not be read" in result.output
    for path in good:
        stem = path.stem
        for name in (f"{stem}_overlay.png", f"{stem}_mask.png", f"{stem}.txt", f"{stem}.json"):
            assert (out / name).is_file(), name
        with Image.open(out / f"{stem}_overlay.png") as overlay:
            assert overlay.size == (192, 64) and overlay.mode == "RGB"
        with Image.open(out / f"{stem}_mask.png") as mask:
            assert mask.mode == "P" and set(np.unique(np.asarray(mask))) <= {0, 1, 2}
        record = json.loads((out / f"{stem}.json").read_text())
        lines = (out / f"{stem}.txt").read_text().splitlines()
        assert len(lines) == len(record["detections"])
        for line, det in zip(lines, record["detections"], strict=True):
            fields = line.split()
            assert len(fields) == 16 and fields[0] == det["class"].capitalize()
            assert [float(v) for v in fields[4:8]] == pytest.approx(det["box"], abs=0.006)
    assert not list(out.glob("broken*"))
    assert not list(out.glob("*depth*"))  # a run without depth writes what it always did
    assert all("depth_m" not in json.loads(f.read_text()) for f in out.glob("*.json"))


def test_predict_fails_when_no_image_can_be_read(trained_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    run = load_run(trained_run)
    with pytest.raises(DataFormatError, match=r"bad\.png.*none of the 1 image"):
        predict_paths(run, [bad], tmp_path / "out")
    result = CliRunner().invoke(app, ["predict", str(trained_run), "--images", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "bad.png" in result.output


def test_compare_writes_the_fig5_grid(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "fig5.png"
    result = CliRunner().invoke(
        app, ["compare", str(trained_run), str(trained_run), "--split", "test", "--n", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["columns"] == ["ground truth", "equal (equal)", "equal (equal)"]
    assert report["panels"] == 3 * 3 and len(report["images"]) == 3
    assert report["layout"]["panel_size"] == [64, 192]
    assert "depth_rows" not in report and all("ground_truth_depth" not in i for i in report["images"])
    with Image.open(out) as grid:
        # 3 columns of 192 px and 3 rows of 64 px, GAP between and around, a title strip on top
        assert grid.size == (GAP + 3 * (192 + GAP), TITLE_HEIGHT + 3 * (64 + GAP) + GAP) == (592, 226)
        pixels = np.asarray(grid)
    geometry = grid_geometry(3, 3, (64, 192))
    for x, y in geometry["corners"]:  # every panel holds a picture, the gaps are background
        panel = pixels[y : y + 64, x : x + 192]
        assert panel.std() > 5
        assert (pixels[y - 1, x : x + 192] == 255).all()


def test_compare_report_lists_the_chosen_images(trained_run: Path, tmp_path: Path) -> None:
    report = compare_runs([trained_run], tmp_path / "g.png", split="val", n=100, panel_width=96)
    assert len(report["images"]) == 8  # the whole val split when n is larger
    assert report["layout"]["panel_size"] == [32, 96]


def test_training_draws_validation_predictions_into_tensorboard(trained_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "val/predictions" in events.Tags()["images"]
    shown = events.Images("val/predictions")
    assert [e.step for e in shown] == [2, 5]  # every epoch, at its last step (tiny: 3 steps an epoch)
    assert (shown[0].width, shown[0].height) == (192, 4 * 64)  # tensorboard_images = 4, one below the other


# ------------------------------------------------------------------------------------ depth
def test_depth_colors_follow_the_documented_colormap_and_range() -> None:
    import matplotlib

    cmap = matplotlib.colormaps[DEPTH_COLORMAP]
    near, far = DEPTH_RANGE_M

    def rgb(t: float) -> list[int]:
        return [round(255 * c) for c in cmap(t)[:3]]

    depth = np.array([[near, far, np.sqrt(near * far)], [0.5 * near, 2 * far, 0.0]])  # mid: log scale
    colors = depth_colors(depth)
    assert colors.dtype == np.uint8 and colors.shape == (2, 3, 3)
    assert colors[0, 0].tolist() == rgb(0.0) and colors[0, 1].tolist() == rgb(1.0)
    assert colors[0, 2].tolist() == rgb(0.5)
    assert colors[1, 0].tolist() == rgb(0.0) and colors[1, 1].tolist() == rgb(1.0)  # clipped to the range
    assert colors[1, 2].tolist() == list(NO_DEPTH_COLOR)
    assert sum(rgb(0.0)) > sum(rgb(1.0))  # near is brighter than far


def _network_depth(run, image: torch.Tensor) -> np.ndarray:
    """The network's own depth decode (``predict_tasks``) on the stretched input: 1×h×w metres."""
    x = preprocess(image, run.input_size).contiguous(memory_format=torch.channels_last)
    return run.model.predict_tasks(x)["depth"][0].numpy()


def test_predict_writes_depth_that_decodes_to_the_networks_depth(
    tiny_depth_run: Path, tiny_kitti_depth: Path, tmp_path: Path
) -> None:
    run = load_run(tiny_depth_run)
    assert run.has_depth and run.input_size == (64, 192)
    path = _val_images(tiny_kitti_depth, 1)[0]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(tiny_depth_run), "--images", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    stem = path.stem
    for name in (f"{stem}_overlay.png", f"{stem}_mask.png", f"{stem}.txt", f"{stem}.json"):
        assert (out / name).is_file(), name
    # the KITTI depth PNG: uint16, metres × 256; at the network's own size no resize happens
    with Image.open(out / f"{stem}_depth.png") as png:
        assert png.mode in ("I;16", "I") and png.size == (192, 64)
    decoded = read_kitti_depth(out / f"{stem}_depth.png")
    want = _network_depth(run, read_image(path))
    assert want.min() > 0.1 and want.max() < 200  # the trained head predicts metres a KITTI PNG holds
    assert np.abs(decoded - want).max() <= 0.5 / KITTI_DEPTH_SCALE + 1e-4  # the uint16 quantisation
    # the colour picture is the colormap of the predicted depth
    with Image.open(out / f"{stem}_depth_color.png") as color:
        assert color.mode == "RGB" and color.size == (192, 64)
        pixels = np.asarray(color)
    prediction = predict_image(run, read_image(path))
    assert prediction.depth is not None
    assert np.array_equal(pixels, depth_colors(prediction.depth))
    record = json.loads((out / f"{stem}.json").read_text())
    assert record["depth_m"]["min"] == pytest.approx(float(want.min()), rel=1e-5)
    assert record["depth_m"]["max"] == pytest.approx(float(want.max()), rel=1e-5)
    # --format kitti alone: no picture at all
    only = tmp_path / "only"
    predict_paths(run, [path], only, formats=["kitti"])
    assert sorted(p.name for p in only.iterdir()) == [f"{stem}.txt"]


def test_predict_maps_depth_to_the_original_pixels(tiny_depth_run: Path, tiny_kitti_depth: Path) -> None:
    run = load_run(tiny_depth_run)
    image = read_image(_val_images(tiny_kitti_depth, 1)[0])  # 64×192
    big = torch.nn.functional.interpolate(image[None].float(), size=(128, 576), mode="nearest")[0].to(torch.uint8)
    prediction = predict_image(run, big)
    assert prediction.depth is not None and prediction.depth.shape == (128, 576)
    net = _network_depth(run, big)  # 64×192: each network pixel covers a 2×3 block of the original
    centre = prediction.depth[::2, 1::3]  # the original pixel nearest each network pixel's centre
    assert np.median(np.abs(centre - net) / net) < 0.02


def test_compare_draws_a_depth_row_per_image(tiny_depth_run: Path, tiny_run: Path, tmp_path: Path) -> None:
    from taskweight.compare import grid_geometry as geometry_of

    out = tmp_path / "fig5.png"
    report = compare_runs([tiny_depth_run, tiny_run], out, split="val", n=2)
    assert report["depth_rows"] is True
    assert report["layout"]["rows"] == 4 and report["layout"]["cols"] == 3 and report["panels"] == 12
    assert all(i["ground_truth_depth"] for i in report["images"])
    geometry = geometry_of(4, 3, (64, 192))
    with Image.open(out) as grid:
        assert grid.size == (geometry["size"][1], geometry["size"][0])
        pixels = np.asarray(grid)
    depth_run = load_run(tiny_depth_run)
    from taskweight.data import open_dataset

    data = open_dataset("kitti", depth_run.config.data.root, "val", depth=True)
    for row, image_record in enumerate(report["images"]):
        item = data[image_record["index"]]
        image = item["image"]  # uint8, as decoded
        corners = geometry["corners"][(2 * row + 1) * 3 : (2 * row + 2) * 3]  # the image's depth row
        (gx, gy), (ax, ay), (bx, by) = corners
        assert np.array_equal(pixels[gy : gy + 64, gx : gx + 192], depth_colors(item["depth"]))
        prediction = predict_image(depth_run, image, score_threshold=0.3)
        assert np.array_equal(pixels[ay : ay + 64, ax : ax + 192], depth_colors(prediction.depth))
        assert (pixels[by : by + 64, bx : bx + 192] == np.asarray(NO_DEPTH_COLOR, np.uint8)).all()  # no depth head


def test_training_draws_depth_beside_the_validation_overlays(tiny_depth_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_depth_run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    shown = events.Images("val/predictions")
    assert (shown[0].width, shown[0].height) == (2 * 192, 4 * 64)  # overlay | depth, four images
