"""Depth ground truth beyond KITTI (issue 15): Cityscapes disparity + camera files and WoodScape's
user-brought depth maps.

Checked here:

- Cityscapes disparity decoding against hand-made PNG + camera JSON files (depth computed by hand:
  baseline · fx / ((p − 1) / 256)), p = 0 and p = 1 (d = 0, infinitely far) as no measurement,
  metric values kept when the loader resizes (nearest), a sample without a disparity PNG not
  labelled for depth and counted (``with_depth``, a warning when a split has no depth at all);
- the errors name the file: missing camera JSON, 8-bit disparity PNG, size mismatch, malformed
  JSON (with the parser's line), missing / non-positive baseline or fx; ``on_error="skip"`` lists them;
- WoodScape depth read from ``depth/NAME.png`` (KITTI uint16 format), by hand, and its errors;
- round trips: synth-cityscapes renderer depth → disparity PNG → loader depth equals the renderer's
  depth to the derived quantisation bound \\|1/Z' − 1/Z\\| ≤ 1 / (512 · B · fx); synth-woodscape
  fisheye depth → KITTI PNG → loader within 1/512 m, and it is z along the optical axis, not range;
- ``tasks: [det, seg, depth]`` trains on synth-cityscapes data (the config → loader hook-up).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskweight.build import open_split
from taskweight.config import load_config
from taskweight.data import open_dataset
from taskweight.data.depth import (
    KITTI_DEPTH_MAX,
    StereoCalibration,
    cityscapes_camera,
    decode_cityscapes_disparity,
    encode_cityscapes_disparity,
    read_cityscapes_camera,
    read_kitti_depth,
)
from taskweight.errors import DataFormatError
from taskweight.synth import generate_dataset
from taskweight.synth import geometry as g
from taskweight.synth.cityscapes_writer import BASELINE_M
from taskweight.synth.fisheye import Fisheye
from taskweight.synth.instances import render_with_instances
from taskweight.synth.scene import render_scene
from taskweight.synth.woodscape_writer import render_fisheye
from taskweight.trainer import Trainer

THREE = ["det", "seg", "depth"]
H, W = 4, 6
SEED = 3
CS_SIZE = (64, 128)

# ----------------------------------------------------------------------------- hand-made Cityscapes files
CAMERA = {  # the real files' structure (values of a real aachen frame, baseline and fx changed)
    "extrinsic": {"baseline": 0.2, "pitch": 0.038, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": -0.0195, "z": 1.18},
    "intrinsic": {"fx": 100.0, "fy": 100.3, "u0": 3.0, "v0": 2.0},
}


def _cs(
    root: Path,
    frame: str,
    *,
    disparity: np.ndarray | None = None,
    camera: str | dict | None = None,
    size: tuple[int, int] = (H, W),
) -> Path:
    """A Cityscapes sample ``train/c/c_000000_{frame}`` (image + labelIds, optional disparity / camera)."""
    stem = f"c_000000_{frame}"
    for top in ("leftImg8bit", "gtFine", "disparity", "camera"):
        (root / top / "train" / "c").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 80, np.uint8)).save(root / f"leftImg8bit/train/c/{stem}_leftImg8bit.png")
    Image.fromarray(np.full(size, 7, np.uint8)).save(root / f"gtFine/train/c/{stem}_gtFine_labelIds.png")
    if disparity is not None:
        Image.fromarray(disparity).save(root / f"disparity/train/c/{stem}_disparity.png")
    path = root / f"camera/train/c/{stem}_camera.json"
    if camera is not None:
        path.write_text(camera if isinstance(camera, str) else json.dumps(camera, indent=4))
    return path


def _open(root: Path, **options):
    return open_dataset("cityscapes", root, "all", labels="png", depth=True, **options)


def test_disparity_decodes_by_hand(tmp_path: Path) -> None:
    p = np.array(
        [[0, 1, 257, 513, 2, 65535], [129, 0, 0, 0, 0, 0], [0] * 6, [0] * 6], np.uint16
    )  # d = invalid, 0, 1, 2, 1/256, 65534/256; 0.5
    _cs(tmp_path, "000001", disparity=p, camera=CAMERA)
    data = _open(tmp_path)
    item = data[0]
    assert item["has_depth"] and item["depth"].dtype == torch.float32
    bf = 0.2 * 100.0  # baseline · fx = 20 metre-pixels
    expected = np.zeros((H, W), np.float32)
    expected[0, 2:] = [bf / 1.0, bf / 2.0, bf * 256.0, bf * 256.0 / 65534.0]  # 20, 10, 5120, 0.0781...
    expected[1, 0] = bf / 0.5  # p = 129: d = 128 / 256
    np.testing.assert_allclose(item["depth"].numpy(), expected, rtol=1e-6)
    assert item["depth"][0, 0] == 0 and item["depth"][0, 1] == 0  # p = 0 invalid, p = 1: d = 0, no measurement
    np.testing.assert_array_equal(decode_cityscapes_disparity(p[0]), [0, 0, 1, 2, 1 / 256, 65534 / 256])
    assert read_cityscapes_camera(tmp_path / "camera/train/c/c_000000_000001_camera.json") == StereoCalibration(
        0.2, 100
    )
    assert "with_depth=1" in repr(data)

    resized = _open(tmp_path, image_size=(4, 3))[0]["depth"].numpy()  # nearest (columns 1, 3, 5), metric
    np.testing.assert_allclose(resized, expected[:, 1::2], rtol=1e-6)


def test_encoding_limits_and_the_camera_document() -> None:
    cal = StereoCalibration(0.2, 100.0)  # B · fx = 20
    z = np.array([0.0, np.nan, 20.0, 20.0 * 256, 20.0 * 1024, 20.0 / 256, 20.0 / 255])
    p = encode_cityscapes_disparity(z, cal)
    # no depth → 0; d = 1 → p = 257; d = 1/256 → p = 2; d = 1/1024 rounds to 0 (it would decode as
    # d = 0, infinitely far) → 0; d = 256 → p = 65537 > 65535 (too near) → 0; d = 255 → p = 65281
    np.testing.assert_array_equal(p, [0, 0, 257, 2, 0, 0, 65281])
    doc = cityscapes_camera(0.22, 74.0, 74.0, 64.0, 27.0, z=1.6)
    assert set(doc) == {"extrinsic", "intrinsic"}
    assert set(doc["extrinsic"]) == {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}
    assert set(doc["intrinsic"]) == {"fx", "fy", "u0", "v0"}


def test_a_sample_without_disparity_is_not_labelled_for_depth(tmp_path: Path) -> None:
    _cs(tmp_path, "000001", disparity=np.full((H, W), 257, np.uint16), camera=CAMERA)
    _cs(tmp_path, "000002")
    data = _open(tmp_path)
    assert [data[i]["has_depth"] for i in range(2)] == [True, False] and "depth" not in data[1]
    assert "with_depth=1" in repr(data)
    nothing = tmp_path / "none"
    _cs(nothing, "000003")
    with pytest.warns(UserWarning, match=r"none of the 1 samples has a depth map \(disparity/"):
        _open(nothing)
    assert "depth" not in open_dataset("cityscapes", tmp_path, "all", labels="png")[0]  # depth only when asked


@pytest.mark.parametrize(
    ("case", "blamed", "line", "message"),
    [
        ("no camera", "camera", None, "camera calibration not found: needed to turn c_000000_000001_disparity.png"),
        ("8-bit", "disparity", None, "16-bit single-channel PNG, got mode L"),
        ("size", "disparity", None, "disparity map is 5x4 (WxH) but image c_000000_000001_leftImg8bit.png is 6x4"),
        ("bad json", "camera", 3, "malformed JSON"),
        ("no baseline", "camera", None, "'extrinsic.baseline' must be a positive number, got None"),
        ("zero fx", "camera", None, "'intrinsic.fx' must be a positive number, got 0"),
    ],
)
def test_errors_name_the_file(tmp_path: Path, case: str, blamed: str, line: int | None, message: str) -> None:
    disparity: np.ndarray = np.full((H, W), 300, np.uint16)
    camera: str | dict | None = CAMERA
    if case == "no camera":
        camera = None
    elif case == "8-bit":
        disparity = np.full((H, W), 30, np.uint8)
    elif case == "size":
        disparity = np.full((H, W - 1), 300, np.uint16)
    elif case == "bad json":
        camera = '{\n  "extrinsic": {"baseline": 0.2},\n  "intrinsic": {"fx": 100,}\n}\n'
    elif case == "no baseline":
        camera = {"extrinsic": {}, "intrinsic": {"fx": 100}}
    elif case == "zero fx":
        camera = {"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": 0}}
    camera_path = _cs(tmp_path, "000001", disparity=disparity, camera=camera)
    _cs(tmp_path, "000002", disparity=np.full((H, W), 300, np.uint16), camera=CAMERA)
    path = camera_path if blamed == "camera" else tmp_path / "disparity/train/c/c_000000_000001_disparity.png"
    with pytest.raises(DataFormatError) as info:
        _open(tmp_path)
    assert info.value.path == path and info.value.line == line and message in info.value.reason
    with pytest.warns(UserWarning, match="skipped 1 bad sample"):
        data = _open(tmp_path, on_error="skip")
    assert data.names == ["train/c/c_000000_000002"]
    assert data.skipped[0].file == str(path) and data.skipped[0].line == line


# ----------------------------------------------------------------------------- WoodScape user depth
def _ws(root: Path, name: str, depth: np.ndarray | None, *, nested: bool = False) -> None:
    for sub in ("rgb_images", "box_2d_annotations", "depth/depth" if nested else "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 50, np.uint8)).save(root / "rgb_images" / f"{name}.png")
    (root / "box_2d_annotations" / f"{name}.txt").write_text("vehicles,0,1,1,4,3\n")
    if depth is not None:
        Image.fromarray(depth).save(root / ("depth/depth" if nested else "depth") / f"{name}.png")


def test_woodscape_reads_user_depth_by_name(tmp_path: Path) -> None:
    pixels = np.zeros((H, W), np.uint16)
    pixels[0, :4] = [0, 1, 256, 65535]  # none, 1/256 m, 1 m, 255.996 m
    _ws(tmp_path, "00000_FV", pixels)
    _ws(tmp_path, "00000_RV", None)
    data = open_dataset("woodscape", tmp_path, "all", depth=True)
    first, second = data[0], data[1]
    assert first["name"] == "00000_FV" and first["has_depth"]
    expected = np.zeros((H, W), np.float32)
    expected[0, :4] = [0.0, 1 / 256, 1.0, 65535 / 256]
    np.testing.assert_array_equal(first["depth"].numpy(), expected)
    assert not second["has_depth"] and "with_depth=1" in repr(data)
    assert "depth" not in open_dataset("woodscape", tmp_path, "all")[0]

    nested = tmp_path / "nested"
    _ws(nested, "00000_FV", pixels, nested=True)  # the public release's extra folder level
    np.testing.assert_array_equal(open_dataset("woodscape", nested, "all", depth=True)[0]["depth"].numpy(), expected)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((H, W), np.uint8), "16-bit single-channel PNG, got mode L"),
        (np.zeros((H + 1, W), np.uint16), "depth map is 6x5 (WxH) but image 00000_FV.png is 6x4"),
    ],
)
def test_woodscape_depth_errors_name_the_file(tmp_path: Path, pixels: np.ndarray, message: str) -> None:
    _ws(tmp_path, "00000_FV", pixels)
    _ws(tmp_path, "00000_RV", np.zeros((H, W), np.uint16))
    with pytest.raises(DataFormatError) as info:
        open_dataset("woodscape", tmp_path, "all", depth=True)
    assert info.value.path == tmp_path / "depth/00000_FV.png" and message in info.value.reason
    with pytest.warns(UserWarning, match="skipped 1 bad sample"):
        assert open_dataset("woodscape", tmp_path, "all", depth=True, on_error="skip").names == ["00000_RV"]


# ----------------------------------------------------------------------------- synthetic round trips
@pytest.fixture(scope="module")
def cs_depth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cs-depth") / "synth"
    generate_dataset(root, preset="synth-cityscapes", train=6, val=2, test=2, seed=SEED, size=CS_SIZE, depth=True)
    return root


def test_synth_cityscapes_disparity_round_trip(cs_depth: Path) -> None:
    """Encoding rounds d = B·fx/Z to the nearest 1/256 pixel, so the decoded d' = B·fx/Z' has
    |d' − d| ≤ 1/512, i.e. |1/Z' − 1/Z| = |d' − d| / (B·fx) ≤ 1 / (512·B·fx) (plus float32 rounding)."""
    data = open_dataset("cityscapes", cs_depth, "train", split_mode="official", depth=True)
    assert len(data) == 6
    params = json.loads((cs_depth / "synth.json").read_text())["depth"]
    assert params["baseline_m"] == BASELINE_M and params["pattern"] == "dense"  # what the bench's reuse check reads
    checked = 0
    for i in range(len(data)):
        item = data[i]
        scene = render_scene(i, "train", SEED, CS_SIZE, depth=True)
        assert scene.depth is not None and item["has_depth"]
        camera = json.loads(
            (cs_depth / f"camera/train/synthcity/{item['name'].split('/')[-1]}_camera.json").read_text()
        )
        assert camera["extrinsic"]["baseline"] == BASELINE_M and camera["intrinsic"]["fx"] == scene.camera.f
        assert camera["intrinsic"]["u0"] == scene.camera.cx and camera["extrinsic"]["z"] == scene.camera.height
        bf = BASELINE_M * scene.camera.f
        loaded = item["depth"].numpy().astype(np.float64)
        z = scene.depth
        valid = (z > 0) & (np.round(256 * bf / np.where(z > 0, z, 1)) >= 1)  # d rounds to >= 1/256 px
        assert (loaded[~valid] == 0).all() and (loaded[valid] > 0).all()
        assert (loaded[scene.semantic_ids == g.SKY] == 0).all()
        err = np.abs(1 / loaded[valid] - 1 / z[valid])
        assert (err <= 1 / (512 * bf) + 1e-6 / z[valid]).all()
        assert err.max() > 1 / (512 * bf) / 4  # the bound is tight: the quantisation is visible
        checked += int(valid.sum())
    assert checked > 0.5 * 6 * CS_SIZE[0] * CS_SIZE[1]  # dense: every pixel but the sky


