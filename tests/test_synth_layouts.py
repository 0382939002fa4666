"""synth-cityscapes and synth-woodscape presets: real layouts, fisheye model, loader round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskweight.classes import CAR, CYCLIST, PEDESTRIAN
from taskweight.data import open_dataset
from taskweight.synth import PRESETS, generate_dataset
from taskweight.synth import geometry as g
from taskweight.synth.fisheye import Fisheye
from taskweight.synth.instances import mask_rectangles, render_with_instances, staircase_polygon
from taskweight.synth.scene import MIN_BOX_HEIGHT, min_box_height, min_object_height
from taskweight.synth.woodscape_writer import render_fisheye

SEED = 5
CS_SIZE = (64, 128)


@pytest.fixture(scope="module")
def cs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cs") / "synth"
    generate_dataset(root, preset="synth-cityscapes", train=3, val=1, test=1, seed=SEED, size=CS_SIZE)
    return root


@pytest.fixture(scope="module")
def ws_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws") / "synth"
    generate_dataset(root, preset="synth-woodscape", train=5, val=2, test=1, seed=SEED)
    return root


def _seg(ids: np.ndarray, road: tuple[int, ...], sidewalk: tuple[int, ...]) -> np.ndarray:
    return np.where(np.isin(ids, road), 1, np.where(np.isin(ids, sidewalk), 2, 0))


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _expected_cityscapes(split: str, index: int) -> tuple[list, np.ndarray, np.ndarray]:
    """(targets, segmentation, crowd pixels) worked out from the renderer: a road user is a target
    when the scene labels it (not DontCare at synth-kitti's threshold for the same object size)."""
    r = render_with_instances(index, split, SEED, CS_SIZE, dontcare_height=min_object_height(CS_SIZE))
    ids, owner = r.scene.semantic_ids, r.instances
    labelled = {o.road_user for o in r.scene.objects if o.type != "DontCare"}
    boxes = []
    crowd = np.zeros(ids.shape, bool)
    for k in np.unique(owner[owner >= 0]):
        own = owner == k
        if int(k) not in labelled:
            crowd |= own & np.isin(ids, (g.PERSON, g.RIDER, g.CAR))
        elif (own & (ids == g.RIDER)).any():
            boxes.append((CYCLIST, _bbox(own & np.isin(ids, (g.RIDER, g.BICYCLE)))))
        elif (own & (ids == g.CAR)).any():
            boxes.append((CAR, _bbox(own & (ids == g.CAR))))
        elif (own & (ids == g.PERSON)).any():
            boxes.append((PEDESTRIAN, _bbox(own & (ids == g.PERSON))))
    return sorted(boxes), _seg(ids, (g.ROAD,), (g.SIDEWALK,)), crowd


def test_presets_are_registered() -> None:
    assert {"synth-kitti", "synth-cityscapes", "synth-woodscape"} <= set(PRESETS)
    assert PRESETS["synth-cityscapes"]["size"][1] == 2 * PRESETS["synth-cityscapes"]["size"][0]


def test_cityscapes_layout_and_png_round_trip(cs_root: Path) -> None:
    stem = "synthcity_000000_000000"
    for kind in ("gtFine_labelIds.png", "gtFine_instanceIds.png", "gtFine_polygons.json"):
        assert (cs_root / "gtFine/train/synthcity" / f"{stem}_{kind}").is_file()
    assert (cs_root / "leftImg8bit/test/synthcity" / f"{stem}_leftImg8bit.png").is_file()
    assert json.loads((cs_root / "synth.json").read_text())["preset"] == "synth-cityscapes"
    n_boxes = n_crowd = 0
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        ds = open_dataset("cityscapes", cs_root, split, split_mode="official", labels="png")
        assert len(ds) == n
        for i in range(n):
            item = ds[i]
            boxes, seg, crowd = _expected_cityscapes(split, i)
            assert item["image"].shape == (3, *CS_SIZE)
            assert sorted(zip(item["labels"].tolist(), item["boxes"].tolist(), strict=True)) == boxes
            assert np.array_equal(item["seg"].numpy(), seg)
            # every pixel of a DontCare road user lies in an ignore box, and no ignore box holds none
            covered = np.zeros(crowd.shape, bool)
            for x1, y1, x2, y2 in item["ignore_boxes"].int().tolist():
                assert crowd[y1:y2, x1:x2].any()
                covered[y1:y2, x1:x2] = True
            assert not (crowd & ~covered).any()
            n_boxes += len(boxes)
            n_crowd += int(crowd.any())
    assert n_boxes > 5 and n_crowd >= 2


def test_dontcare_height_is_the_same_object_size_at_every_aspect() -> None:
    # f = 721.5377 * min(H / 375, W / 1242): 240.51 at 125 x 414 (KITTI / 3), 297.45 at 256 x 512
    assert MIN_BOX_HEIGHT == 8.0 and min_object_height((125, 414)) == pytest.approx(8.0)
    assert min_object_height((256, 512)) == pytest.approx(8.0 * 297.4473 / 240.5126, rel=1e-5)  # 9.894 px
    assert min_box_height((256, 512)) == pytest.approx(8.0 * 256 / 125)  # synth-kitti's rule: by height
    assert min_object_height((128, 416)) == pytest.approx(min_box_height((128, 416)), rel=0.02)


def test_cityscapes_dontcare_road_users_are_crowd_regions(cs_root: Path) -> None:
    """A DontCare road user keeps its plain label id in instanceIds and is a ``...group`` polygon; the
    summary counts both kinds."""
    marker = json.loads((cs_root / "synth.json").read_text())
    assert marker["format_version"] == 2
    groups = 0
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        for i in range(n):
            _boxes, _seg, crowd = _expected_cityscapes(split, i)
            stem = f"gtFine/{split}/synthcity/synthcity_000000_{i:06d}"
            inst = np.asarray(Image.open(cs_root / f"{stem}_gtFine_instanceIds.png"))
            assert (inst[crowd] < 1000).all() and np.isin(inst[crowd], (g.PERSON, g.RIDER, g.CAR)).all()
            labels = [o["label"] for o in json.loads((cs_root / f"{stem}_gtFine_polygons.json").read_text())["objects"]]
            groups += sum(label.endswith("group") for label in labels)
            assert bool(crowd.any()) == any(label in ("persongroup", "ridergroup", "cargroup") for label in labels)
    assert groups >= 2
    counted = marker["instances"]
    assert sum(v for k, v in counted.items() if k.endswith("group")) == groups


def test_cityscapes_polygons_reproduce_the_masks(cs_root: Path) -> None:
    png = open_dataset("cityscapes", cs_root, "all", labels="png")
    poly = open_dataset("cityscapes", cs_root, "all", labels="json")
    assert png.names == poly.names and len(png) == 5
    agree, matched, total = [], 0, 0
    for i in range(len(png)):
        a, b = png[i], poly[i]
        agree.append(float((a["seg"] == b["seg"]).float().mean()))
        for box, label in zip(a["boxes"], a["labels"], strict=True):
            total += 1
            same = b["boxes"][b["labels"] == label]
            if len(same) and float(_iou(box, same).max()) >= 0.7:
                matched += 1
    assert min(agree) > 0.995
    assert matched >= 0.9 * total


def _iou(box, boxes):
    import torch

    x1 = torch.maximum(box[0], boxes[:, 0])
    y1 = torch.maximum(box[1], boxes[:, 1])
    x2 = torch.minimum(box[2], boxes[:, 2])
    y2 = torch.minimum(box[3], boxes[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)

    def area(b):
        return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])

    return inter / (area(box) + area(boxes) - inter)


