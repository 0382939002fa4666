"""The bench protocols: the paper protocol's schedule on tiny data, the control column, the options."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import taskweight.trainer
from taskweight.bench import BenchRunner, load_bench_preset, search_settings
from taskweight.bench.results import CellRecord
from taskweight.bench.runner import BenchDataset, SearchSpec
from taskweight.cli import app
from taskweight.errors import ConfigError
from taskweight.search import read_journal

# val geometric mean each evaluation of the search reports (the training itself is real)
SCRIPTED_FITNESS = [0.30, 0.50, 0.40, 0.60, 0.20]
EPOCHS_PER_EVAL = 2
BASELINE_EPOCHS = 1


class ScriptedTrainer(taskweight.trainer.Trainer):
    """The real trainer; a search evaluation (``evals/NNNN``) reports a scripted val GM instead of its own."""

    def fit(self, *, resume: bool = False) -> Any:
        result = super().fit(resume=resume)
        if self.run_dir.parent.name == "evals":
            result.metrics["best"] = {
                **result.metrics["best"],
                "geometric_mean": SCRIPTED_FITNESS[int(self.run_dir.name)],
            }
        return result


def _preset(root: Path, methods: list[str], **update: Any) -> Any:
    return load_bench_preset("tiny").model_copy(
        update={
            "protocol": "paper",
            "methods": methods,
            "train_overrides": {"epochs": BASELINE_EPOCHS},
            "datasets": [BenchDataset(name="synth-tiny", format="kitti", root=root)],
            "search": SearchSpec(budget=len(SCRIPTED_FITNESS), epochs_per_eval=EPOCHS_PER_EVAL),
            **update,
        }
    )


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CellRecord]]:
    from taskweight.synth import generate_dataset

    base = tmp_path_factory.mktemp("paper-protocol")
    root = base / "data"
    generate_dataset(root, preset="synth-kitti", train=16, val=8, test=8, seed=0, size=(64, 192))
    out = base / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(taskweight.trainer, "Trainer", ScriptedTrainer)
        records = BenchRunner(
            _preset(root, ["equal_control", "meta_async", "equal"]), out, seeds=1, show_progress=False
        ).run()
    return out, {r.method: r for r in records}


def test_paper_protocol_evaluation_schedule(paper_run: tuple[Path, dict[str, CellRecord]]) -> None:
    out, cells = paper_run
    assert {m: c.status for m, c in cells.items()} == {"equal": "ok", "meta_async": "ok", "equal_control": "ok"}
    search = out / "cells/synth-tiny/meta_async/seed0/search"
    journal = read_journal(search / "journal.jsonl")
    # continuous fine-tuning from the best model finished before each evaluation (GMs .30 .50 .40 .60 .20):
    assert [r.init_checkpoint for r in journal] == [
        None,
        "evals/0000/best.pt",
        "evals/0001/best.pt",
        "evals/0001/best.pt",
        "evals/0003/best.pt",
    ]
    # ... whose lineage had received 0, 2, 4, 4 and 6 epochs
    assert [r.start_epoch for r in journal] == [0, 2, 4, 4, 6]
    assert [r.epochs for r in journal] == [2, 2, 2, 2, 2]
    meta = json.loads((search / "search_meta.json").read_text())
    assert meta["transfer"] == "best" and meta["evaluator"]["async_unit"] == "epoch"
    for r in journal:
        run = search / "evals" / f"{r.index:04d}"
        options = yaml.safe_load((run / "config.yaml").read_text())["method"]["options"]
        assert (options["unit"], options["offset"]) == ("epoch", r.start_epoch)
        # the periods count epochs of the continuous fine-tuning: w_τ = 0 in epochs with (offset + e) mod ν ≠ 0
        with (run / "weights.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                t = r.start_epoch + int(row["epoch"]) - 1
                for task in ("det", "seg"):
                    due = t % r.config["frequencies"][task] == 0
                    assert (float(row[f"weight_{task}"]) > 0) == due, (r.index, row)


def test_each_column_spends_the_epochs_of_its_protocol(paper_run: tuple[Path, dict[str, CellRecord]]) -> None:
    out, cells = paper_run
    assert cells["equal"].epochs == BASELINE_EPOCHS
    assert cells["meta_async"].epochs == len(SCRIPTED_FITNESS) * EPOCHS_PER_EVAL == 10
    # the best evaluation (GM .60, evaluation 3) was trained along 0 → 1 → 3: 3 × 2 epochs
    assert cells["meta_async"].lineage == [0, 1, 3] and cells["meta_async"].lineage_epochs == 6
    assert cells["equal_control"].epochs == cells["meta_async"].lineage_epochs == 6
    assert cells["equal_control"].lineage == [0, 1, 3]
    control_run = out / "cells/synth-tiny/equal_control/seed0/run"
    control_cfg = yaml.safe_load((control_run / "config.yaml").read_text())
    assert control_cfg["method"]["name"] == "equal" and control_cfg["epochs"] == 6 and control_cfg["seed"] == 0
    assert json.loads((control_run / "metrics.json").read_text())["epochs"] == 6
    assert {c.protocol for c in cells.values()} == {"paper"}
    # what was scored on test: the val-selected checkpoints
    assert cells["equal"].checkpoint == "cells/synth-tiny/equal/seed0/run/best.pt"
    assert cells["meta_async"].checkpoint == "cells/synth-tiny/meta_async/seed0/search/evals/0003/best.pt"
    assert cells["meta_async"].async_unit == "epoch"
    from taskweight.config import load_config
    from taskweight.scoring import score_checkpoint

    config = load_config(path=out / "cells/synth-tiny/meta_async/seed0/search/base_config.yaml")
    again = score_checkpoint(config, out / cells["meta_async"].checkpoint, split="test")
    assert (again["mAP"], again["mIoU"]) == (cells["meta_async"].mAP, cells["meta_async"].mIoU)


def test_the_report_has_the_compute_row_and_the_search_figures(paper_run: tuple[Path, dict[str, CellRecord]]) -> None:
    out, cells = paper_run
    table = (out / "table2.md").read_text()
    assert "Protocol: paper" in table
    row = next(line for line in table.splitlines() if "Compute (epochs" in line)
    hours = {m: cells[m].train_time_s / 3600 for m in ("equal", "meta_async", "equal_control")}
    assert row == (
        f"|  | Compute (epochs, hours) | 1 ep, {hours['equal']:.3f} h | 10 ep, {hours['meta_async']:.3f} h | "
        f"6 ep, {hours['equal_control']:.3f} h |"
    )
    for name in ("fig3a_target", "fig3b_metrics", "fig4a_weights", "fig4b_frequencies"):
        assert (out / f"synth-tiny_{name}.png").stat().st_size > 1000, name
    assert "backprop period of the task, in epochs" in (out / "table1.md").read_text()


def test_a_finished_run_is_skipped_and_another_protocol_refused(paper_run: tuple[Path, dict[str, CellRecord]]) -> None:
    out, _ = paper_run
    root = out.parent / "data"
    stamp = (out / "cells/synth-tiny/equal_control/seed0/cell.json").stat().st_mtime_ns
    BenchRunner(_preset(root, ["equal", "meta_async", "equal_control"]), out, seeds=1, show_progress=False).run()
    assert (out / "cells/synth-tiny/equal_control/seed0/cell.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="ran under protocol 'paper'"):
        BenchRunner(
            _preset(root, ["meta_async"], search=SearchSpec(epochs_per_eval=1)),
            out,
            seeds=1,
            show_progress=False,
            protocol="matched",
        ).run()
    # baseline cells are the same under both protocols: they are reused
    records = BenchRunner(_preset(root, ["equal"]), out, seeds=1, show_progress=False, protocol="matched").run()
    assert [r.status for r in records] == ["ok"]


def test_the_control_cell_fails_clearly_without_its_search(tiny_kitti: Path, tmp_path: Path) -> None:
    runner = BenchRunner(_preset(tiny_kitti, ["equal_control"]), tmp_path, seeds=1, show_progress=False)
    record = runner.run_cell(runner.datasets[0], "equal_control", 0)
    assert record.status == "failed" and "meta_async cell synth-tiny/seed0" in record.error
    assert "--methods meta_async equal_control" in record.error


def test_controls_run_after_the_searches_they_depend_on(tiny_kitti: Path, tmp_path: Path) -> None:
    preset = _preset(tiny_kitti, ["equal_control", "equal", "meta_async"])
    runner = BenchRunner(preset, tmp_path, seeds=2, show_progress=False)
    keys = [(d.name, m, s) for d, m, s in runner.cells()]
    assert keys == [
        ("synth-tiny", "equal", 0),
        ("synth-tiny", "meta_async", 0),
        ("synth-tiny", "equal_control", 0),
        ("synth-tiny", "equal", 1),
        ("synth-tiny", "meta_async", 1),
        ("synth-tiny", "equal_control", 1),
    ]
    # parallel jobs hold a control back until its meta_async cell is done (or start it when that is not pending)
    ready, waiting = runner.hold_back([c for c in runner.cells() if c[2] == 0 or c[1] == "equal_control"])
    assert [(m, s) for _, m, s in ready] == [("equal", 0), ("meta_async", 0), ("equal_control", 1)]
    assert {k: [(m, s) for _, m, s in v] for k, v in waiting.items()} == {
        ("synth-tiny", "meta_async", 0): [("equal_control", 0)]
    }


# ------------------------------------------------------------------- options
def test_search_settings_of_each_protocol() -> None:
    spec = SearchSpec(budget=16, epochs_per_eval=2)
    assert search_settings(spec, "paper", epochs=10) == {
        "budget": 16,
        "epochs_per_eval": 2,
        "optimizer": "es",
        "executor": "local",
        "ray_address": None,
        "transfer": "best",
        "async_unit": "epoch",
    }
    # matched: the search gets the baselines' 10 epochs, as 5 evaluations of 2
    matched = search_settings(spec, "matched", epochs=10)
    assert (matched["budget"], matched["epochs_per_eval"], matched["transfer"], matched["async_unit"]) == (
        5,
        2,
        None,
        "step",
    )
    assert search_settings(SearchSpec(async_unit="step"), "paper", epochs=10)["async_unit"] == "step"
    with pytest.raises(ConfigError, match="option 'search.epochs_per_eval'.*9 epochs"):
        search_settings(spec, "matched", epochs=9)
    with pytest.raises(ConfigError, match="option '--protocol'.*search.transfer 'generation'"):
        search_settings(SearchSpec(transfer="generation"), "paper", epochs=10, option="--protocol")
    with pytest.raises(ConfigError, match="option 'protocol'.*search.executor 'ray'"):
        search_settings(SearchSpec(executor="ray"), "paper", epochs=10)
    with pytest.raises(ConfigError, match="option '--protocol' must be one of matched, paper"):
        search_settings(spec, "paperish", epochs=10, option="--protocol")


def test_protocol_errors_name_the_option(tmp_path: Path) -> None:
    bad = CliRunner().invoke(
        app, ["bench", "--preset", "tiny", "--protocol", "papr", "--out", str(tmp_path / "o"), "--no-progress"]
    )
    assert bad.exit_code == 2 and "option '--protocol' must be one of matched, paper, got 'papr'" in bad.output
    preset = tmp_path / "ray.yaml"
    preset.write_text(
        "train_preset: tiny\nmethods: [meta]\ndatasets: [{name: d, root: /nonexistent}]\nsearch: {executor: ray}\n"
    )
    conflict = CliRunner().invoke(
        app, ["bench", "--preset", str(preset), "--protocol", "paper", "--out", str(tmp_path / "o2"), "--no-progress"]
    )
    assert conflict.exit_code == 2 and "option '--protocol'" in conflict.output and "executor" in conflict.output
    preset.write_text("protocol: papr\ndatasets: []\n")
    with pytest.raises(ConfigError, match="option 'protocol'"):
        load_bench_preset(preset)


def test_shipped_paper_presets() -> None:
    paper = load_bench_preset("paper")
    assert (paper.protocol, paper.search.budget, paper.search.epochs_per_eval) == ("paper", 44, 8)
    synth = load_bench_preset("synth-paper")
    assert (synth.protocol, synth.search.budget, synth.search.epochs_per_eval) == ("paper", 16, 2)
    for preset in (paper, synth):
        assert preset.methods[-3:] == ["meta", "meta_async", "equal_control"]
        assert (
            BenchRunner(
                preset,
                "unused",
                datasets=[preset.datasets[0].name],
                roots={preset.datasets[0].name: Path("unused")},
                show_progress=False,
            ).search_settings(preset.datasets[0])["async_unit"]
            == "epoch"
        )
    runner = BenchRunner(synth, "unused", show_progress=False, protocol="matched")
    # the baselines' epochs as 2-epoch evaluations: synth-kitti 10 = 5 × 2, the others 20 = 10 × 2
    budgets = {ds.name: runner.search_settings(ds)["budget"] for ds in runner.datasets}
    assert budgets == {"synth-kitti": 5, "synth-cityscapes": 10, "synth-woodscape": 10}
    # the compute-matched synth preset: one-epoch evaluations, as many as the dataset's epochs
    synth_preset = load_bench_preset("synth")
    synth_matched = BenchRunner(synth_preset, "unused", show_progress=False)
    assert synth_matched.protocol == "matched"
    budgets = {ds.name: synth_matched.search_settings(ds)["budget"] for ds in synth_matched.datasets}
    assert budgets == {"synth-kitti": 10, "synth-cityscapes": 20, "synth-woodscape": 20}
    # synth-paper trains synth's baselines, so that their cells can be shared: the same training and datasets
    assert synth.train_preset == synth_preset.train_preset and synth.train_overrides == synth_preset.train_overrides
    assert synth.datasets == synth_preset.datasets and synth.methods[:-1] == synth_preset.methods
