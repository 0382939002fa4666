"""``on_error="skip"`` drops every sample that ``data check`` counts as bad (all three formats),
malformed masks included, and lists them as structured records; ``skipped_report`` and the
trainer's ``metrics.json`` give ``{"count": N, "samples": [{split, id, file, line, problem}]}``."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskweight.data import open_dataset
from taskweight.data.check import check_dataset
from taskweight.data.problems import SkippedSample, skipped_report
from taskweight.errors import DataFormatError

H, W = 20, 30
KEYS = {"split", "id", "file", "line", "problem"}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------- layouts
def _kitti_line(t: str = "Car", box: str = "1.00 2.00 11.00 12.00") -> str:
    return f"{t} 0.00 0 0.10 {box} 1.50 1.60 4.00 1.00 1.60 10.00 0.20\n"


def _kitti(root: Path) -> tuple[Path, dict[str, Path]]:
    """A KITTI layout with three good samples and one bad sample of each kind; returns the
    root and the file each bad sample should be blamed on."""
    img, lab, sem = (root / "training" / d for d in ("image_2", "label_2", "semantic"))
    for d in (img, lab, sem):
        d.mkdir(parents=True, exist_ok=True)
    ids = np.full((H, W), 7, np.uint8)
    names = ["good", "good16", "unmapped", "line", "cls", "box", "orphan", "nolabel", "size", "trunc", "wide"]
    for i, n in enumerate(names):
        if n != "orphan":
            Image.fromarray(_noise(i)).save(img / f"{n}.png")
        if n != "nolabel":
            (lab / f"{n}.txt").write_text(_kitti_line())
        Image.fromarray(ids).save(sem / f"{n}.png")
    (sem / "nolabel.png").unlink()
    Image.fromarray(np.full((H, W), 8, np.uint16)).save(sem / "good16.png")  # 16-bit, ids <= 255: fine
    Image.fromarray(np.full((H, W), 37, np.uint8)).save(sem / "unmapped.png")  # not a label id: a warning only
    (lab / "line.txt").write_text(_kitti_line() + "Car 0.0 0 oops\n")
    (lab / "cls.txt").write_text(_kitti_line("Spaceship"))
    (lab / "box.txt").write_text(_kitti_line(box="11.00 2.00 1.00 12.00"))
    Image.fromarray(np.full((H + 1, W), 7, np.uint8)).save(sem / "size.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 34, (H, W)).astype(np.uint8)).save(sem / "trunc.png")
    _truncate(sem / "trunc.png")
    wide = np.full((H, W), 7, np.uint16)
    wide[3, 4] = 1000
    Image.fromarray(wide).save(sem / "wide.png")  # 16-bit mask with an id past 255
    blame = {
        "line": lab / "line.txt",
        "cls": lab / "cls.txt",
        "box": lab / "box.txt",
        "orphan": lab / "orphan.txt",
        "nolabel": img / "nolabel.png",
        "size": sem / "size.png",
        "trunc": sem / "trunc.png",
        "wide": sem / "wide.png",
    }
    return root, blame


def _cityscapes(root: Path) -> tuple[Path, dict[str, Path]]:
    img, gt = root / "leftImg8bit/train/c", root / "gtFine/train/c"
    img.mkdir(parents=True)
    gt.mkdir(parents=True)
    stem = "c_000000_{}".format
    ok = np.full((H, W), 7, np.uint8)
    names = ["good", "inst", "poly", "orphan", "nolabel", "size", "trunc", "notid", "wide", "badinst", "badpoly"]
    for i, n in enumerate(names):
        if n != "orphan":
            Image.fromarray(_noise(i)).save(img / f"{stem(n)}_leftImg8bit.png")
        if n not in ("nolabel", "poly", "badpoly", "inst", "badinst"):
            Image.fromarray(ok).save(gt / f"{stem(n)}_gtFine_labelIds.png")
    inst = np.full((H, W), 7, np.uint16)
    inst[2:8, 3:9] = 26000
    Image.fromarray(inst).save(gt / f"{stem('inst')}_gtFine_instanceIds.png")
    inst[2:8, 3:9] = 40000  # label id 40: not a Cityscapes id
    Image.fromarray(inst).save(gt / f"{stem('badinst')}_gtFine_instanceIds.png")
    car = {"label": "car", "polygon": [[1, 1], [6, 1], [6, 6], [1, 6]]}
    (gt / f"{stem('poly')}_gtFine_polygons.json").write_text(
        json.dumps({"imgHeight": H, "imgWidth": W, "objects": [car]}, indent=1)
    )
    (gt / f"{stem('badpoly')}_gtFine_polygons.json").write_text(
        json.dumps({"imgHeight": H, "imgWidth": W, "objects": [car, {**car, "label": "spaceship"}]}, indent=1)
    )
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(gt / f"{stem('size')}_gtFine_labelIds.png")
    _truncate(gt / f"{stem('trunc')}_gtFine_labelIds.png")
    Image.fromarray(np.full((H, W), 40, np.uint8)).save(gt / f"{stem('notid')}_gtFine_labelIds.png")
    Image.fromarray(np.full((H, W), 300, np.uint16)).save(gt / f"{stem('wide')}_gtFine_labelIds.png")
    blame = {
        "orphan": gt / f"{stem('orphan')}_gtFine_labelIds.png",
        "nolabel": img / f"{stem('nolabel')}_leftImg8bit.png",
        "size": gt / f"{stem('size')}_gtFine_labelIds.png",
        "trunc": gt / f"{stem('trunc')}_gtFine_labelIds.png",
        "notid": gt / f"{stem('notid')}_gtFine_labelIds.png",
        "wide": gt / f"{stem('wide')}_gtFine_labelIds.png",
        "badinst": gt / f"{stem('badinst')}_gtFine_instanceIds.png",
        "badpoly": gt / f"{stem('badpoly')}_gtFine_polygons.json",
    }
    return root, {f"train/c/{stem(k)}": v for k, v in blame.items()}


def _woodscape(root: Path) -> tuple[Path, dict[str, Path]]:
    img, box, sem = root / "rgb_images", root / "box_2d_annotations", root / "semantic_annotations/gtLabels"
    for d in (img, box, sem):
        d.mkdir(parents=True)
    names = {
        "00000_FV": "good",
        "00000_RV": "good2",
        "00000_MVL": "idname",
        "00000_MVR": "line",
        "00001_FV": "cls",
        "00001_RV": "box",
        "00001_MVL": "orphan",
        "00001_MVR": "nolabel",
        "00002_FV": "size",
        "00002_RV": "trunc",
        "00002_MVL": "index",
        "00002_XX": "camera",
    }
    ok = np.ones((H, W), np.uint8)
    for i, (n, kind) in enumerate(names.items()):
        if kind != "orphan":
            Image.fromarray(_noise(i)).save(img / f"{n}.png")
        if kind != "nolabel":
            (box / f"{n}.txt").write_text("vehicles,0,1,1,5,5\nperson,1,6,1,9,9\n")
            Image.fromarray(ok).save(sem / f"{n}.png")
    (box / "00000_MVL.txt").write_text("vehicles,0,1,1,5,5\nperson,0,6,1,9,9\n")  # id 0 is vehicles
    (box / "00000_MVR.txt").write_text("vehicles,0,1,1,5\n")
    (box / "00001_FV.txt").write_text("spaceship,9,1,1,5,5\n")
    (box / "00001_RV.txt").write_text("vehicles,0,5,1,5,5\n")
    Image.fromarray(np.ones((H + 1, W), np.uint8)).save(sem / "00002_FV.png")
    _truncate(sem / "00002_RV.png")
    index = ok.copy()
    index[5, 6] = 12  # not a gtLabels index of the mapping
    Image.fromarray(index).save(sem / "00002_MVL.png")
    blame = {
        "00000_MVL": box / "00000_MVL.txt",
        "00000_MVR": box / "00000_MVR.txt",
        "00001_FV": box / "00001_FV.txt",
        "00001_RV": box / "00001_RV.txt",
        "00001_MVL": box / "00001_MVL.txt",
        "00001_MVR": img / "00001_MVR.png",
        "00002_FV": sem / "00002_FV.png",
        "00002_RV": sem / "00002_RV.png",
        "00002_MVL": sem / "00002_MVL.png",
        "00002_XX": img / "00002_XX.png",
    }
    return root, blame


LAYOUTS = {"kitti": _kitti, "cityscapes": _cityscapes, "woodscape": _woodscape}


def _skip(format: str, root: Path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return open_dataset(format, root, "all", on_error="skip", **options)


# ----------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("format", sorted(LAYOUTS))
def test_check_bad_count_equals_what_skip_drops(format: str, tmp_path: Path) -> None:
    root, blame = LAYOUTS[format](tmp_path / format)
    report = check_dataset(format, root, "all")
    ds = _skip(format, root)
    assert report.splits["all"].bad == len(ds.skipped) == len(blame)
    assert report.splits["all"].images == len(ds)
    assert {s.id for s in ds.skipped} == set(blame)
    for s in ds.skipped:
        assert isinstance(s, SkippedSample) and s.split == "all" and s.file == str(blame[s.id]), s
        assert s.problem and not s.problem.startswith(s.file)
    for i in range(len(ds)):  # everything that was kept loads
        ds[i]
    # every problem check lists is one of the skipped samples' (nothing surfaces only when loading)
    assert {p.path for p in report.problems} <= {str(p) for p in blame.values()} | {str(e.path) for e in ds.problems}


@pytest.mark.parametrize("format", sorted(LAYOUTS))
def test_one_protocol_index_returns_problems_and_the_base_decides(format: str, tmp_path: Path) -> None:
    """Every format's ``_index`` gives (sample, []) or (None, its problems) and never raises for a problem
    of the sample; the label masks are decoded by ``_check_labels``; the base raises the first problem
    (``on_error="raise"``) or skips and counts (``"skip"``)."""
    root, blame = LAYOUTS[format](tmp_path / format)
    ds = _skip(format, root)
    entries = ds._split_entries()
    assert {e.name for e in entries} == set(ds.names) | set(blame)
    first_problem: dict[str, DataFormatError] = {}
    for entry in entries:
        sample, problems = ds._index(entry)  # never raises
        if problems:
            assert sample is None and all(isinstance(p, DataFormatError) for p in problems)
            first_problem[entry.name] = problems[0]
            continue
        assert sample is not None and sample.name == entry.name
        try:
            ds._check_labels(sample)
        except DataFormatError as exc:  # a malformed mask: found by decoding it
            first_problem[entry.name] = exc
    assert {name: error.path for name, error in first_problem.items()} == blame
    assert [s.id for s in ds.skipped] == [e.name for e in entries if e.name in blame]
    with pytest.raises(DataFormatError) as info:  # raise: the first problem of the first bad entry
        open_dataset(format, root, "all", verify="crc")
    first_bad = next(e.name for e in entries if e.name in blame)
    assert (info.value.path, info.value.line, info.value.reason) == (
        first_problem[first_bad].path,
        first_problem[first_bad].line,
        first_problem[first_bad].reason,
    )


@pytest.mark.parametrize("format", sorted(LAYOUTS))
def test_unknown_split_names_the_split_file_and_the_choices(format: str, tmp_path: Path) -> None:
    root, _blame = LAYOUTS[format](tmp_path / format)
    with pytest.raises(DataFormatError) as info:
        open_dataset(format, root, "trainval")
    assert info.value.path == root / "splits/trainval.txt"
    assert info.value.reason == "split file not found (available splits: ['train', 'val', 'test', 'all'])"


def test_malformed_masks_are_found_at_opening(tmp_path: Path) -> None:
    cases = [
        ("kitti", tmp_path / "kitti", "wide", r"label ids must be in 0\.\.255, found 7\.\.1000"),
        ("cityscapes", tmp_path / "cityscapes", "train/c/c_000000_wide", r"hold no Cityscapes label id"),
        ("woodscape", tmp_path / "woodscape", "00002_MVL", r"unknown class index.*\(x=6, y=5\) = 12"),
    ]
    for format, root, bad, message in cases:
        _root, blame = LAYOUTS[format](root)
        for name in list(blame):  # keep the good samples and the malformed mask only
            if name != bad:
                for p in root.rglob(f"{Path(name).name}*"):
                    p.unlink()
        ds = _skip(format, root)
        assert [(s.id, s.file, s.line) for s in ds.skipped] == [(bad, str(blame[bad]), None)]
        with pytest.raises(DataFormatError, match=message) as info:  # raise + read the data: at opening
            open_dataset(format, root, "all", verify="crc")
        assert info.value.path == blame[bad] and str(info.value).startswith(str(blame[bad]))
        lazy = open_dataset(format, root, "all")  # raise, headers only: when the sample is loaded
        with pytest.raises(DataFormatError, match=message) as info:
            for i in range(len(lazy)):
                lazy[i]
        assert info.value.path == blame[bad]


def test_skipped_report_counts_every_split_once(tmp_path: Path) -> None:
    root, blame = _woodscape(tmp_path / "ws")
    ds = _skip("woodscape", root)
    report = skipped_report([ds, ds])
    assert report["count"] == len(blame) and len(report["samples"]) == len(blame)
    assert all(set(s) == KEYS for s in report["samples"])
    line = next(s for s in report["samples"] if s["id"] == "00000_MVR")
    assert (
        line
        == {"split": "all", "id": "00000_MVR", "file": str(blame["00000_MVR"]), "line": 1, "problem": line["problem"]}
        and "expected 6 comma-separated" in line["problem"]
    )
    json.dumps(report)  # plain JSON

    class Legacy:  # a dataset of another registered format: (name, message) pairs
        split = "val"
        skipped = [("x1", "broken")]

    assert skipped_report([Legacy()]) == {
        "count": 1,
        "samples": [{"split": "val", "id": "x1", "file": None, "line": None, "problem": "broken"}],
    }
    assert skipped_report([]) == {"count": 0, "samples": []}


@pytest.mark.filterwarnings("ignore:.*skipped 1 bad sample")
def test_metrics_json_lists_skipped_samples_of_every_split(tmp_path: Path, tiny_kitti: Path, tiny_config) -> None:
    from taskweight.trainer import Trainer

    root = tmp_path / "data"
    shutil.copytree(tiny_kitti, root)
    train_name = (root / "splits/train.txt").read_text().split()[0]
    val_name = (root / "splits/val.txt").read_text().split()[0]
    mask = root / "training/semantic" / f"{train_name}.png"
    with Image.open(mask) as im:
        ids = np.asarray(im).astype(np.uint16)
    ids[0, 0] = 4000
    Image.fromarray(ids).save(mask)  # 16-bit mask, an id past 255
    label = root / "training/label_2" / f"{val_name}.txt"
    label.write_text(label.read_text() + "Car 0.0 0 oops\n")
    lines = len(label.read_text().splitlines())
    config = tiny_config.model_copy(
        update={"epochs": 1, "data": tiny_config.data.model_copy(update={"root": root, "on_error": "skip"})}
    )
    result = Trainer(config, tmp_path / "run", show_progress=False).fit()
    skipped = result.metrics["skipped_samples"]
    assert skipped["count"] == 2
    by_split = {s["split"]: s for s in skipped["samples"]}
    assert by_split["train"]["id"] == train_name and by_split["train"]["file"] == str(mask)
    assert by_split["train"]["line"] is None and "0..255" in by_split["train"]["problem"]
    assert by_split["val"] == {
        "split": "val",
        "id": val_name,
        "file": str(label),
        "line": lines,
        "problem": by_split["val"]["problem"],
    }
    on_disk = json.loads((tmp_path / "run/metrics.json").read_text())["skipped_samples"]
    assert on_disk == skipped