@pytest.fixture(scope="module")
def ws_depth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws-depth") / "synth"
    generate_dataset(root, preset="synth-woodscape", train=3, val=1, test=0, seed=SEED, size=(48, 64), depth=True)
    return root


def test_synth_woodscape_depth_round_trip_is_z_along_the_axis(ws_depth: Path) -> None:
    data = open_dataset("woodscape", ws_depth, "train", depth=True)
    assert data.names == ["00000_FV", "00000_RV", "00000_MVL"]
    fish = Fisheye.for_size((48, 64))
    rays = fish.rays()
    for i in range(len(data)):
        item = data[i]
        depth = render_fisheye(i, "train", SEED, (48, 64), depth=True)["depth"]
        on_disk = read_kitti_depth(ws_depth / "depth" / f"{item['name']}.png")
        np.testing.assert_array_equal(item["depth"].numpy(), on_disk)
        valid = (depth > 0) & (depth <= KITTI_DEPTH_MAX)
        assert (on_disk[~valid] == 0).all() and valid.mean() > 0.5
        assert np.abs(on_disk[valid] - depth[valid]).max() <= 1 / 512 + 1e-6  # KITTI: 1/256 m steps
        # road pixels: the ray (dx, dy, dz) meets the ground Y = h at z = h · dz / dy; range = h / dy
        height = render_with_instances(i, "train", SEED, (128, 128)).scene.camera.height
        ids = render_fisheye(i, "train", SEED, (48, 64))["cityscapes_ids"]
        road = (ids == g.ROAD) & valid & (rays[..., 1] > 0.05)
        off_axis = road & (rays[..., 2] < np.cos(np.radians(25)))
        assert off_axis.sum() > 20
        z_ray = height * rays[..., 2] / rays[..., 1]
        range_ray = height / rays[..., 1]
        assert np.median(np.abs(depth[road] / z_ray[road] - 1)) < 0.03
        assert np.median(depth[off_axis] / range_ray[off_axis]) < 0.91  # not the range: cos 25° = 0.906


