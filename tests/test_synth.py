"""Procedural scenes: rasteriser exactness, determinism, KITTI layout, label kinds, statistics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskweight.data.kitti_labels import parse_label_file
from taskweight.synth import DEFAULT_SIZE, generate_dataset, min_box_height, render_scene
from taskweight.synth.raster import Canvas, raster_polygon

SMALL = (64, 192)
ALLOWED_IDS = {7, 8, 11, 17, 20, 21, 22, 23, 24, 25, 26, 33}
CLASS_IDS = {"Car": {26}, "Pedestrian": {24}, "Cyclist": {25, 33}}


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------- rasteriser
def _inside(px: float, py: float, poly: np.ndarray) -> bool:
    """Reference even-odd point-in-polygon test."""
    inside = False
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        if (y0 <= py) != (y1 <= py):
            x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
            if px > x:
                inside = not inside
    return inside


def test_raster_polygon_matches_pixel_centre_test() -> None:
    rng = np.random.default_rng(0)
    H, W = 23, 31
    for trial in range(40):
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(2, 14, n) if trial % 2 else np.full(n, rng.uniform(3, 12))  # concave / convex
        c = rng.uniform(-3, [W + 3, H + 3])
        poly = np.column_stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)])
        expected = np.array([[_inside(j + 0.5, i + 0.5, poly) for j in range(W)] for i in range(H)])
        got = np.zeros((H, W), bool)
        res = raster_polygon(poly, H, W)
        if res is not None:
            r0, c0, m = res
            got[r0 : r0 + m.shape[0], c0 : c0 + m.shape[1]] = m
        np.testing.assert_array_equal(got, expected)


def test_canvas_paints_image_and_mask_from_the_same_pixels() -> None:
    H, W = 20, 30
    cv = Canvas(H, W, noise=np.zeros((H, W), np.float32), low=np.zeros((H, W), np.float32))
    tri = np.array([[2.3, 1.7], [27.9, 6.2], [9.4, 18.8]])
    cv.fill(tri, (0.2, 0.4, 0.6), 26)
    painted = np.any(cv.img != 0, axis=2)
    np.testing.assert_array_equal(painted, cv.sem == 26)
    assert painted.sum() > 50


# ------------------------------------------------------------------------- scenes
def test_render_scene_contract() -> None:
    s = render_scene(0, "train", 0, DEFAULT_SIZE)
    assert s.image.shape == (125, 414, 3) and s.image.dtype == np.uint8
    assert s.semantic_ids.shape == (125, 414) and s.semantic_ids.dtype == np.uint8
    assert set(np.unique(s.semantic_ids)) <= ALLOWED_IDS
    for o in s.objects:
        assert o.type in ("Car", "Pedestrian", "Cyclist", "DontCare")
        x1, y1, x2, y2 = o.box
        assert 0 <= x1 < x2 <= 414 and 0 <= y1 < y2 <= 125
        if o.type != "DontCare":
            assert 0 <= o.occluded <= 2 and 0 <= o.truncated <= 0.8 and o.hidden <= 0.8
            assert y2 - y1 >= min_box_height(DEFAULT_SIZE)
            assert o.location[2] > 0 and all(v > 0 for v in o.dimensions)
            assert -np.pi <= o.alpha <= np.pi and -np.pi <= o.rotation_y <= np.pi
        else:
            assert o.kitti_line().startswith("DontCare -1 -1 -10 ")
            assert o.kitti_line().endswith(" -1 -1 -1 -1000 -1000 -1000 -10")


def test_render_scene_is_deterministic_and_varies() -> None:
    a = render_scene(5, "val", 3, SMALL)
    b = render_scene(5, "val", 3, SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.semantic_ids, b.semantic_ids)
    assert [o.kitti_line() for o in a.objects] == [o.kitti_line() for o in b.objects]
    for other in (
        render_scene(6, "val", 3, SMALL),
        render_scene(5, "test", 3, SMALL),
        render_scene(5, "val", 4, SMALL),
    ):
        assert not np.array_equal(a.image, other.image)


def test_layout_does_not_depend_on_the_rendered_size() -> None:
    a = render_scene(2, "train", 0, SMALL)
    b = render_scene(2, "train", 0, (250, 828))
    keys = ("weather", "roadside", "lanes", "curvature", "camera_height")
    assert {k: a.info[k] for k in keys} == {k: b.info[k] for k in keys}
    assert a.info["horizon"] / SMALL[0] == pytest.approx(b.info["horizon"] / 250)


def test_boxes_cover_the_painted_object() -> None:
    """A fully visible object's box is mostly filled with its own class in the mask."""
    checked = 0
    for i in range(12):
        s = render_scene(i, "train", 7, DEFAULT_SIZE)
        for o in s.objects:
            if o.type == "DontCare" or o.hidden > 0 or o.truncated > 0:
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in o.box)
            crop = s.semantic_ids[y1:y2, x1:x2]
            frac = np.isin(crop, list(CLASS_IDS[o.type])).mean()
            assert frac > 0.2, (i, o)
            # the box is tight: the row/column just outside holds (almost) none of it
            ids = list(CLASS_IDS[o.type])
            if y2 < 125 and x2 - x1 > 6:
                assert np.isin(s.semantic_ids[y2 + 1 : y2 + 2, x1:x2], ids).mean() < 0.5
            checked += 1
    assert checked > 20


