"""The bench runner end to end on a tiny preset: files, resume, failing cells; tasks per preset or
dataset, and a three-task (depth) bench from its generated data to its Table II."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from taskweight.bench import BenchRunner, load_bench_preset
from taskweight.cli import app

EXPECTED_FILES = [
    "results.json",
    "results.csv",
    "table2.md",
    "table1.md",
    "summary.json",
    "paper_comparison.md",
    "gm_by_method.png",
    "weights_over_training.png",
]


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    preset = load_bench_preset("tiny").model_copy(
        update={
            "methods": ["equal", "meta", "static"],
            # a cell that raises: negative static weights are rejected when the strategy is built
            "method_options": {"static": {"weights": {"det": -1.0, "seg": 1.0}}},
        }
    )
    out = tmp_path_factory.mktemp("bench")
    BenchRunner(preset, out, seeds=2, show_progress=False).run()
    return out


def test_every_file_is_written_and_failures_are_reported(bench_out: Path):
    for name in EXPECTED_FILES:
        assert (bench_out / name).is_file(), name
    records = json.loads((bench_out / "results.json").read_text())["records"]
    by_status: dict[str, list] = {}
    for r in records:
        by_status.setdefault(r["status"], []).append((r["method"], r["seed"]))
    assert sorted(by_status["ok"]) == [("equal", 0), ("equal", 1), ("meta", 0), ("meta", 1)]
    assert sorted(by_status["failed"]) == [("static", 0), ("static", 1)]
    failed = next(r for r in records if r["status"] == "failed")
    assert "must be a finite number >= 0" in failed["error"]
    assert (bench_out / "cells/synth-tiny/static/seed0/error.txt").read_text().count("Traceback") == 1
    meta = next(r for r in records if r["method"] == "meta")
    assert meta["epochs"] == 1  # matched: the baselines' 1 epoch, as 1 evaluation of 1 epoch
    assert set(meta["weights"]) == {"det", "seg"}
    table = (bench_out / "table2.md").read_text()
    assert "synth-tiny" in table and "±" in table


def test_rerun_skips_finished_cells(bench_out: Path):
    ok_cell = bench_out / "cells/synth-tiny/equal/seed0/cell.json"
    before = ok_cell.stat().st_mtime_ns
    preset = load_bench_preset("tiny").model_copy(update={"methods": ["equal", "meta"]})
    records = BenchRunner(preset, bench_out, seeds=2, show_progress=False).run()
    assert ok_cell.stat().st_mtime_ns == before
    assert {r.status for r in records} == {"ok"}


def test_cli_exit_status_is_nonzero_when_a_cell_fails(bench_out: Path, tmp_path: Path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(bench_out / "data" / "synth-tiny", data)
    first = (data / "splits" / "train.txt").read_text().split()[0]
    (data / "training" / "label_2" / f"{first}.txt").write_text("Car 0 0\n")  # fails when the cell opens its data
    preset_file = tmp_path / "bench.yaml"
    preset_file.write_text(
        "train_preset: tiny\n"
        "train_overrides: {epochs: 1}\n"
        "methods: [equal]\n"
        "datasets:\n"
        f"  - {{name: synth-tiny, format: kitti, root: {data}}}\n"
    )
    result = CliRunner().invoke(
        app, ["bench", "--preset", str(preset_file), "--out", str(tmp_path / "o"), "--no-progress"]
    )
    assert result.exit_code == 1
    assert "failed" in result.output and f"{first}.txt:1" in result.output


def test_bench_preset_errors_name_the_option(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: 0\ndatasets: []\n")
    from taskweight.errors import ConfigError

    with pytest.raises(ConfigError, match="option 'seeds'"):
        load_bench_preset(bad)


def test_parallel_jobs_give_the_same_results_as_one_after_another(bench_out: Path, tmp_path: Path):
    from taskweight.bench.runner import BenchDataset

    root = bench_out / "data" / "synth-tiny"
    preset = load_bench_preset("tiny").model_copy(
        update={"methods": ["equal"], "datasets": [BenchDataset(name="synth-tiny", format="kitti", root=root)]}
    )
    records = BenchRunner(preset, tmp_path / "par", seeds=2, jobs=2, show_progress=False).run()
    # each of 2 jobs on this 2-core machine runs 1 torch thread; bf16 reductions depend on the
    # thread count, so the serial reference runs with 1 thread too
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        serial = {r.seed: r for r in BenchRunner(preset, tmp_path / "ser", seeds=2, show_progress=False).run()}
    finally:
        torch.set_num_threads(threads)
    assert len(records) == 2
    for r in records:
        assert r.status == "ok"
        assert r.mAP == pytest.approx(serial[r.seed].mAP, abs=1e-6)
        assert r.mIoU == pytest.approx(serial[r.seed].mIoU, abs=1e-6)


def test_cells_run_seed_major_so_a_cut_short_run_holds_whole_tables(tmp_path: Path):
    preset = load_bench_preset("synth")
    runner = BenchRunner(preset, tmp_path / "out", seeds=2, show_progress=False)
    keys = [(d.name, m, s) for d, m, s in runner.cells()]
    per_seed = len(preset.datasets) * len(preset.methods)
    assert len(keys) == 2 * per_seed == len(set(keys))
    assert {s for _, _, s in keys[:per_seed]} == {0}
    assert {(d, m) for d, m, _ in keys[:per_seed]} == {(d, m) for d, m, _ in keys[per_seed:]}


def test_every_shipped_bench_preset_validates_with_its_training_configs():
    from taskweight.bench.runner import BENCH_PRESETS_DIR, _deep_merge
    from taskweight.config import load_config

    names = sorted(p.stem for p in BENCH_PRESETS_DIR.glob("*.yaml"))
    expected = {"quick", "synth", "synth-lite", "synth-large", "synth-paper", "paper", "tiny", "field", "three-task"}
    assert expected <= set(names)
    for name in names:
        preset = load_bench_preset(name)
        for ds in preset.datasets:
            cfg = load_config(preset.train_preset, overrides=_deep_merge(preset.train_overrides, ds.train_overrides))
            assert cfg.epochs >= 1, (name, ds.name)
            if "depth" in cfg.tasks and ds.synth is not None:  # depth is trained on data generated with depth
                assert ds.synth.depth, (name, ds.name)
            if name != "three-task":
                assert cfg.tasks == ["det", "seg"], (name, ds.name)  # the paper's presets keep the paper's tasks


def test_the_three_task_preset_is_synths_synth_kitti_with_depth():
    """Nine methods, three seeds, `synth`'s synth-kitti dataset and training (as it was measured, with the
    centre assignment), generated with depth and trained on det + seg + depth."""
    from taskweight.bench.runner import _deep_merge
    from taskweight.config import load_config

    three, synth = load_bench_preset("three-task"), load_bench_preset("synth")
    assert three.methods == synth.methods and len(three.methods) == 9 and three.seeds == 3
    assert three.protocol == synth.protocol and three.search == synth.search
    (ds,) = three.datasets
    (kitti,) = [d for d in synth.datasets if d.name == "synth-kitti"]
    assert ds.name != kitti.name  # its cells never collide with synth's when results are merged
    assert ds.synth is not None and kitti.synth is not None
    assert ds.synth.depth and ds.synth.depth_pattern == "dense"
    assert ds.synth.model_copy(update={"depth": False}) == kitti.synth  # 1200/200/200 synth-kitti scenes
    assert (ds.synth.train, ds.synth.val, ds.synth.test) == (1200, 200, 200)

    def config(preset, d):
        return load_config(preset.train_preset, overrides=_deep_merge(preset.train_overrides, d.train_overrides))

    cfg = config(three, ds)
    assert cfg.tasks == ["det", "seg", "depth"]
    assert cfg.epochs == 10 and list(cfg.data.image_size) == [128, 416]
    # synth's synth-kitti training as it was measured: before synth's re-size to the neighbour-cell assignment
    synth_cfg = config(synth, kitti)
    assert synth_cfg.model.det_assignment == "neighbours" and cfg.model.det_assignment == "centre"
    centre = synth_cfg.model.model_copy(update={"det_assignment": "centre"})
    assert cfg == synth_cfg.model_copy(update={"tasks": ["det", "seg", "depth"], "model": centre})
    assert BenchRunner(three, "unused", show_progress=False).dataset_tasks(ds) == ("det", "seg", "depth")


@pytest.mark.parametrize("where", ["preset", "dataset"])
def test_depth_on_synthetic_data_without_depth_is_refused_naming_the_line(tmp_path: Path, where: str):
    from taskweight.errors import ConfigError

    tasks = "{tasks: [det, seg, depth]}"
    preset_file = tmp_path / "bench.yaml"
    preset_file.write_text(
        "train_preset: tiny\n" + (f"train_overrides: {tasks}\n" if where == "preset" else "") + "methods: [equal]\n"
        "datasets:\n"
        "  - name: d\n"
        "    synth: {preset: synth-kitti, train: 4, val: 2, test: 2, size: [64, 192]}\n"
        + (f"    train_overrides: {tasks}\n" if where == "dataset" else "")
    )
    line = 6 if where == "preset" else 5  # the dataset's synth block
    with pytest.raises(ConfigError, match=rf"bench\.yaml:{line}: option 'datasets\[0\]\.synth\.depth'.*depth: true"):
        load_bench_preset(preset_file)
    preset_file.write_text(preset_file.read_text().replace("size: [64, 192]", "size: [64, 192], depth: true"))
    preset = load_bench_preset(preset_file)
    assert BenchRunner(preset, tmp_path / "o", show_progress=False).dataset_tasks(preset.datasets[0]) == (
        "det",
        "seg",
        "depth",
    )
    preset_file.write_text(preset_file.read_text().replace("depth: true", "depth: true, depth_pattern: radar"))
    with pytest.raises(ConfigError, match="depth_pattern"):
        load_bench_preset(preset_file)


def test_a_three_task_bench_trains_scores_and_reports_depth(tmp_path: Path):
    """One cell of a tiny three-task bench, from its generated depth data to Table II's depth rows."""
    import csv
    import math

    from taskweight.bench.runner import BenchDataset, SynthSpec
    from taskweight.data.depth import read_kitti_depth
    from taskweight.metrics import geometric_mean
    from taskweight.scoring import score_run

    dataset = BenchDataset(
        name="synth-kitti-tiny-depth",  # maps to the paper's KITTI by name, but not by its tasks
        format="kitti",
        synth=SynthSpec(preset="synth-kitti", train=16, val=8, test=8, seed=0, size=(64, 192), depth=True),
        train_overrides={"tasks": ["det", "seg", "depth"]},
    )
    preset = load_bench_preset("tiny").model_copy(update={"methods": ["equal"], "seeds": 1, "datasets": [dataset]})
    out = tmp_path / "bench"
    (record,) = BenchRunner(preset, out, show_progress=False).run()
    assert record.status == "ok", record.error
    depth_maps = sorted((out / "data" / dataset.name / "training" / "depth").glob("*.png"))
    assert len(depth_maps) == 32 and (read_kitti_depth(depth_maps[0]) > 0).mean() > 0.5

    # the cell trained the three tasks and was scored on them, on the test split
    assert record.tasks == ["det", "seg", "depth"] and set(record.weights) == {"det", "seg", "depth"}
    test = score_run(out / "cells" / dataset.name / "equal" / "seed0" / "run", split="test")
    assert record.delta1 == pytest.approx(test["delta1"], abs=1e-9) and 0 < record.delta1 <= 1
    assert record.AbsRel == pytest.approx(test["AbsRel"], abs=1e-9)
    assert record.RMSE is not None and abs(record.RMSE - test["RMSE"]) <= 1e-9
    assert record.geometric_mean == pytest.approx(geometric_mean(record.mAP, record.mIoU, record.delta1), nan_ok=True)
    assert not math.isnan(record.geometric_mean)

    # Table II: a row per task metric, depth included, and the geometric mean of the three scores
    lines = (out / "table2.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(f"| {dataset.name} |"))
    titles = [line.split("|")[2].strip() for line in lines[first : first + 6]]
    assert titles[:6] == [
        "mAP (detection)",
        "mIoU (segment)",
        "δ<1.25 (depth)",
        "AbsRel (depth, lower is better)",
        "RMSE m (depth, lower is better)",
        "Geometric mean (mAP · mIoU · δ<1.25)",
    ]
    row = {line.split("|")[2].strip(): line.split("|")[3].strip() for line in lines if line.count("|") > 3}
    assert row["δ<1.25 (depth)"] == f"**{record.delta1:.4f}**"
    assert row["Geometric mean (mAP · mIoU · δ<1.25)"] == f"**{record.geometric_mean:.4f}**"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == {dataset.name: ["det", "seg", "depth"]}
    assert dataset.name not in summary["paper_comparison"]  # a three-task mean is not the paper's number
    with (out / "results.csv").open() as handle:
        (csv_row,) = list(csv.DictReader(handle))
    assert csv_row["tasks"] == "det,seg,depth" and float(csv_row["delta1"]) == pytest.approx(record.delta1)
    assert json.loads((out / "results.json").read_text())["records"][0]["tasks"] == ["det", "seg", "depth"]


def test_the_field_preset_runs_every_strategy_on_synth_kitti_as_the_synth_table_was_trained():
    """Every registered strategy but the two whose weights come from a search is a column, and its
    synth-kitti cells train exactly as `synth`'s did when benchmarks/results/synth/ was measured (so the
    seven shared baselines are the same cells)."""
    from taskweight import weighting
    from taskweight.bench.runner import _deep_merge
    from taskweight.config import load_config

    field, synth = load_bench_preset("field"), load_bench_preset("synth")
    assert set(field.methods) == set(weighting.available()) - {"static", "async"}
    assert len(field.methods) == len(set(field.methods))
    assert [d.name for d in field.datasets] == ["synth-kitti"] and field.seeds == 3
    (kitti,) = [d for d in synth.datasets if d.name == "synth-kitti"]
    assert field.datasets[0] == kitti

    def config(preset, ds):
        return load_config(preset.train_preset, overrides=_deep_merge(preset.train_overrides, ds.train_overrides))

    # synth's synth-kitti training as benchmarks/results/synth/ measured it: the centre assignment, which
    # synth left for the neighbour-cell one after the field table was built
    synth_cfg = config(synth, kitti)
    assert synth_cfg.model.det_assignment == "neighbours"
    centre = synth_cfg.model.model_copy(update={"det_assignment": "centre"})
    assert config(field, field.datasets[0]) == synth_cfg.model_copy(update={"model": centre})


def test_a_corrupt_cell_record_is_named_and_the_cell_runs_again(bench_out: Path, tmp_path: Path):
    import io
    import shutil

    from rich.console import Console

    out = tmp_path / "copy"
    shutil.copytree(bench_out, out)
    record = out / "cells/synth-tiny/equal/seed0/cell.json"
    record.write_text(record.read_text()[:40])  # truncated mid-object
    stream = io.StringIO()
    preset = load_bench_preset("tiny").model_copy(update={"methods": ["equal"]})
    runner = BenchRunner(preset, out, seeds=1, show_progress=False, console=Console(file=stream, width=300))
    assert runner.finished_cell("synth-tiny", "equal", 0) is None
    assert str(record) in stream.getvalue() and "runs again" in stream.getvalue()
    (result,) = runner.run()
    assert result.status == "ok" and json.loads(record.read_text())["status"] == "ok"


def test_data_of_an_older_generator_is_kept_and_named(tmp_path: Path):
    """A bench folder's synthetic data written by an older generator version is used as it is (its cells stay
    comparable), and the run says so; data of the current version gets no such line."""
    import io

    from rich.console import Console

    from taskweight.synth import PRESETS

    preset_file = tmp_path / "bench.yaml"
    preset_file.write_text(
        "train_preset: tiny\nmethods: [equal]\ndatasets:\n"
        "  - name: cs\n    format: cityscapes\n    synth: {preset: synth-cityscapes, train: 4, val: 2, test: 2}\n"
    )
    preset = load_bench_preset(preset_file)
    out = tmp_path / "o"
    marker = out / "data" / "cs" / "synth.json"
    marker.parent.mkdir(parents=True)
    assert PRESETS["synth-cityscapes"]["format_version"] == 2
    for version, warned in ((1, True), (2, False)):
        marker.write_text(json.dumps({"preset": "synth-cityscapes", "format_version": version}))
        stream = io.StringIO()
        runner = BenchRunner(preset, out, show_progress=False, console=Console(file=stream, width=400))
        assert runner.ensure_data(preset.datasets[0]) == marker.parent  # not generated again
        runner._warn_if_older_generator(preset.datasets[0])
        said = stream.getvalue()
        assert ("format version 1; this taskweight writes version 2" in said) is warned, said
        assert ("crowd regions" in said) is warned