def test_depth_pattern_lidar_is_synth_kitti_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="depth_pattern 'lidar' is only supported by synth-kitti"):
        generate_dataset(
            tmp_path / "x", preset="synth-cityscapes", train=1, val=0, test=0, depth=True, depth_pattern="lidar"
        )


def test_tasks_with_depth_open_woodscape_depth(ws_depth: Path) -> None:
    config = load_config(
        "tiny",
        overrides={"data": {"format": "woodscape", "root": str(ws_depth), "image_size": [32, 64]}, "tasks": THREE},
    )
    item = open_split(config, "val", train=False)[0]
    assert item["has_depth"] and item["depth"].shape == (32, 64)


def test_three_tasks_train_on_synth_cityscapes(tmp_path: Path, cs_depth: Path) -> None:
    config = load_config(
        "tiny",
        overrides={
            "data": {"format": "cityscapes", "root": str(cs_depth), "image_size": [64, 128]},
            "tasks": THREE,
            "epochs": 1,
            "batch_size": 4,
            "precision": "fp32",
        },
    )
    train = open_split(config, "train", train=True)
    assert all(train[i]["has_depth"] for i in range(len(train)))
    result = Trainer(config, tmp_path / "run", show_progress=False).fit()
    final = result.metrics["final"]
    assert {"AbsRel", "RMSE", "delta1"} <= set(final) and 0 <= final["delta1"] <= 1
    assert np.isfinite(result.history[-1]["train_loss_depth"])
    assert set(result.metrics["final_weights"]) == set(THREE)