def test_statistics_over_30_scenes() -> None:
    types: Counter[str] = Counter()
    for i in range(30):
        s = render_scene(i, "train", 0, DEFAULT_SIZE)
        ids = s.semantic_ids
        assert (ids == 7).sum() > 0.05 * ids.size, f"scene {i}: too little road"
        assert (ids == 8).sum() > 0, f"scene {i}: no sidewalk"
        assert (ids == 23).any(), f"scene {i}: no sky"
        types.update(o.type for o in s.objects)
        assert 1 <= len(s.objects) <= 20
    assert types["Car"] >= 30
    assert types["Pedestrian"] >= 5
    assert types["Cyclist"] >= 3
    assert types["DontCare"] >= 5
    assert types["Car"] > types["Pedestrian"] and types["Car"] > types["Cyclist"]


# ------------------------------------------------------------------------- dataset writer
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "set"
    calls = []
    summary = generate_dataset(
        root, train=4, val=2, test=2, seed=11, size=SMALL, progress=lambda done, total: calls.append((done, total))
    )
    summary["calls"] = calls
    return root, summary


def test_kitti_layout_and_summary(generated: tuple[Path, dict]) -> None:
    root, summary = generated
    names = [f"{i:06d}" for i in range(8)]
    assert sorted(p.stem for p in (root / "training/image_2").glob("*.png")) == names
    assert sorted(p.stem for p in (root / "training/label_2").glob("*.txt")) == names
    assert sorted(p.stem for p in (root / "training/semantic").glob("*.png")) == names
    assert (root / "splits/train.txt").read_text() == "000000\n000001\n000002\n000003\n"
    assert (root / "splits/val.txt").read_text() == "000004\n000005\n"
    assert (root / "splits/test.txt").read_text() == "000006\n000007\n"
    with Image.open(root / "training/semantic/000005.png") as im:
        assert im.mode == "L" and im.size == (192, 64)
    with Image.open(root / "training/image_2/000005.png") as im:
        assert im.mode == "RGB" and im.size == (192, 64)
    params = json.loads((root / "synth.json").read_text())
    assert (
        params["seed"] == 11 and params["size"] == [64, 192] and params["splits"] == {"train": 4, "val": 2, "test": 2}
    )
    assert summary["splits"] == {"train": 4, "val": 2, "test": 2} and summary["images"] == 8
    written = Counter(o.type for n in names for o in parse_label_file(root / f"training/label_2/{n}.txt"))
    assert summary["objects"] == {t: written[t] for t in ("Car", "Pedestrian", "Cyclist", "DontCare")}
    assert summary["calls"][-1] == (8, 8) and len(summary["calls"]) == 8


