"""Cityscapes loader: polygons and PNGs, crowd and rider rules, splits, mapping and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskweight.classes import CAR, CYCLIST, PEDESTRIAN
from taskweight.data import open_dataset
from taskweight.data.boxes import component_boxes
from taskweight.data.cityscapes import rasterise_polygons
from taskweight.errors import DataFormatError

H, W = 20, 40


def _write(
    root: Path,
    name: str,
    *,
    split: str = "train",
    city: str = "c",
    objects: list | None = None,
    label_ids: np.ndarray | None = None,
    instance_ids: np.ndarray | None = None,
    image: bool = True,
    size: tuple[int, int] = (H, W),
) -> str:
    stem = f"{city}_000000_{name}"
    img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    if image:
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
    if objects is not None:
        doc = {"imgHeight": size[0], "imgWidth": size[1], "objects": objects}
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(doc, indent=1))
    if label_ids is not None:
        Image.fromarray(label_ids.astype(np.uint8)).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    if instance_ids is not None:
        Image.fromarray(instance_ids.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    return f"{split}/{city}/{stem}"


def rect(label: str, x0: int, y0: int, x1: int, y1: int, **extra) -> dict:
    return {"label": label, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], **extra}


def test_polygons_order_deleted_groups_and_rider_rule(tmp_path: Path) -> None:
    objects = [
        rect("road", 0, 10, 39, 19),
        rect("sidewalk", 0, 8, 39, 9),
        rect("car", 2, 2, 9, 7),
        rect("car", 5, 3, 12, 8),  # drawn over the first car
        rect("truck", 30, 0, 33, 3),
        rect("bus", 34, 0, 37, 3),
        rect("person", 14, 1, 15, 6, deleted=True),  # skipped
        rect("person", 16, 1, 17, 6),
        rect("bicycle", 19, 4, 24, 8),
        rect("rider", 20, 1, 22, 6),  # one cyclist: union
        rect("bicycle", 34, 12, 38, 15),  # a parked bicycle: dropped
        rect("cargroup", 25, 12, 29, 15),
        rect("persongroup", 0, 12, 3, 14),
        rect("bicyclegroup", 8, 12, 9, 13),  # crowd of an unmapped class: nothing
    ]
    root = tmp_path / "cs"
    _write(root, "000001", objects=objects)
    ds = open_dataset("cityscapes", root, "all")
    item = ds[0]
    assert item["has_det"] and item["has_seg"] and item["name"] == "train/c/c_000000_000001"
    got = sorted(zip(item["labels"].tolist(), item["boxes"].tolist(), strict=True))
    assert got == sorted(
        [
            (CAR, [2.0, 2.0, 10.0, 8.0]),  # visible part of the first car (x 2..4 plus rows 2 and below)
            (CAR, [5.0, 3.0, 13.0, 9.0]),
            (CAR, [30.0, 0.0, 34.0, 4.0]),
            (CAR, [34.0, 0.0, 38.0, 4.0]),
            (PEDESTRIAN, [16.0, 1.0, 18.0, 7.0]),
            (CYCLIST, [19.0, 1.0, 25.0, 9.0]),
        ]
    )
    assert sorted(item["ignore_boxes"].tolist()) == [[0.0, 12.0, 4.0, 15.0], [25.0, 12.0, 30.0, 16.0]]
    seg = item["seg"]
    assert seg[19, 0] == 1 and seg[9, 0] == 2 and seg[0, 0] == 0 and seg[12, 0] == 0  # persongroup over road


def test_png_source_agrees_with_polygons(tmp_path: Path) -> None:
    objects = [
        rect("road", 0, 10, 39, 19),
        rect("car", 2, 2, 9, 7),
        rect("bicycle", 19, 4, 24, 8),
        rect("rider", 20, 1, 22, 6),
        rect("cargroup", 25, 12, 29, 15),
        rect("sidewalk", 30, 16, 39, 19),
    ]
    ids, inst, _ = rasterise_polygons(
        [
            {
                "label": o["label"],
                "class": o["label"].replace("group", ""),
                "group": o["label"].endswith("group"),
                "deleted": False,
                "polygon": [tuple(p) for p in o["polygon"]],
            }
            for o in objects
        ],
        (H, W),
    )
    assert inst[3, 3] == 26000 and inst[2, 21] == 25000 and inst[8, 19] == 33000 and inst[13, 26] == 26
    root = tmp_path / "cs"
    _write(root, "000001", objects=objects)
    png = tmp_path / "png"
    _write(png, "000001", label_ids=ids, instance_ids=inst)
    only_inst = tmp_path / "inst"
    _write(only_inst, "000001", instance_ids=inst)
    a = open_dataset("cityscapes", root, "all")[0]
    for other in (png, only_inst):
        b = open_dataset("cityscapes", other, "all")[0]
        assert b["boxes"].tolist() == a["boxes"].tolist() and b["labels"].tolist() == a["labels"].tolist()
        assert b["ignore_boxes"].tolist() == a["ignore_boxes"].tolist()
        assert (b["seg"] == a["seg"]).all()
    # labelIds alone: segmentation only
    seg_only = tmp_path / "seg"
    _write(seg_only, "000001", label_ids=ids)
    c = open_dataset("cityscapes", seg_only, "all")[0]
    assert not c["has_det"] and c["has_seg"] and c["boxes"].shape == (0, 4) and (c["seg"] == a["seg"]).all()
    # labels="json" forces the polygons when both exist
    both = tmp_path / "both"
    _write(both, "000001", objects=[rect("road", 0, 0, 39, 19)], label_ids=ids, instance_ids=inst)
    assert (open_dataset("cityscapes", both, "all", labels="json")[0]["seg"] == 1).all()
    assert (open_dataset("cityscapes", both, "all")[0]["seg"] == a["seg"]).all()


def test_png_crowd_pixels_give_one_ignore_box_per_connected_region(tmp_path: Path) -> None:
    """instanceIds cannot tell crowd groups apart: each 8-connected region of a mapped class's crowd
    pixels is one ignore box (two groups at the two kerbs do not become one box over the road)."""
    inst = np.full((H, W), 7, np.int32)  # road
    inst[2:6, 1:4] = 24  # a persongroup at the left
    inst[6:8, 4:5] = 24  # touching it at a corner: the same region
    inst[3:9, 30:33] = 24  # another at the right
    inst[10:12, 10:14] = 26  # a cargroup
    inst[14:16, 20:22] = 33  # a bicyclegroup: an unmapped class, no box
    inst[1:4, 15:17] = 24000  # a pedestrian instance
    _write(tmp_path / "cs", "000001", instance_ids=inst)
    item = open_dataset("cityscapes", tmp_path / "cs", "all")[0]
    assert item["boxes"].tolist() == [[15.0, 1.0, 17.0, 4.0]] and item["labels"].tolist() == [PEDESTRIAN]
    assert sorted(item["ignore_boxes"].tolist()) == [
        [1.0, 2.0, 5.0, 8.0],
        [10.0, 10.0, 14.0, 12.0],
        [30.0, 3.0, 33.0, 9.0],
    ]


def test_component_boxes_by_hand() -> None:
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region
    mask[4:6, 5:8] = True
    mask[0, 6] = True
    assert component_boxes(mask) == [(0.0, 0.0, 2.0, 2.0), (6.0, 0.0, 7.0, 1.0), (5.0, 4.0, 8.0, 6.0)]
    assert component_boxes(np.zeros((3, 3), bool)) == []


def test_paper_and_official_splits(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    names = {
        s: [_write(root, f"{s}{i:05d}", split=s, objects=[rect("car", 1, 1, 5, 5)]) for i in range(n)]
        for s, n in (("train", 12), ("val", 5), ("test", 3))
    }
    every = sorted(sum(names.values(), []))
    paper = {s: open_dataset("cityscapes", root, s).names for s in ("train", "val", "test")}
    # the default pool is train + val (public gtFine/test files carry no classes): 17 → 10/3/4
    assert [len(paper[s]) for s in ("train", "val", "test")] == [10, 3, 4]
    assert sorted(sum(paper.values(), [])) == sorted(names["train"] + names["val"])
    with_test = {
        s: open_dataset("cityscapes", root, s, paper_folders=["train", "val", "test"]).names
        for s in ("train", "val", "test")
    }
    assert [len(with_test[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert sorted(sum(with_test.values(), [])) == every
    assert paper == {s: open_dataset("cityscapes", root, s).names for s in paper}  # deterministic
    assert open_dataset("cityscapes", root, "train", split_seed=1).names != paper["train"]
    official = {s: open_dataset("cityscapes", root, s, split_mode="official").names for s in names}
    assert official == {s: sorted(v) for s, v in names.items()}
    assert open_dataset("cityscapes", root, "all").names == every
    (root / "splits").mkdir()
    (root / "splits" / "mine.txt").write_text(f"{names['val'][0]}\n{names['test'][1]}\n")
    assert open_dataset("cityscapes", root, "mine").names == [names["val"][0], names["test"][1]]
    with pytest.raises(DataFormatError, match="split file not found"):
        open_dataset("cityscapes", root, "trainval")


def test_mapping_dict_and_yaml(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    _write(
        root,
        "000001",
        objects=[
            rect("truck", 1, 1, 5, 5),
            rect("bicycle", 9, 4, 14, 8),
            rect("rider", 10, 1, 12, 6),
            rect("parking", 20, 10, 30, 15),
        ],
    )
    item = open_dataset(
        "cityscapes",
        root,
        "all",
        mapping={"detection": {"truck": None}, "cyclist_vehicles": [], "segmentation": {9: "road"}},
    )[0]
    assert item["labels"].tolist() == [CYCLIST] and item["boxes"].tolist() == [[10.0, 1.0, 13.0, 7.0]]
    assert item["seg"][12, 25] == 1
    yml = tmp_path / "map.yaml"
    yml.write_text("inherit: false\ndetection:\n  bicycle: cyclist\nsegmentation:\n  9: sidewalk\n")
    item = open_dataset("cityscapes", root, "all", mapping=yml)[0]
    assert item["labels"].tolist() == [CYCLIST] and item["boxes"].tolist() == [[9.0, 4.0, 15.0, 9.0]]
    assert item["seg"][12, 25] == 2 and item["seg"][1, 1] == 0
    with pytest.raises(ValueError, match="lorry"):
        open_dataset("cityscapes", root, "all", mapping={"detection": {"lorry": "car"}})


# ------------------------------------------------------------------------- bad input
def test_bad_json_unknown_label_and_skip(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    _write(root, "000001", objects=[rect("car", 1, 1, 5, 5)])
    _write(
        root,
        "000002",
        objects=[rect("car", 1, 1, 5, 5), rect("spaceship", 1, 1, 5, 5), {"label": "car", "polygon": [[1, 2]]}],
    )
    bad_json = root / "gtFine/train/c/c_000000_000003_gtFine_polygons.json"
    _write(root, "000003", objects=[])
    bad_json.write_text('{"imgHeight": 20,\n "imgWidth": 40,\n "objects": [}\n')
    with pytest.raises(DataFormatError) as info:
        open_dataset("cityscapes", root, "all")
    err = info.value
    assert err.path == root / "gtFine/train/c/c_000000_000002_gtFine_polygons.json" and "spaceship" in str(err)
    assert err.line is not None and err.line > 1
    with pytest.warns(UserWarning, match="skipped 2 bad sample"):
        ds = open_dataset("cityscapes", root, "all", on_error="skip")
    assert ds.names == ["train/c/c_000000_000001"]
    messages = [str(p) for p in ds.problems]
    assert len(ds.problems) == 3 and any("polygon" in m for m in messages)
    assert any(p.path == bad_json and p.line == 3 and "malformed JSON" in str(p) for p in ds.problems)


def test_orphans_sizes_and_corrupt_pngs(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    ok = np.full((H, W), 7, np.uint8)
    _write(root, "000001", label_ids=ok)
    _write(root, "000002", label_ids=ok, image=False)  # label without its image
    _write(root, "000003")  # image without labels
    _write(root, "000004", label_ids=np.zeros((H, W + 1), np.uint8))  # size mismatch
    _write(root, "000005", objects=[rect("car", 1, 1, 5, 5)])
    (root / "gtFine/train/c/c_000000_000005_gtFine_polygons.json").write_text(
        json.dumps({"imgHeight": H + 2, "imgWidth": W, "objects": []})
    )
    _write(root, "000006", label_ids=np.random.default_rng(0).integers(0, 34, (H, W)))
    trunc = root / "gtFine/train/c/c_000000_000006_gtFine_labelIds.png"
    trunc.write_bytes(trunc.read_bytes()[: len(trunc.read_bytes()) // 2])
    _write(root, "000007", label_ids=np.full((H, W), 40, np.uint8))  # not a label id
    with pytest.raises(DataFormatError, match="label without its image"):
        open_dataset("cityscapes", root, "all")
    with pytest.warns(UserWarning):
        ds = open_dataset("cityscapes", root, "all", on_error="skip")  # verify="crc": masks decoded at opening
    assert ds.names == ["train/c/c_000000_000001"]
    text = "\n".join(str(p) for p in ds.problems)
    for fragment in (
        "label without its image",
        "image without labels",
        "41x20",
        "imgWidth x imgHeight is 40x22",
        "corrupt or truncated",
        "hold no Cityscapes label id",
    ):
        assert fragment in text, fragment
    not_an_id = next(s for s in ds.skipped if s.id == "train/c/c_000000_000007")
    assert not_an_id.file == str(root / "gtFine/train/c/c_000000_000007_gtFine_labelIds.png")
    assert "x=0, y=0" in not_an_id.problem and not_an_id.split == "all"
    # header-only verification (the default with "raise") finds a truncated PNG or bad ids when decoding
    with pytest.warns(UserWarning):
        ds = open_dataset("cityscapes", root, "all", on_error="skip", verify="header")
    with pytest.raises(DataFormatError, match=r"pixel\(s\) hold no Cityscapes label id.*x=0, y=0"):
        ds[ds.names.index("train/c/c_000000_000007")]
    idx = ds.names.index("train/c/c_000000_000006")
    with pytest.raises(DataFormatError) as info:
        ds[idx]
    assert info.value.path == trunc


def test_options_and_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not found"):
        open_dataset("cityscapes", tmp_path / "nowhere", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="leftImg8bit"):
        open_dataset("cityscapes", tmp_path / "empty", "train")
    root = tmp_path / "cs"
    _write(root, "000001", objects=[])
    with pytest.raises(ValueError, match="split_mode"):
        open_dataset("cityscapes", root, "train", split_mode="random")
    with pytest.raises(ValueError, match="labels"):
        open_dataset("cityscapes", root, "train", labels="xml")
    with pytest.raises(ValueError, match="on_error"):
        open_dataset("cityscapes", root, "train", on_error="ignore")