# ------------------------------------------------------------------ KITTI depth completion, object images
def _devkit(root: Path, rand: str, mapping: str) -> None:
    folder = root / "devkit" / "mapping"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_rand.txt").write_text(rand)
    (folder / "train_mapping.txt").write_text(mapping)


def test_kitti_object_images_take_depth_from_the_depth_completion_release(tmp_path: Path) -> None:
    """The devkit's train_rand.txt (image i → 1-based line) and train_mapping.txt (DATE DRIVE FRAME) pair
    each object image with its raw frame; the ground truth lies in DRIVE/proj_depth/groundtruth/image_02."""
    root = tmp_path / "kitti"
    generate_dataset(root, train=2, val=1, test=1, seed=3, size=(48, 160))  # images 000000 … 000003, no depth
    names = sorted(p.stem for p in (root / "training" / "image_2").glob("*.png"))
    assert names[:3] == ["000000", "000001", "000002"]
    drive = "2011_09_26_drive_0005_sync"
    # image 0 → line 3, image 1 → line 1, image 2 → line 2 (whose frame has no map), image 3 → not in the file
    _devkit(
        root, "3,1,2", f"2011_09_26 {drive} 0000000109\n2011_09_26 {drive} 0000000110\n2011_09_26 {drive} 0000000007\n"
    )
    height, width = 48, 160
    truth = np.zeros((height, width), dtype=np.uint16)
    truth[10, 20], truth[30, 100] = 256 * 5 + 128, 256 * 40  # 5.5 m and 40 m, the rest unmeasured
    completion = tmp_path / "data_depth_annotated"
    gt = completion / "train" / drive / "proj_depth" / "groundtruth" / "image_02"
    gt.mkdir(parents=True)
    Image.fromarray(truth).save(gt / "0000000007.png")  # image 0's frame
    Image.fromarray(2 * truth).save(gt / "0000000109.png")  # image 1's frame
    ds = open_dataset("kitti", root, "all", depth=True, depth_root=str(completion))
    by_name = {s.name: s for s in ds.samples}
    assert by_name["000000"].info["depth"] == gt / "0000000007.png"
    assert by_name["000001"].info["depth"] == gt / "0000000109.png"
    assert by_name["000002"].info["depth"] is None and by_name["000003"].info["depth"] is None
    item = ds[names.index("000000")]
    depth = item["depth"].numpy()
    assert depth[10, 20] == pytest.approx(5.5) and depth[30, 100] == pytest.approx(40.0)
    assert (depth > 0).sum() == 2
    # a map of the wrong size names its file; broken devkit files name theirs, with the line
    Image.fromarray(np.zeros((10, 10), dtype=np.uint16)).save(gt / "0000000109.png")
    with pytest.raises(DataFormatError, match="0000000109.png"):
        open_dataset("kitti", root, "all", depth=True, depth_root=str(completion))
    _devkit(root, "1,1,x", "2011_09_26 a 1\n")
    with pytest.raises(DataFormatError, match=r"train_rand.txt:1: entry 3 is not an integer"):
        open_dataset("kitti", root, "all", depth=True, depth_root=str(completion))
    _devkit(root, "1,2", "2011_09_26 a 1\n2011_09_26 b\n")
    with pytest.raises(DataFormatError, match=r"train_mapping.txt:2: expected 'DATE DRIVE FRAME'"):
        open_dataset("kitti", root, "all", depth=True, depth_root=str(completion))
    _devkit(root, "1,5", "2011_09_26 a 1\n")
    with pytest.raises(DataFormatError, match="entry 2 names line 5 of train_mapping.txt, which has 1"):
        open_dataset("kitti", root, "all", depth=True, depth_root=str(completion))
    with pytest.raises(DataFormatError, match="train_rand.txt.*mapping file not found"):
        open_dataset("kitti", root, "all", depth=True, depth_root=str(completion), depth_mapping=str(tmp_path))
