"""KITTI extensions: raw downloads without split files, colour-coded masks, YAML mappings, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskweight.classes import CAR, CYCLIST
from taskweight.data import DEFAULT_MAPPING, default_mapping, open_dataset
from taskweight.errors import DataFormatError

H, W = 12, 30
LINE = "{t} 0.00 0 0.10 {x1} 2.00 {x2} 10.00 1.50 1.60 4.00 1.00 1.60 10.00 0.20\n"


def _raw(root: Path, det: list[str], seg: list[str], both: list[str] = (), colour: bool = False) -> Path:
    for sub in ("training/image_2", "training/label_2", "training/semantic"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in [*det, *seg, *both]:
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / f"training/image_2/{name}.png")
    for name in [*det, *both]:
        (root / f"training/label_2/{name}.txt").write_text(LINE.format(t="Car", x1=1, x2=9))
    for name in [*seg, *both]:
        if colour:
            mask = np.zeros((H, W, 3), np.uint8)
            mask[:, :10] = (128, 64, 128)
            mask[:, 10:20] = (0, 0, 192)
            mask[:, 20:25] = (70, 70, 70)
        else:
            mask = np.full((H, W), 7, np.uint8)
        Image.fromarray(mask).save(root / f"training/semantic/{name}.png")
    return root


def test_raw_download_seeded_stratified_split(tmp_path: Path) -> None:
    det = [f"{i:06d}" for i in range(10)]
    seg = [f"{i:06d}_10" for i in range(5)]
    root = _raw(tmp_path / "raw", det, seg)
    parts = {s: open_dataset("kitti", root, s).names for s in ("train", "val", "test")}
    assert sorted(sum(parts.values(), [])) == sorted(det + seg)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [6 + 3, 2 + 1, 2 + 1]  # per label kind
    assert all(sum(n.endswith("_10") for n in parts[s]) == k for s, k in (("train", 3), ("val", 1), ("test", 1)))
    assert parts == {s: open_dataset("kitti", root, s).names for s in parts}
    assert open_dataset("kitti", root, "train", split_seed=7).names != parts["train"]
    assert open_dataset("kitti", root, "all").names == sorted(det + seg)
    item = open_dataset("kitti", root, "val")[0]
    assert item["has_det"] != item["has_seg"]
    # its own split files win
    (root / "splits").mkdir()
    (root / "splits/train.txt").write_text("000001\n000002\n")
    assert open_dataset("kitti", root, "train").names == ["000001", "000002"]
    with pytest.raises(DataFormatError, match="split file not found"):
        open_dataset("kitti", root, "val")


def test_colour_coded_masks(tmp_path: Path) -> None:
    root = _raw(tmp_path / "c", [], ["a", "b"], colour=True)
    mask = np.asarray(Image.open(root / "training/semantic/a.png")).copy()
    mask[0, 0] = (0, 0, 0)
    Image.fromarray(mask).save(root / "training/semantic/a.png")
    item = open_dataset("kitti", root, "all")[0]
    # road, sidewalk, another colour (void), black (no label)
    assert item["seg"][1].tolist() == [1] * 10 + [2] * 10 + [0] * 5 + [255] * 5
    assert item["seg"][0, 0] == 255
    with pytest.raises(DataFormatError, match="single-channel"):
        open_dataset("kitti", root, "all", semantic_encoding="ids")
    ids = _raw(tmp_path / "i", [], ["a"])
    with pytest.raises(DataFormatError, match="colour-coded"):
        open_dataset("kitti", ids, "all", semantic_encoding="color")
    custom = open_dataset("kitti", root, "all", mapping={"colors": {"70,70,70": "sidewalk"}})[0]
    assert custom["seg"][1, 22] == 2


def test_mapping_is_yaml_data(tmp_path: Path) -> None:
    assert default_mapping("kitti")["detection"]["Van"] == "car" == DEFAULT_MAPPING["detection"]["Van"]
    assert default_mapping("kitti")["colors"]["128,64,128"] == "road"
    assert default_mapping("woodscape")["segmentation"][2] == "road"
    assert default_mapping("cityscapes")["detection"]["bus"] == "car"
    root = _raw(tmp_path / "m", ["a"], [])
    (root / "training/label_2/a.txt").write_text(
        LINE.format(t="Cyclist", x1=1, x2=9) + LINE.format(t="Tram", x1=1, x2=9)
    )
    yml = tmp_path / "map.yaml"
    yml.write_text("detection:\n  Tram: car\n  Cyclist: null\n")
    assert open_dataset("kitti", root, "all", mapping=yml)[0]["labels"].tolist() == [CAR]
    assert open_dataset("kitti", root, "all")[0]["labels"].tolist() == [CYCLIST]
    yml.write_text("detection: [\n")
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "all", mapping=yml)
    assert info.value.path == yml


def test_bad_input_every_problem_listed(tmp_path: Path) -> None:
    root = _raw(tmp_path / "b", ["a", "b", "c"], [])
    (root / "training/label_2/a.txt").write_text(
        LINE.format(t="Car", x1=1, x2=9)
        + LINE.format(t="Car", x1=1, x2=40)
        + "Car 1 2\n"
        + LINE.format(t="Tractor", x1=1, x2=9)
    )
    (root / "training/label_2/orphan.txt").write_text(LINE.format(t="Car", x1=1, x2=9))
    (root / "training/label_2/c.txt").unlink()  # image without labels
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "all")
    assert info.value.path == root / "training/label_2/a.txt" and info.value.line == 2
    assert "outside the 30x12 image" in str(info.value)
    with pytest.warns(UserWarning, match="skipped 3 bad sample"):
        ds = open_dataset("kitti", root, "all", on_error="skip")
    assert ds.names == ["b"]
    a = [p.line for p in ds.problems if p.path == root / "training/label_2/a.txt"]
    assert a == [2, 3, 4]
    text = "\n".join(str(p) for p in ds.problems)
    assert "label without its image" in text and "image without labels" in text and "Tractor" in text


def test_truncated_png_skipped_with_crc_verification(tmp_path: Path) -> None:
    root = _raw(tmp_path / "t", ["a", "b"], [])
    noisy = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    bad = root / "training/image_2/a.png"
    Image.fromarray(noisy).save(bad)
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    with pytest.warns(UserWarning, match="corrupt or truncated"):
        ds = open_dataset("kitti", root, "all", on_error="skip")
    assert ds.names == ["b"] and ds.problems[0].path == bad
    with pytest.raises(DataFormatError, match="corrupt or truncated"):
        open_dataset("kitti", root, "all", verify="crc")
