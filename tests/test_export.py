"""taskweight export: the ONNX model's outputs equal PyTorch's on real images, the versions
JSON is written, the post-processed graph and INT8 quantisation work; a run with depth exports
a depth output that equals PyTorch's and scores as PyTorch does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from taskweight.cli import app
from taskweight.export import (
    DEFAULT_TOLERANCE,
    RawHeads,
    align_detections,
    export_run,
    onnx_forward,
    session,
    split_images,
)
from taskweight.predict import load_run


def test_onnx_outputs_match_pytorch_on_real_images(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(
        app, ["export", str(tiny_run), "--format", "onnx", "--out", str(out), "--dynamic-batch", "--check-images", "6"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "model.json").read_text())
    check = report["check"]
    print(f"ONNX vs PyTorch on {check['images']} val images: max abs diff {check['max_abs_diff']}")
    assert check["images"] == 6 and check["max_abs_diff_overall"] <= 1e-3
    for key in ("torch", "exporter", "onnx", "onnxruntime", "onnxscript"):
        assert report["versions"][key] and report["versions"][key] != "not installed"
    assert report["opset"] == 18 and report["outputs"] == ["det", "seg"]
    assert "depth_output" not in report  # a run without depth exports what it always did
    assert report["input"]["shape"] == ["batch", 3, 64, 192]

    # independently of the command: a batch of 5 real val images through onnxruntime and PyTorch
    run = load_run(tiny_run, device="cpu", precision="fp32")
    images = split_images(run, "val", 5)
    got = onnx_forward(out)(images)
    with torch.no_grad():
        want = RawHeads(run.model.float().eval())(images)
    diffs = [float(np.abs(np.asarray(g) - w.numpy()).max()) for g, w in zip(got, want, strict=True)]
    print(f"batch of 5: max abs diff det {diffs[0]:.3g}, seg {diffs[1]:.3g}")
    assert max(diffs) <= 1e-3
    assert got[0].shape == tuple(want[0].shape) and got[1].shape == (5, 3, 64, 192)


def test_postprocessed_graph_gives_pytorchs_detections(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "post.onnx"
    report = export_run(tiny_run, out, postprocess=True, score_threshold=0.001, check_images=4)
    assert report["outputs"] == ["boxes", "scores", "labels", "seg"]
    assert report["check"]["max_abs_diff_overall"] <= 1e-3
    # the traced selection equals the model's own decode + NMS
    run = load_run(tiny_run, device="cpu", precision="fp32")
    image = split_images(run, "val", 1)
    threshold = report["postprocess"]["score_threshold"]
    got = [np.asarray(v) for v in session(out).run(None, {"image": image.numpy()})]
    dets, classes = run.model.predict(image, score_threshold=threshold, nms_iou=run.config.eval.nms_iou)
    want = [dets[0].boxes.numpy(), dets[0].scores.numpy(), dets[0].labels.numpy(), classes.numpy()]
    # the barely trained tiny run scores many boxes alike: pair each detection with its nearest counterpart
    (boxes, scores, labels, seg), (w_boxes, w_scores, w_labels, w_seg) = got, align_detections(got, want)
    assert len(boxes) == len(w_boxes) > 0
    print(f"post-processed graph vs model.predict: max abs diff boxes {np.abs(boxes - w_boxes).max():.3g}")
    assert np.abs(boxes - w_boxes).max() <= 1e-3 and np.abs(scores - w_scores).max() <= 1e-6
    assert np.array_equal(labels, w_labels)
    assert (seg == w_seg).mean() > 0.999


def test_int8_model_is_written_and_scored(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    report = export_run(tiny_run, out, int8=True, calibration_images=8, evaluate_split="test", check_images=2)
    assert (tmp_path / "model.int8.onnx").is_file()
    assert report["size_mb"]["int8"] < report["size_mb"]["fp32"]
    metrics = report["metrics"]
    assert set(metrics["variants"]) == {"pytorch_fp32", "onnx_fp32", "onnx_int8"}
    drop = metrics["drop_vs_pytorch_fp32"]
    print(f"metric drop vs PyTorch fp32: {drop}")
    assert abs(drop["onnx_fp32"]["mIoU"]) < 1e-3  # fp32 ONNX scores as PyTorch does
    assert json.loads((tmp_path / "model.json").read_text())["int8"]["calibration_images"] == 8


def test_bad_option_combinations_name_the_options(tiny_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", str(tiny_run), "--out", str(tmp_path / "m.onnx"), "--postprocess", "--dynamic-batch"]
    )
    assert result.exit_code == 2 and "--postprocess" in result.output
    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "m.onnx"), "--format", "tflite"])
    assert result.exit_code == 2 and "--format" in result.output


def test_detections_are_paired_across_runtimes_whatever_their_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.5000004, 0.4999996, 0.3], dtype=np.float32)
    labels = np.array([0, 1, 0])
    want = [boxes[[1, 2, 0]], scores[[1, 2, 0]], labels[[1, 2, 0]], np.zeros(1)]
    got = [boxes + 1e-6, scores, labels, np.zeros(1)]
    w_boxes, w_scores, w_labels, _ = align_detections(got, want)
    assert np.array_equal(w_labels, labels) and np.abs(w_boxes - got[0]).max() < 1e-5
    assert np.array_equal(w_scores, scores)
    fewer = [boxes[:2], scores[:2], labels[:2], np.zeros(1)]
    assert all(np.array_equal(a, b) for a, b in zip(align_detections(got, fewer), fewer, strict=True))


# ------------------------------------------------------------------------------------ depth
def test_a_depth_run_exports_a_depth_output_that_matches_pytorch(tiny_depth_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "three.onnx"
    result = CliRunner().invoke(
        app, ["export", str(tiny_depth_run), "--out", str(out), "--dynamic-batch", "--check-images", "4"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["outputs"] == ["det", "seg", "depth"] and "log" in report["depth_output"]
    assert set(report["check"]["max_abs_diff"]) == {"det", "seg", "depth"}
    assert report["check"]["max_abs_diff"]["depth"] <= DEFAULT_TOLERANCE
    # independently of the command: 5 real val images through onnxruntime and PyTorch
    run = load_run(tiny_depth_run, device="cpu", precision="fp32")
    images = split_images(run, "val", 5)
    got = onnx_forward(out)(images)
    assert [o.name for o in session(out).get_outputs()] == ["det", "seg", "depth"]
    depth = np.asarray(got[2])
    assert depth.shape == (5, 64, 192)
    with torch.no_grad():
        want = run.model.float().eval().predict_tasks(images)["depth"].numpy()  # metres
    # the graph gives log metres: within 1e-3 in log, so within 0.1 % in metres
    print(f"ONNX vs PyTorch depth: max abs log diff {np.abs(depth - np.log(want)).max():.3g}")
    assert np.abs(depth - np.log(want)).max() <= DEFAULT_TOLERANCE
    assert np.abs(np.exp(depth) / want - 1).max() <= 1.01e-3


def test_a_depth_runs_postprocessed_graph_gives_metres_and_its_onnx_scores_as_pytorch(
    tiny_depth_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "post.onnx"
    report = export_run(tiny_depth_run, out, postprocess=True, check_images=2)
    assert report["outputs"] == ["boxes", "scores", "labels", "seg", "depth"] and "metres" in report["depth_output"]
    run = load_run(tiny_depth_run, device="cpu", precision="fp32")
    image = split_images(run, "val", 1)
    got = session(out).run(None, {"image": image.numpy()})
    with torch.no_grad():
        want = run.model.float().eval().predict_tasks(image)["depth"].numpy()
    assert got[4].shape == (1, 64, 192)
    assert np.abs(got[4] / want - 1).max() <= 1e-3  # metres, to 0.1 %

    raw = tmp_path / "raw.onnx"
    metrics = export_run(tiny_depth_run, raw, evaluate_split="test", check_images=1)["metrics"]
    fp32 = metrics["variants"]["onnx_fp32"]
    assert {"AbsRel", "RMSE", "delta1"} <= set(fp32) and 0 <= fp32["delta1"] <= 1
    drop = metrics["drop_vs_pytorch_fp32"]["onnx_fp32"]
    print(f"ONNX fp32 vs PyTorch fp32, depth metric drop: {drop}")
    assert abs(drop["delta1"]) < 1e-3 and abs(drop["AbsRel"]) < 1e-3 and abs(drop["geometric_mean"]) < 1e-3
