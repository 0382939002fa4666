"""taskweight predict / compare: files written, boxes mapped back to the original pixels,
unreadable images reported, the Fig. 5 grid's panels, the TensorBoard images of training."""

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
from taskweight.errors import DataFormatError
from taskweight.predict import load_run, predict_image, predict_paths, preprocess, read_image, to_original


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
    assert [e.step for e in shown] == [1, 2]  # every epoch
    assert (shown[0].width, shown[0].height) == (192, 4 * 64)  # tensorboard_images = 4, one below the other
