"""`check_dataset` and the `data check` command: counts per split and class, every problem listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from taskweight.data.check import check_dataset
from taskweight.data.command import data_app
from taskweight.synth import generate_dataset


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chk") / "kitti"
    generate_dataset(root, train=4, val=2, test=2, seed=1, size=(48, 160))
    return root


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    app.add_typer(data_app, name="data")
    return app


def test_clean_dataset_counts(kitti_root: Path) -> None:
    report = check_dataset("kitti", kitti_root)
    assert report.ok and report.problems == []
    assert [report.splits[s].images for s in ("train", "val", "test")] == [4, 2, 2]
    synth = json.loads((kitti_root / "synth.json").read_text())["objects_per_split"]
    assert report.splits["train"].boxes["car"] == synth["train"]["Car"]
    assert report.splits["train"].ignore_boxes == synth["train"]["DontCare"]
    assert report.splits["val"].seg_pixels["road"] > 0
    assert report.to_dict()["ok"] and "0 problem(s)" in report.to_text()
    all_report = check_dataset("kitti", kitti_root, "all")
    assert list(all_report.splits) == ["all"] and all_report.splits["all"].images == 8


def _broken_woodscape(root: Path) -> Path:
    for d in ("rgb_images", "box_2d_annotations", "semantic_annotations/gtLabels"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, cam in enumerate(("FV", "RV", "MVL", "MVR", "FV")):
        name = f"{i // 4:05d}_{cam}"
        Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(root / f"rgb_images/{name}.png")
        Image.fromarray(np.ones((10, 20), np.uint8)).save(root / f"semantic_annotations/gtLabels/{name}.png")
        (root / f"box_2d_annotations/{name}.txt").write_text("vehicles,0,1,1,5,5\n")
    (root / "box_2d_annotations/00000_RV.txt").write_text("vehicles,0,1,1,5,5\ntruck,0,1,1,5,5\nperson,1,9,1,3,5\n")
    Image.fromarray(np.full((10, 20), 11, np.uint8)).save(root / "semantic_annotations/gtLabels/00000_MVL.png")
    (root / "box_2d_annotations/00009_FV.txt").write_text("")  # label without its image
    return root


def test_every_problem_is_listed(tmp_path: Path) -> None:
    root = _broken_woodscape(tmp_path / "ws")
    report = check_dataset("woodscape", root, "all")
    assert not report.ok
    where = {(Path(p.path).name, p.line) for p in report.problems}
    assert {("00000_RV.txt", 2), ("00000_RV.txt", 3), ("00000_MVL.png", None), ("00009_FV.txt", None)} <= where
    pixel = [p for p in report.problems if p.path.endswith("00000_MVL.png")][0]
    assert "x=0, y=0" in pixel.message and "11" in pixel.message
    assert report.splits["all"].images == 3 and report.splits["all"].bad == 3
    assert report.splits["all"].boxes["car"] == 3
    # the default splits: the extra pass over "all" still finds every file
    default = check_dataset("woodscape", root)
    assert {(Path(p.path).name, p.line) for p in default.problems if Path(p.path) != root} == where
    # a split whose every sample is bad says so, and its bad samples are still counted
    assert all("has no usable samples" in p.message for p in default.problems if Path(p.path) == root)
    assert sum(c.bad for c in default.splits.values()) == 3


def test_cli_exit_codes_and_output(kitti_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(_app(), ["data", "check", "--format", "kitti", "--root", str(kitti_root)])
    assert ok.exit_code == 0, ok.output
    assert "no problems found" in ok.output and "train" in ok.output
    root = _broken_woodscape(tmp_path / "ws")
    bad = runner.invoke(_app(), ["data", "check", "--format", "woodscape", "--root", str(root), "--split", "all"])
    assert bad.exit_code == 1
    assert "00000_RV.txt:2" in bad.output and "unknown class 'truck'" in bad.output
    as_json = runner.invoke(
        _app(), ["data", "check", "--format", "woodscape", "--root", str(root), "--json", "--option", "split_seed=3"]
    )
    assert as_json.exit_code == 1 and json.loads(as_json.output)["ok"] is False
    wrong = runner.invoke(_app(), ["data", "check", "--format", "nope", "--root", str(root)])
    assert wrong.exit_code == 2 and "unknown dataset format" in wrong.output


def test_segmentation_ids_outside_the_mapping_are_warnings_with_counts(tmp_path: Path) -> None:
    root = tmp_path / "k"
    for sub in ("training/image_2", "training/label_2", "training/semantic"):
        (root / sub).mkdir(parents=True)
    line = "Car 0.00 0 0.10 1.00 2.00 11.00 12.00 1.50 1.60 4.00 1.00 1.60 10.00 0.20\n"
    for i, (n37, n200) in enumerate([(0, 0), (5, 0), (7, 2), (9, 0), (0, 0)]):
        name = f"{i:06d}"
        ids = np.full((20, 30), 7, np.uint8)
        ids.ravel()[:n37] = 37  # not a (Cityscapes) label id: becomes void
        ids.ravel()[100 : 100 + n200] = 200
        ids[19, :3] = 11  # building: a label id, void by design -> no warning
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / f"training/image_2/{name}.png")
        Image.fromarray(ids).save(root / f"training/semantic/{name}.png")
        (root / f"training/label_2/{name}.txt").write_text(line)
    report = check_dataset("kitti", root)  # train/val/test plus the pass over "all"
    assert report.ok and sum(c.bad for c in report.splits.values()) == 0
    assert [(u.id, u.pixels, u.images) for u in report.unmapped.values()] in (
        [(37, 21, 3), (200, 2, 1)],
        [(200, 2, 1), (37, 21, 3)],
    )
    assert report.warnings[0].startswith("segmentation id 37: 21 px in 3 image(s), not in the class mapping")
    assert "id 200: 2 px in 1 image(s)" in report.warnings[1] and "000002.png" in report.warnings[1]
    assert "2 warning(s):" in report.to_text() and "id 37: 21 px in 3 image(s)" in report.to_text()
    data = report.to_dict()
    assert data["ok"] and [(w["id"], w["pixels"], w["images"]) for w in data["warnings"]] == [(37, 21, 3), (200, 2, 1)]
    # a mapping that lists an id silences its warning
    mapped = check_dataset("kitti", root, "all", mapping={"segmentation": {37: "road"}})
    assert list(mapped.unmapped) == [200]
    runner = CliRunner()
    out = runner.invoke(_app(), ["data", "check", "--format", "kitti", "--root", str(root)])
    assert out.exit_code == 0, out.output  # warnings do not fail the check
    assert "warning: segmentation id 37: 21 px in 3 image(s)" in out.output
    as_json = json.loads(
        runner.invoke(_app(), ["data", "check", "--format", "kitti", "--root", str(root), "--json"]).output
    )
    assert as_json["ok"] and as_json["warnings"][0]["id"] == 37


def test_colours_outside_the_mapping_are_warnings(tmp_path: Path) -> None:
    root = tmp_path / "k"
    for sub in ("training/image_2", "training/label_2", "training/semantic"):
        (root / sub).mkdir(parents=True)
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:5] = (128, 64, 128)  # road
    rgb[9, :4] = (70, 70, 70)  # not in the colour table: void
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(root / "training/image_2/000000.png")
    Image.fromarray(rgb).save(root / "training/semantic/000000.png")
    report = check_dataset("kitti", root, "all")
    assert report.ok and report.warnings == [
        f"segmentation colour 70,70,70: 4 px in 1 image(s), not in the class mapping (void), e.g. "
        f"{root / 'training/semantic/000000.png'}"
    ]


def test_bad_option_value_is_a_clear_error(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        _app(), ["data", "check", "--format", "kitti", "--root", str(tmp_path), "--option", "split_seed=[1"]
    )
    assert out.exit_code == 2 and "split_seed" in out.output and "Traceback" not in out.output


def test_depth_files_are_counted_and_checked(tmp_path: Path) -> None:
    """With --depth every depth file is opened: the images that have one are counted, a broken one is a
    problem naming it (and its image is counted bad); without --depth they are not looked at."""
    root = tmp_path / "kitti-depth"
    generate_dataset(root, train=4, val=2, test=2, seed=1, size=(48, 160), depth=True)
    report = check_dataset("kitti", root, depth=True)
    assert report.ok, report.to_text()
    assert {s: (c.images, c.with_depth) for s, c in report.splits.items()} == {
        "train": (4, 4),
        "val": (2, 2),
        "test": (2, 2),
    }
    assert check_dataset("kitti", root).splits["train"].with_depth == 0  # depth not asked: not read
    depth_files = sorted((root / "training" / "depth").glob("*.png"))
    broken = depth_files[0]
    Image.fromarray(np.zeros((10, 10), dtype=np.uint16)).save(broken)  # wrong size
    report = check_dataset("kitti", root, "all", depth=True)
    assert not report.ok and any(broken.name in str(p) for p in report.problems), report.to_text()
    assert report.splits["all"].bad == 1 and report.splits["all"].with_depth == len(depth_files) - 1
    runner = CliRunner()
    result = runner.invoke(
        _app(),
        ["data", "check", "--format", "kitti", "--root", str(root), "--split", "all", "--depth"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1 and broken.name in result.output and "depth" in result.output, result.output
