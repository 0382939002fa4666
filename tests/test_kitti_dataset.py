"""KITTI-layout loader: synth round trip, label kinds, resize/flip, splits, mapping and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskweight.classes import CAR, CYCLIST, IGNORE_INDEX, PEDESTRIAN
from taskweight.data import (
    DEFAULT_MAPPING,
    collate_batch,
    open_dataset,
    register_format,
)
from taskweight.data import transforms as T
from taskweight.errors import DataFormatError
from taskweight.synth import generate_dataset, render_scene

SEED = 3
LABELS = {"Car": CAR, "Pedestrian": PEDESTRIAN, "Cyclist": CYCLIST}
SEG_OF_ID = {7: 1, 8: 2}


def _mapped(ids: np.ndarray) -> np.ndarray:
    out = np.zeros(ids.shape, np.int64)
    for k, v in SEG_OF_ID.items():
        out[ids == k] = v
    return out


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kitti") / "synth"
    generate_dataset(root, train=6, val=2, test=1, seed=SEED)  # default 125 x 414
    return root


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kitti") / "mixed"
    generate_dataset(root, train=8, val=1, test=1, seed=SEED, size=(64, 192), single_label_fraction=0.5)
    return root


# ------------------------------------------------------------------------- round trip
def test_round_trip_equals_the_rendered_scenes(synth_root: Path) -> None:
    ds = open_dataset("kitti", synth_root, "train")
    assert len(ds) == 6
    n_boxes = n_ignore = 0
    for i in range(6):
        item = ds[i]
        scene = render_scene(i, "train", SEED, (125, 414))
        assert item["name"] == f"{i:06d}"
        assert item["has_det"] is True and item["has_seg"] is True
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 125, 414)
        assert torch.equal(item["image"], torch.from_numpy(scene.image).permute(2, 0, 1))  # as decoded
        objects = [o for o in scene.objects if o.type != "DontCare"]
        dontcare = [o for o in scene.objects if o.type == "DontCare"]
        assert item["boxes"].dtype == torch.float32 and item["labels"].dtype == torch.int64
        np.testing.assert_allclose(item["boxes"].numpy(), np.array([o.box for o in objects]).reshape(-1, 4), atol=0.01)
        assert item["labels"].tolist() == [LABELS[o.type] for o in objects]
        np.testing.assert_allclose(
            item["ignore_boxes"].numpy(), np.array([o.box for o in dontcare]).reshape(-1, 4), atol=0.01
        )
        assert item["seg"].dtype == torch.uint8 and item["seg"].shape == (125, 414)
        np.testing.assert_array_equal(item["seg"].numpy(), _mapped(scene.semantic_ids))
        n_boxes += len(objects)
        n_ignore += len(dontcare)
    assert n_boxes > 5 and n_ignore > 0


def test_single_label_images(mixed_root: Path) -> None:
    ds = open_dataset("kitti", mixed_root, "train")
    kinds = [(ds[i]["has_det"], ds[i]["has_seg"]) for i in range(len(ds))]
    assert kinds.count((True, False)) == 2 and kinds.count((False, True)) == 2 and kinds.count((True, True)) == 4
    for i, (det, seg) in enumerate(kinds):
        item = ds[i]
        name = item["name"]
        assert det == (mixed_root / f"training/label_2/{name}.txt").is_file()
        assert seg == (mixed_root / f"training/semantic/{name}.png").is_file()
        if not seg:
            assert bool((item["seg"] == IGNORE_INDEX).all())
        else:
            assert int((item["seg"] == IGNORE_INDEX).sum()) == 0
        if not det:
            assert (
                item["boxes"].shape == (0, 4) and item["labels"].shape == (0,) and item["ignore_boxes"].shape == (0, 4)
            )
    batch = collate_batch([ds[i] for i in range(len(ds))])
    assert batch["has_det"].dtype == torch.bool and batch["has_det"].tolist() == [k[0] for k in kinds]
    assert batch["has_seg"].tolist() == [k[1] for k in kinds]


# ------------------------------------------------------------------------- transforms
def test_resize_scales_boxes_and_masks(synth_root: Path) -> None:
    base = open_dataset("kitti", synth_root, "train")
    double = open_dataset("kitti", synth_root, "train", image_size=(250, 828))
    small = open_dataset("kitti", synth_root, "train", image_size=(64, 192))
    for i in range(3):
        a, b, c = base[i], double[i], small[i]
        assert b["image"].shape == (3, 250, 828) and b["seg"].shape == (250, 828)
        torch.testing.assert_close(b["boxes"], a["boxes"] * 2)
        torch.testing.assert_close(b["ignore_boxes"], a["ignore_boxes"] * 2)
        assert torch.equal(b["seg"][::2, ::2], a["seg"])  # nearest neighbour at pixel centres
        assert torch.equal(b["labels"], a["labels"])
        assert c["image"].shape == (3, 64, 192)
        scale = torch.tensor([192 / 414, 64 / 125, 192 / 414, 64 / 125])
        torch.testing.assert_close(c["boxes"], a["boxes"] * scale)
        assert set(c["seg"].unique().tolist()) <= {0, 1, 2}
        # bilinear: the mean colour is preserved (to 1 % of the 0-255 range)
        assert abs(float(c["image"].float().mean()) - float(a["image"].float().mean())) < 2.55


def test_hflip_mirrors_image_mask_and_boxes() -> None:
    image = torch.arange(2 * 3 * 5, dtype=torch.uint8).reshape(3, 2, 5)
    seg = torch.tensor([[0, 1, 1, 2, 2], [0, 0, 1, 1, 2]])
    boxes = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.5, 5.0, 1.0]])
    out = T.hflip({"image": image, "seg": seg, "boxes": boxes, "ignore_boxes": torch.zeros(0, 4)})
    assert torch.equal(out["image"][:, :, 0], image[:, :, 4])
    assert torch.equal(out["seg"], seg.flip(-1))
    torch.testing.assert_close(out["boxes"], torch.tensor([[2.0, 0.0, 4.0, 2.0], [0.0, 0.5, 5.0, 1.0]]))
    assert out["ignore_boxes"].shape == (0, 4)
    assert torch.equal(T.hflip(out)["image"], image)  # input untouched, involution


def test_augment_flips_everything_consistently_and_is_seeded(synth_root: Path) -> None:
    plain = open_dataset("kitti", synth_root, "train")
    aug = open_dataset("kitti", synth_root, "train", augment=True, cache=True)
    width = 414
    flips = []
    torch.manual_seed(0)
    for _ in range(3):
        for i in range(len(plain)):
            a, b = plain[i], aug[i]
            flipped = not torch.equal(a["image"], b["image"])
            flips.append(flipped)
            if flipped:
                assert torch.equal(b["image"], a["image"].flip(-1))
                assert torch.equal(b["seg"], a["seg"].flip(-1))
                expected = (
                    torch.stack(
                        [width - a["boxes"][:, 2], a["boxes"][:, 1], width - a["boxes"][:, 0], a["boxes"][:, 3]], 1
                    )
                    if len(a["boxes"])
                    else a["boxes"]
                )
                torch.testing.assert_close(b["boxes"], expected)
            else:
                assert torch.equal(b["seg"], a["seg"]) and torch.equal(b["boxes"], a["boxes"])
    assert any(flips) and not all(flips)
    torch.manual_seed(0)
    again = [not torch.equal(plain[i]["image"], aug[i]["image"]) for _ in range(3) for i in range(len(plain))]
    assert again == flips
    # the cache is never modified by flips or by callers
    item = aug[0]
    item["boxes"] += 100
    item["ignore_boxes"] += 100
    item["image"] += 1
    cached = aug._load(0)
    assert torch.equal(cached["boxes"], plain[0]["boxes"])
    assert torch.equal(cached["image"], plain[0]["image"])


# ------------------------------------------------------------------------- splits
def test_splits(synth_root: Path) -> None:
    assert [open_dataset("kitti", synth_root, "val")[i]["name"] for i in range(2)] == ["000006", "000007"]
    assert open_dataset("kitti", synth_root, "test")[0]["name"] == "000008"
    every = open_dataset("kitti", synth_root, "all")
    assert [every[i]["name"] for i in range(len(every))] == [f"{i:06d}" for i in range(9)]
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", synth_root, "trainval")
    assert info.value.path == synth_root / "splits/trainval.txt" and "not found" in str(info.value)


def test_split_naming_a_missing_image(synth_root: Path, tmp_path: Path) -> None:
    root = _copy_layout(synth_root, tmp_path)
    (root / "splits/custom.txt").write_text("000000\n000001\n\n000042\n")
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "custom")
    assert info.value.path == root / "splits/custom.txt" and info.value.line == 4
    assert "000042" in str(info.value)
    with pytest.warns(UserWarning, match="skipped 1 bad sample"):
        ds = open_dataset("kitti", root, "custom", on_error="skip")
    assert len(ds) == 2 and ds.skipped[0].id == "000042" and ds.skipped[0].split == "custom"
    assert ds.skipped[0].to_dict() == {
        "split": "custom",
        "id": "000042",
        "file": str(root / "splits/custom.txt"),
        "line": 4,
        "problem": "image training/image_2/000042.png not found",
    }
    (root / "splits/dup.txt").write_text("000000\n000000\n")
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "dup")
    assert info.value.line == 2


# ------------------------------------------------------------------------- hand-made layouts
def _copy_layout(src: Path, dst: Path) -> Path:
    root = dst / "copy"
    for p in src.rglob("*"):
        if p.is_file():
            target = root / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())
    return root


def _tiny_layout(
    root: Path, labels: dict[str, str], semantic: dict[str, np.ndarray] | None = None, size: tuple[int, int] = (20, 30)
) -> Path:
    for sub in ("training/image_2", "training/label_2", "training/semantic", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, text in labels.items():
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / f"training/image_2/{name}.png")
        if text is not None:
            (root / f"training/label_2/{name}.txt").write_text(text)
    for name, ids in (semantic or {}).items():
        Image.fromarray(ids).save(root / f"training/semantic/{name}.png")
    (root / "splits/train.txt").write_text("".join(f"{n}\n" for n in labels))
    return root


LINE = "{t} 0.00 0 0.10 1.00 2.00 11.00 12.00 1.50 1.60 4.00 1.00 1.60 10.00 0.20\n"


def test_class_mapping(tmp_path: Path) -> None:
    text = "".join(
        LINE.format(t=t) for t in ("Car", "Van", "Pedestrian", "Person_sitting", "Cyclist", "Truck", "Tram", "Misc")
    )
    text += "DontCare -1 -1 -10 3.00 4.00 9.00 8.00 -1 -1 -1 -1000 -1000 -1000 -10\n"
    ids = np.array([[7, 8, 11, 26, 0, 255] * 5] * 20, np.uint8)
    root = _tiny_layout(tmp_path / "m", {"000000": text}, {"000000": ids})
    item = open_dataset("kitti", root, "train")[0]
    assert item["labels"].tolist() == [CAR, CAR, PEDESTRIAN, PEDESTRIAN, CYCLIST]
    assert item["boxes"].shape == (5, 4)
    torch.testing.assert_close(item["ignore_boxes"], torch.tensor([[3.0, 4.0, 9.0, 8.0]]))
    assert item["seg"][0, :6].tolist() == [1, 2, 0, 0, 0, 0]
    custom = open_dataset(
        "kitti", root, "train", mapping={"detection": {"Truck": "car", "Van": None}, "segmentation": {11: "ignore"}}
    )[0]
    assert custom["labels"].tolist() == [CAR, PEDESTRIAN, PEDESTRIAN, CYCLIST, CAR]
    assert custom["seg"][0, :6].tolist() == [1, 2, 255, 0, 0, 0]
    assert DEFAULT_MAPPING["detection"]["Van"] == "car"  # the default is not modified by overrides
    with pytest.raises(ValueError, match="Truck"):
        open_dataset("kitti", root, "train", mapping={"detection": {"Truck": "lorry"}})


def test_unknown_class_names_file_and_line(tmp_path: Path) -> None:
    root = _tiny_layout(tmp_path / "u", {"000000": LINE.format(t="Car") + LINE.format(t="Tractor")})
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "train")
    assert info.value.path == root / "training/label_2/000000.txt" and info.value.line == 2
    assert "Tractor" in str(info.value)


def test_malformed_label_names_file_and_line(tmp_path: Path) -> None:
    root = _tiny_layout(tmp_path / "b", {"000000": LINE.format(t="Car") + "Car 0.00 0 0.1 5 5 4 9 1 1 1 1 1 1 0\n"})
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "train")
    assert str(info.value).startswith(f"{root / 'training/label_2/000000.txt'}:2:")


def test_semantic_size_mismatch_and_mode(tmp_path: Path) -> None:
    root = _tiny_layout(
        tmp_path / "s",
        {"000000": LINE.format(t="Car"), "000001": LINE.format(t="Car")},
        {"000000": np.zeros((20, 31), np.uint8), "000001": np.zeros((20, 30), np.uint8)},
    )
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "train")
    assert info.value.path == root / "training/semantic/000000.png" and "31x20" in str(info.value)
    with pytest.warns(UserWarning, match="31x20"):
        ds = open_dataset("kitti", root, "train", on_error="skip")
    assert ds.names == ["000001"] and len(ds.skipped) == 1
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / "training/semantic/000000.png")
    with pytest.raises(DataFormatError, match="single-channel"):
        open_dataset("kitti", root, "train")


def test_corrupt_png_names_the_file(tmp_path: Path) -> None:
    root = _tiny_layout(tmp_path / "c", {"000000": LINE.format(t="Car"), "000001": LINE.format(t="Car")})
    bad = root / "training/image_2/000000.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(DataFormatError) as info:
        open_dataset("kitti", root, "train")
    assert info.value.path == bad
    # a valid header with truncated pixel data is only found when decoding
    good = root / "training/image_2/000001.png"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    ds = open_dataset("kitti", root, "train")
    with pytest.raises(DataFormatError) as info:
        ds[0]
    assert info.value.path == bad
    assert ds[1]["image"].shape == (3, 20, 30)


def test_missing_root_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not found"):
        open_dataset("kitti", tmp_path / "nowhere", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="image_2"):
        open_dataset("kitti", tmp_path / "empty", "train")


# ------------------------------------------------------------------------- registry, collate, loader
def test_registry(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kitti"):
        open_dataset("nuscenes", tmp_path, "train")
    seen = {}

    def factory(root, split, **kwargs):
        seen.update(kwargs, root=root, split=split)
        return ["x"]

    register_format("dummy-test-format", factory)
    assert open_dataset("dummy-test-format", tmp_path, "val", image_size=(32, 64), cache=True) == ["x"]
    assert seen["split"] == "val" and seen["image_size"] == (32, 64) and seen["cache"] is True
    assert seen["on_error"] == "raise" and seen["augment"] is False and seen["mapping"] is None
    with pytest.raises(ValueError, match="already registered"):
        register_format("dummy-test-format", lambda *a, **k: None)
    with pytest.raises(ValueError, match="on_error"):
        open_dataset("kitti", tmp_path, "train", on_error="ignore")


def test_collate_and_dataloader(synth_root: Path) -> None:
    ds = open_dataset("kitti", synth_root, "train", image_size=(64, 192), cache=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_batch)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 64, 192) and batch["image"].dtype == torch.uint8  # as decoded
    assert batch["seg"].shape == (4, 64, 192) and batch["seg"].dtype == torch.uint8
    assert len(batch["boxes"]) == len(batch["labels"]) == len(batch["ignore_boxes"]) == 4
    assert batch["has_det"].shape == (4,) and batch["has_seg"].dtype == torch.bool
    assert batch["names"] == ["000000", "000001", "000002", "000003"]
    assert all(b.shape[0] == lab.shape[0] for b, lab in zip(batch["boxes"], batch["labels"], strict=True))
    assert batch["labelled_tasks"] == ("det", "seg")
    items = [{**ds[i], "has_det": i == 1, "has_seg": False} for i in range(3)]
    assert collate_batch(items)["labelled_tasks"] == ("det",)
    assert collate_batch([{**it, "has_det": False} for it in items])["labelled_tasks"] == ()
    raw = open_dataset("kitti", synth_root, "train")
    with pytest.raises(ValueError, match="image_size"):
        collate_batch([raw[0], ds[1]])