def test_polygon_helpers_are_exact_on_simple_masks() -> None:
    from PIL import Image, ImageDraw

    mask = np.zeros((9, 9), bool)
    mask[1:4, 2:5] = True
    mask[4:8, 1:7] = True
    mask[8, 3] = True
    for polys in (
        [staircase_polygon(mask)],
        [[[x0, y0], [x1, y0], [x1, y1], [x0, y1]] for x0, y0, x1, y1 in mask_rectangles(mask)],
    ):
        im = Image.new("L", (9, 9), 0)
        for p in polys:
            ImageDraw.Draw(im).polygon([tuple(v) for v in p], fill=1)
        assert np.array_equal(np.asarray(im).astype(bool), mask)


def test_fisheye_model_is_equidistant() -> None:
    fish = Fisheye.for_size((96, 128))
    rays = fish.rays()
    theta = np.arccos(rays[..., 2])
    r = np.hypot(np.arange(128) + 0.5 - fish.cx, 0.5)  # centre row 48 -> dv = 0.5
    assert np.allclose(theta[48], r / fish.f)
    assert np.isclose(np.degrees(64 / fish.f), 40.0)  # horizontal image edge 40 deg off-axis
    uv = fish.project(rays)
    assert np.allclose(uv[..., 0], np.arange(128) + 0.5) and np.allclose(uv[..., 1].T, np.arange(96) + 0.5)


