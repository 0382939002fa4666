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
    assert {(Path(p.path).name, p.line) for p in default.problems} == where


def test_cli_exit_codes_and_output(kitti_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(_app(), ["data", "check", "--format", "kitti", "--root", str(kitti_root)])
    assert ok.exit_code == 0, ok.output
    assert "no problems found" in ok.output and "train" in ok.output
    root = _broken_woodscape(tmp_path / "ws")
    bad = runner.invoke(_app(), ["data", "check", "--format", "woodscape", "--root", str(root), "--split", "all"])
    assert bad.exit_code == 1
    assert "00000_RV.txt:2" in bad.output and "unknown class 'truck'" in bad.output
    as_json = runner.invoke(_app(), ["data", "check", "--format", "woodscape", "--root", str(root), "--json",
                                     "--option", "split_seed=3"])
    assert as_json.exit_code == 1 and json.loads(as_json.output)["ok"] is False
    wrong = runner.invoke(_app(), ["data", "check", "--format", "nope", "--root", str(root)])
    assert wrong.exit_code == 2 and "unknown dataset format" in wrong.output