def test_written_files_equal_the_rendered_scene(generated: tuple[Path, dict]) -> None:
    root, _ = generated
    scene = render_scene(1, "val", 11, SMALL)  # val scene 1 -> global name 000005
    np.testing.assert_array_equal(np.asarray(Image.open(root / "training/image_2/000005.png")), scene.image)
    np.testing.assert_array_equal(np.asarray(Image.open(root / "training/semantic/000005.png")), scene.semantic_ids)
    lines = (root / "training/label_2/000005.txt").read_text().splitlines()
    assert lines == [o.kitti_line() for o in scene.objects]
    for line in lines:
        assert len(line.split()) == 15
        if not line.startswith("DontCare"):
            assert all(len(tok.split(".")[1]) == 2 for tok in line.split()[4:8])


def test_same_seed_gives_identical_bytes(generated: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = generated
    again = tmp_path / "again"
    generate_dataset(again, train=4, val=2, test=2, seed=11, size=SMALL)
    assert _tree_bytes(again) == _tree_bytes(root)
    other = tmp_path / "other"
    generate_dataset(other, train=4, val=2, test=2, seed=12, size=SMALL)
    assert (other / "training/image_2/000000.png").read_bytes() != (root / "training/image_2/000000.png").read_bytes()


def test_scene_does_not_depend_on_the_number_generated(generated: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = generated
    more = tmp_path / "more"
    generate_dataset(more, train=10, val=0, test=1, seed=11, size=SMALL)
    for rel in ("training/image_2/000003.png", "training/label_2/000003.txt", "training/semantic/000003.png"):
        assert (more / rel).read_bytes() == (root / rel).read_bytes()
    assert (more / "splits/val.txt").read_text() == ""


def test_single_label_fraction(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    summary = generate_dataset(root, train=8, val=4, test=1, seed=0, size=SMALL, single_label_fraction=0.5)
    names = [f"{i:06d}" for i in range(13)]
    has_det = {n: (root / f"training/label_2/{n}.txt").is_file() for n in names}
    has_seg = {n: (root / f"training/semantic/{n}.png").is_file() for n in names}
    assert all((root / f"training/image_2/{n}.png").is_file() for n in names)
    train, val = names[:8], names[8:12]
    assert sum(has_det[n] and not has_seg[n] for n in train) == 2
    assert sum(has_seg[n] and not has_det[n] for n in train) == 2
    assert sum(has_det[n] != has_seg[n] for n in val) == 2
    assert all(has_det[n] or has_seg[n] for n in names)
    params = json.loads((root / "synth.json").read_text())
    assert sorted(params["detection_only"]) == sorted(n for n in names if has_det[n] and not has_seg[n])
    assert sorted(params["segmentation_only"]) == sorted(n for n in names if has_seg[n] and not has_det[n])
    assert summary["detection_only"] + summary["segmentation_only"] == sum(has_det[n] != has_seg[n] for n in names)
    # regenerating without single-label images rewrites every label and removes nothing needed
    generate_dataset(root, train=3, val=1, test=1, seed=0, size=SMALL)
    assert len(list((root / "training/image_2").glob("*.png"))) == 5
    assert len(list((root / "training/label_2").glob("*.txt"))) == 5
    assert len(list((root / "training/semantic").glob("*.png"))) == 5


def test_generate_dataset_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preset"):
        generate_dataset(tmp_path / "a", preset="synth-nope", train=1, val=0, test=0)
    with pytest.raises(ValueError, match="train"):
        generate_dataset(tmp_path / "a", train=-1, val=0, test=0)
    with pytest.raises(ValueError, match="single_label_fraction"):
        generate_dataset(tmp_path / "a", train=1, val=0, test=0, single_label_fraction=1.5)
    with pytest.raises(ValueError, match="size"):
        generate_dataset(tmp_path / "a", train=1, val=0, test=0, size=(8, 8))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        generate_dataset(foreign, train=1, val=0, test=0)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="split"):
        render_scene(0, "training", 0, SMALL)