def test_woodscape_layout_and_round_trip(ws_root: Path) -> None:
    names = [ln for s in ("train", "val", "test") for ln in (ws_root / "splits" / f"{s}.txt").read_text().split()]
    assert names == ["00000_FV", "00000_RV", "00000_MVL", "00000_MVR", "00001_FV", "00001_RV", "00001_MVL", "00001_MVR"]
    assert json.loads((ws_root / "synth.json").read_text())["fisheye"]["model"].startswith("equidistant")
    total = 0
    for split, n in (("train", 5), ("val", 2), ("test", 1)):
        ds = open_dataset("woodscape", ws_root, split)
        assert len(ds) == n
        for i in range(n):
            item = ds[i]
            rendered = render_fisheye(i, split, SEED, (96, 128))
            cls = {"vehicles": CAR, "person": PEDESTRIAN, "bicycle": CYCLIST}
            want = sorted((cls[c], [float(v) for v in b]) for c, *b in rendered["boxes"])
            assert sorted(zip(item["labels"].tolist(), item["boxes"].tolist(), strict=True)) == want
            # masks and boxes agree with the re-projected instance map
            for _c, x1, y1, x2, y2 in rendered["boxes"]:
                assert (rendered["owner"][y1:y2, x1:x2] >= 0).any()
            seg = _seg(rendered["cityscapes_ids"], (g.ROAD,), (g.SIDEWALK,))
            assert np.array_equal(item["seg"].numpy(), seg)
            corner = item["seg"][0, 0], item["image"][:, 0, 0]
            assert corner[0] == 0 and float(corner[1].sum()) == 0.0  # outside the fisheye field of view
            total += len(want)
    assert total > 5


def test_other_presets_reject_single_label_fraction(tmp_path: Path) -> None:
    for preset in ("synth-cityscapes", "synth-woodscape"):
        with pytest.raises(ValueError, match="single_label_fraction"):
            generate_dataset(tmp_path / preset, preset=preset, train=1, val=0, test=0, single_label_fraction=0.5)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        generate_dataset(tmp_path / "foreign", preset="synth-woodscape", train=1, val=0, test=0)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "preset, size, fixture", [("synth-cityscapes", CS_SIZE, "cs_root"), ("synth-woodscape", None, "ws_root")]
)
def test_parallel_writers_write_the_same_files(
    tmp_path: Path, preset: str, size: tuple[int, int] | None, fixture: str, request: pytest.FixtureRequest
) -> None:
    serial = request.getfixturevalue(fixture)
    counts = {"synth-cityscapes": (3, 1, 1), "synth-woodscape": (5, 2, 1)}[preset]
    seen: list[tuple[int, int]] = []
    summary = generate_dataset(
        tmp_path / "par",
        preset=preset,
        train=counts[0],
        val=counts[1],
        test=counts[2],
        seed=SEED,
        size=size,
        workers=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(k, sum(counts)) for k in range(1, sum(counts) + 1)]
    assert summary["images"] == sum(counts) and sum(summary["objects"].values()) > 0
    assert _files(tmp_path / "par") == _files(serial)
