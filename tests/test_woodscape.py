"""WoodScape loader: layout (flat and nested), CSV boxes, gtLabels mapping, splits and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskweight.classes import CAR, CYCLIST, PEDESTRIAN
from taskweight.data import open_dataset
from taskweight.errors import DataFormatError

H, W = 16, 24


def _write(
    root: Path,
    name: str,
    boxes: str | None = "",
    labels: np.ndarray | None = None,
    *,
    image: bool = True,
    nested: bool = False,
    size: tuple[int, int] = (H, W),
) -> None:
    img = root / ("rgb_images/rgb_images" if nested else "rgb_images")
    box = root / ("box_2d_annotations/box_2d_annotations" if nested else "box_2d_annotations")
    sem = root / ("semantic_annotations/semantic_annotations/gtLabels" if nested else "semantic_annotations/gtLabels")
    for d in (img, box, sem):
        d.mkdir(parents=True, exist_ok=True)
    if image:
        Image.fromarray(np.full((*size, 3), 50, np.uint8)).save(img / f"{name}.png")
    if boxes is not None:
        (box / f"{name}.txt").write_text(boxes)
    if labels is not None:
        Image.fromarray(labels.astype(np.uint8)).save(sem / f"{name}.png")


def test_boxes_mapping_and_nested_layout(tmp_path: Path) -> None:
    labels = np.tile(np.arange(10, dtype=np.uint8), (H, 3))[:, :W]
    text = (
        "vehicles,0,1,2,10,8\nperson,1,12,1,15,9\nbicycle,2,16,3,20,12\n"
        "traffic_sign,4,0,0,3,3\ntraffic_light,3,5,5,7,7\n"
    )
    for nested in (False, True):
        root = tmp_path / f"ws{nested}"
        _write(root, "00000_FV", text, labels, nested=nested)
        _write(root, "00000_RV", "", labels, nested=nested)  # an empty box file is valid
        ds = open_dataset("woodscape", root, "all")
        assert ds.names == ["00000_FV", "00000_RV"]
        item = ds[0]
        assert item["labels"].tolist() == [CAR, PEDESTRIAN, CYCLIST]
        assert item["boxes"].tolist() == [[1, 2, 10, 8], [12, 1, 15, 9], [16, 3, 20, 12]]
        assert item["seg"][0, :10].tolist() == [0, 1, 1, 2, 0, 0, 0, 0, 0, 0]  # road+lanemarks, curb -> sidewalk
        assert ds[1]["boxes"].shape == (0, 4) and ds[1]["has_det"]
    custom = open_dataset(
        "woodscape",
        tmp_path / "wsFalse",
        "all",
        mapping={"detection": {"traffic_light": "ignore", "bicycle": None}, "segmentation": {2: "void", 4: "ignore"}},
    )[0]
    assert custom["labels"].tolist() == [CAR, PEDESTRIAN] and custom["ignore_boxes"].tolist() == [[5, 5, 7, 7]]
    assert custom["seg"][0, :5].tolist() == [0, 1, 0, 2, 255]


def test_seeded_and_file_splits(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    names = [f"{i // 4:05d}_{cam}" for i, cam in zip(range(20), ["FV", "RV", "MVL", "MVR"] * 5, strict=True)]
    for n in names:
        _write(root, n, "vehicles,0,1,1,5,5\n", np.ones((H, W), np.uint8))
    parts = {s: open_dataset("woodscape", root, s).names for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert sorted(sum(parts.values(), [])) == sorted(names)
    assert open_dataset("woodscape", root, "train", split_seed=5).names != parts["train"]
    (root / "splits").mkdir()
    (root / "splits/train.txt").write_text("00000_FV\n00001_RV.png\n")
    assert open_dataset("woodscape", root, "train").names == ["00000_FV", "00001_RV"]
    with pytest.raises(DataFormatError, match="split file not found"):
        open_dataset("woodscape", root, "val")  # split files exist: no seeded fallback


def test_bad_input_raise_and_skip(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ok = np.ones((H, W), np.uint8)
    _write(root, "00000_FV", "vehicles,0,1,1,5,5\n", ok)
    _write(
        root,
        "00000_RV",
        "vehicles,0,1,1,5\nvehicles,0,a,1,5,5\nspaceship,9,1,1,5,5\nperson,1,5,1,5,5\nperson,1,1,1,30,5\n",
        ok,
    )
    _write(root, "00000_MVL", "vehicles,0,1,1,5,5\n", image=False)  # label without its image
    _write(root, "00000_MVR", None, None)  # image without labels
    _write(root, "00001_FV", "", np.ones((H + 1, W), np.uint8))  # size mismatch
    _write(root, "00001_RV", "", np.full((H, W), 12, np.uint8))  # unknown index (found when decoded)
    _write(root, "00001_MVL", "", ok)
    bad = root / "semantic_annotations/gtLabels/00001_MVL.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 10, (H, W)).astype(np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    _write(root, "00001_XX", "", ok)  # not a camera
    with pytest.raises(DataFormatError) as info:
        open_dataset("woodscape", root, "all")
    assert info.value.path == root / "box_2d_annotations/00000_MVL.txt"
    with pytest.warns(UserWarning, match="skipped 7 bad sample"):
        ds = open_dataset("woodscape", root, "all", on_error="skip")  # verify="crc": masks decoded at opening
    assert ds.names == ["00000_FV"]
    assert {s.id for s in ds.skipped} == {
        "00000_RV",
        "00000_MVL",
        "00000_MVR",
        "00001_FV",
        "00001_RV",
        "00001_MVL",
        "00001_XX",
    }
    csv = root / "box_2d_annotations/00000_RV.txt"
    lines = sorted(p.line for p in ds.problems if p.path == csv)
    assert lines == [1, 2, 3, 4, 5]
    text = "\n".join(str(p) for p in ds.problems)
    for fragment in (
        "expected 6 comma-separated",
        "must be numbers",
        "unknown class 'spaceship'",
        "x_max 5 <= x_min 5",
        "outside the 24x16 image",
        "label without its image",
        "image without labels",
        "24x17",
        "corrupt or truncated",
        "does not end with a camera",
        "unknown class index",
    ):
        assert fragment in text, fragment
    index = next(s for s in ds.skipped if s.id == "00001_RV")
    assert index.file == str(root / "semantic_annotations/gtLabels/00001_RV.png") and index.line is None
    assert "x=0, y=0) = 12" in index.problem
    with pytest.warns(UserWarning, match="skipped 5 bad sample"):  # headers only: the masks are decoded when loaded
        lazy = open_dataset("woodscape", root, "all", on_error="skip", verify="header")
    assert lazy.names == ["00000_FV", "00001_MVL", "00001_RV"]
    with pytest.raises(DataFormatError, match=r"00001_RV\.png: .*unknown class index.*x=0, y=0\) = 12"):
        lazy[2]
    single = tmp_path / "one"
    _write(single, "00000_FV", "vehicles,0,1,1,5\n", ok)
    with pytest.raises(DataFormatError) as info:
        open_dataset("woodscape", single, "all")
    assert info.value.path == single / "box_2d_annotations/00000_FV.txt" and info.value.line == 1


def test_missing_layout(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="rgb_images"):
        open_dataset("woodscape", tmp_path / "empty", "train")


def test_class_id_must_agree_with_class_name(tmp_path: Path) -> None:
    from taskweight.data.check import check_dataset

    root = tmp_path / "ws"
    ok = np.ones((H, W), np.uint8)
    _write(
        root,
        "00000_FV",
        "vehicles,0,1,1,5,5\nperson,1,6,1,9,9\nbicycle,2,1,1,5,5\ntraffic_light,3,1,1,3,3\ntraffic_sign,4,1,1,3,3\n",
        ok,
    )
    _write(root, "00000_RV", "vehicles,0,1,1,5,5\nperson,0,6,1,9,9\n", ok)  # id 0 is vehicles
    _write(root, "00000_MVL", "bicycle,7,1,1,5,5\n", ok)  # no box class has id 7
    box = root / "box_2d_annotations"
    with pytest.raises(DataFormatError) as info:
        open_dataset("woodscape", root, "all")
    assert info.value.path == box / "00000_MVL.txt" and info.value.line == 1
    assert str(info.value).endswith("00000_MVL.txt:1: class_id 7 contradicts class name 'bicycle', whose id is 2")
    with pytest.warns(UserWarning, match="skipped 2 bad sample"):
        ds = open_dataset("woodscape", root, "all", on_error="skip")
    assert ds.names == ["00000_FV"]
    assert [(s.id, s.file, s.line) for s in ds.skipped] == [
        ("00000_MVL", str(box / "00000_MVL.txt"), 1),
        ("00000_RV", str(box / "00000_RV.txt"), 2),
    ]
    assert (
        ds.skipped[1].problem == "class_id 0 contradicts class name 'person', whose id is 1 (class_id 0 is 'vehicles')"
    )
    report = check_dataset("woodscape", root, "all")
    assert report.splits["all"].bad == 2 and report.splits["all"].images == 1
    assert {(Path(p.path).name, p.line) for p in report.problems} == {("00000_RV.txt", 2), ("00000_MVL.txt", 1)}
    # a class name added by a user mapping has no known id: not checked
    _write(root, "00000_MVR", "motorcycle,8,1,1,5,5\n", ok)
    with pytest.warns(UserWarning, match="skipped 2 bad sample"):
        ds = open_dataset("woodscape", root, "all", on_error="skip", mapping={"detection": {"motorcycle": "cyclist"}})
    assert "00000_MVR" in ds.names
