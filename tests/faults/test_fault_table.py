"""Fault injection, one row per bad input: every command answers with one message, no traceback.

Each row builds one bad input (an option, a config file, a checkpoint, a result file, a
dataset file) and runs the real CLI on it. It must end with the expected exit status (2:
the user's input is wrong), print no Python traceback, and name what is wrong: the file
(and line) or the option, and the bad value where there is one. Rows are grouped by
category; ``test_the_table_covers_every_category`` keeps the count honest.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from taskweight.cli import app

ENV = {"COLUMNS": "400", "NO_COLOR": "1"}


@dataclass
class Ctx:
    """What a row may use: a scratch folder, the tiny dataset, a trained tiny run to copy."""

    tmp: Path
    data: Path
    trained: Path
    extra_data: dict[str, Path] = field(default_factory=dict)

    def run_copy(self) -> Path:
        target = self.tmp / "run"
        if not target.exists():
            shutil.copytree(self.trained, target)
        return target

    def data_copy(self) -> Path:
        target = self.tmp / "data"
        if not target.exists():
            shutil.copytree(self.data, target)
        return target

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path


@dataclass
class Case:
    id: str
    category: str
    make: Callable[[Ctx], list[str]]
    expect: tuple[str, ...]
    code: int = 2
    extra: dict = field(default_factory=dict)


def _train(ctx: Ctx, *args: str) -> list[str]:
    return ["train", "--preset", "tiny", "--data", str(ctx.data), "--out", str(ctx.tmp / "out"), "--no-progress", *args]


def _method(name: str, *opts: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: _train(ctx, "--method", name, *(a for o in opts for a in ("--method-opt", o)))


def _config(text: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: _train(ctx, "--config", str(ctx.write("bad.yaml", text)))


def _corrupt_checkpoint(name: str, content: bytes | None, command: str = "evaluate") -> Callable[[Ctx], list[str]]:
    def make(ctx: Ctx) -> list[str]:
        run = ctx.run_copy()
        path = run / name
        if content is None:  # truncated to half
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            path.write_bytes(content)
        if command == "evaluate":
            return ["evaluate", str(run), "--checkpoint", name, "--split", "val"]
        (run / "last.prev.pt").unlink(missing_ok=True)
        return [
            "train",
            "--preset",
            "tiny",
            "--data",
            str(ctx.data),
            "--out",
            str(run),
            "--resume",
            "--epochs",
            "2",
            "--no-progress",
        ]

    return make


def _report(text: str) -> Callable[[Ctx], list[str]]:
    def make(ctx: Ctx) -> list[str]:
        folder = ctx.tmp / "bench"
        folder.mkdir()
        (folder / "results.json").write_text(text)
        return ["report", str(folder)]

    return make


def _bench_preset(text: str, *extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: [
        "bench",
        "--preset",
        str(ctx.write("preset.yaml", text)),
        "--out",
        str(ctx.tmp / "b"),
        "--no-progress",
        *extra,
    ]


GOOD_PRESET = (
    "train_preset: tiny\nmethods: [equal]\nseeds: 1\ndatasets:\n  - name: t\n    format: kitti\n    root: {root}\n"
)


def _good_preset_with(extra_yaml: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: _bench_preset(GOOD_PRESET.format(root=ctx.data) + extra_yaml)(ctx)


def _search_journal(lines: list[str], *extra: str) -> Callable[[Ctx], list[str]]:
    def make(ctx: Ctx) -> list[str]:
        folder = ctx.tmp / "s"
        folder.mkdir()
        (folder / "journal.jsonl").write_text("".join(line + "\n" for line in lines))
        return [
            "search",
            "--preset",
            "tiny",
            "--data",
            str(ctx.data),
            "--out",
            str(folder),
            "--budget",
            "2",
            "--no-progress",
            *extra,
        ]

    return make


def _existing_run(*args: str) -> Callable[[Ctx], list[str]]:
    def make(ctx: Ctx) -> list[str]:
        run = ctx.run_copy()
        return ["train", "--preset", "tiny", "--data", str(ctx.data), "--out", str(run), "--no-progress", *args]

    return make


def _evaluate_edited_config(edit: Callable[[str], str]) -> Callable[[Ctx], list[str]]:
    def make(ctx: Ctx) -> list[str]:
        run = ctx.run_copy()
        config = run / "config.yaml"
        config.write_text(edit(config.read_text()))
        return ["evaluate", str(run), "--split", "val"]

    return make


RECORD = {"dataset": "d", "method": "equal", "seed": 0, "status": "ok"}
RANDOM_BYTES = bytes((i * 7919) % 256 for i in range(4096))


def _data_fault(fmt: str, corrupt: Callable[[Path], str]) -> Callable[[Ctx], list[str]]:
    """Copy the tiny dataset of ``fmt``, let ``corrupt(root)`` break one file, train on it.

    ``corrupt`` returns nothing useful to the row; the row's ``expect`` names the file and line.
    """

    def make(ctx: Ctx) -> list[str]:
        source = {"kitti": ctx.data, **ctx.extra_data}[fmt]
        root = ctx.tmp / f"{fmt}-data"
        shutil.copytree(source, root)
        corrupt(root)
        return [
            "train",
            "--preset",
            "tiny",
            "--format",
            fmt,
            "--data",
            str(root),
            "--out",
            str(ctx.tmp / "out"),
            "--epochs",
            "1",
            "--no-progress",
        ]

    return make


def _first_train_id(root: Path) -> str:
    return (root / "splits" / "train.txt").read_text().split()[0]


def _kitti_label(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], str]:
    def corrupt(root: Path) -> str:
        path = root / "training" / "label_2" / f"{_first_train_id(root)}.txt"
        path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
        return path.name

    return corrupt


def _replace_file(pattern: str, content: bytes | Callable[[Path], bytes]) -> Callable[[Path], str]:
    def corrupt(root: Path) -> str:
        path = sorted(root.glob(pattern))[0]
        path.write_bytes(content(path) if callable(content) else content)
        return path.name

    return corrupt


def _png(array: object, mode: str | None = None) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _mask_16bit(path: Path) -> bytes:
    import numpy as np

    return _png(np.full((64, 192), 4000, dtype=np.uint16))


def _mask_index(value: int) -> Callable[[Path], bytes]:
    def content(path: Path) -> bytes:
        import numpy as np
        from PIL import Image

        mask = np.array(Image.open(path))
        mask[0, 0] = value
        return _png(mask)

    return content


def _woodscape_box(line: str) -> Callable[[Path], str]:
    def corrupt(root: Path) -> str:
        name = (root / "splits" / "train.txt").read_text().split()[0]
        path = root / "box_2d_annotations" / f"{name}.txt"
        path.write_text(line + "\n" + path.read_text())
        return path.name

    return corrupt


def _delete(pattern: str) -> Callable[[Path], str]:
    def corrupt(root: Path) -> str:
        path = sorted(root.glob(pattern))[0]
        path.unlink()
        return path.name

    return corrupt


CASES: list[Case] = [
    # ------------------------------------------------------------------ strategy options
    Case("gradnorm-alpha-text", "options", _method("gradnorm", "alpha=abc"), ("alpha", "abc", "number")),
    Case("handcrafted-iterations-text", "options", _method("handcrafted", "iterations=abc"), ("iterations", "abc")),
    Case("handcrafted-iterations-zero", "options", _method("handcrafted", "iterations=0"), ("iterations", ">= 1")),
    Case("mgda-max-iter-negative", "options", _method("mgda", "max_iter=-3"), ("max_iter", "-3")),
    Case("mgda-normalization", "options", _method("mgda", "normalization=l3"), ("normalization", "l3")),
    Case("gradnorm-option-typo", "options", _method("gradnorm", "alpa=2"), ("alpa", "alpha")),
    Case("option-without-equals", "options", _method("gradnorm", "alpha"), ("alpha", "key=value")),
    Case("gradnorm-min-weight", "options", _method("gradnorm", "min_weight=2"), ("min_weight", "2")),
    Case("gradnorm-lr-zero", "options", _method("gradnorm", "lr=0"), ("'lr'", "> 0")),
    Case("static-weights-text", "options", _method("static", "weights=abc"), ("weights", "abc")),
    Case("static-weights-unknown-task", "options", _method("static", "weights=det:1,depth:2"), ("depth",)),
    Case("static-weights-negative", "options", _method("static", "weights=det:-1,seg:1"), ("weights", ">= 0")),
    Case("async-frequency-zero", "options", _method("async", "frequencies=det:0,seg:1"), ("frequencies", ">= 1")),
    Case("async-frequency-fraction", "options", _method("async", "frequencies=det:1.5,seg:1"), ("frequencies", "1.5")),
    Case("async-unit", "options", _method("async", "unit=hour"), ("unit", "hour")),
    Case("uncertainty-form", "options", _method("uncertainty", "form=bogus"), ("form", "bogus")),
    Case("weight-learning-init", "options", _method("weight_learning", "init=2"), ("init", "2")),
    Case("dynamic-scaling-reference", "options", _method("dynamic_scaling", "reference=depth"), ("reference", "depth")),
    Case("unknown-method", "options", _method("nosuch"), ("nosuch", "equal")),
    # ------------------------------------------------------------------ CLI options
    Case("precision", "cli", lambda c: _train(c, "--precision", "fp8"), ("precision", "fp8")),
    Case("device", "cli", lambda c: _train(c, "--device", "tpu"), ("device", "tpu")),
    Case("on-error", "cli", lambda c: _train(c, "--on-error", "ignore"), ("on_error", "ignore")),
    Case("format", "cli", lambda c: _train(c, "--format", "nuscenes"), ("nuscenes",)),
    Case("epochs-zero", "cli", lambda c: _train(c, "--epochs", "0"), ("--epochs", "greater than or equal to 1")),
    Case("preset", "cli", lambda c: _train(c, "--preset", "huge"), ("huge",)),
    Case("config-missing", "cli", lambda c: _train(c, "--config", str(c.tmp / "none.yaml")), ("none.yaml",)),
    Case(
        "pretrained-missing",
        "cli",
        lambda c: _train(c, "--pretrained", str(c.tmp / "r18.pth")),
        ("r18.pth", "not found"),
    ),
    Case(
        "pretrained-random-bytes",
        "cli",
        lambda c: _train(c, "--pretrained", str(c.write("r18.pth", "not a checkpoint at all" * 40))),
        ("r18.pth",),
    ),
    Case(
        "data-root-missing",
        "cli",
        lambda c: ["train", "--preset", "tiny", "--data", str(c.tmp / "nowhere"), "--out", str(c.tmp / "o")],
        ("nowhere",),
    ),
    Case("resume-nothing", "cli", lambda c: _train(c, "--resume"), ("nothing to resume",)),
    Case("resume-and-overwrite", "cli", lambda c: _train(c, "--resume", "--overwrite"), ("--resume", "--overwrite")),
    Case("existing-run-folder", "cli", _existing_run(), ("already holds a run", "--resume", "--overwrite")),
    Case("evaluate-split", "cli", lambda c: ["evaluate", str(c.run_copy()), "--split", "training"], ("training",)),
    Case("evaluate-not-a-run", "cli", lambda c: ["evaluate", str(c.tmp)], ("config.yaml",)),
    Case(
        "evaluate-checkpoint-missing",
        "cli",
        lambda c: ["evaluate", str(c.run_copy()), "--checkpoint", "epoch7.pt"],
        ("epoch7.pt",),
    ),
    Case("synth-size-text", "cli", lambda c: ["synth", "--out", str(c.tmp / "s"), "--size", "big"], ("--size", "big")),
    Case(
        "synth-size-huge",
        "cli",
        lambda c: ["synth", "--out", str(c.tmp / "s"), "--size", "100000x100000"],
        ("size", "100000", "4096"),
    ),
    Case(
        "synth-preset",
        "cli",
        lambda c: ["synth", "--out", str(c.tmp / "s"), "--preset", "synth-nuscenes"],
        ("synth-nuscenes",),
    ),
    Case(
        "synth-into-foreign-folder",
        "cli",
        lambda c: ["synth", "--out", str(c.write("notes.txt", "x").parent), "--train", "1"],
        ("not empty",),
    ),
    Case(
        "bench-protocol",
        "cli",
        lambda c: ["bench", "--preset", "tiny", "--protocol", "fast", "--out", str(c.tmp / "b")],
        ("--protocol", "fast"),
    ),
    Case(
        "bench-method",
        "cli",
        lambda c: ["bench", "--preset", "tiny", "--methods", "nosuch", "--out", str(c.tmp / "b")],
        ("nosuch",),
    ),
    Case(
        "bench-dataset",
        "cli",
        lambda c: ["bench", "--preset", "tiny", "--datasets", "kitti", "--out", str(c.tmp / "b")],
        ("kitti",),
    ),
    Case(
        "bench-root",
        "cli",
        lambda c: ["bench", "--preset", "tiny", "--root", "nofolder", "--out", str(c.tmp / "b")],
        ("--root", "nofolder"),
    ),
    Case(
        "bench-preset-missing",
        "cli",
        lambda c: ["bench", "--preset", "gigantic", "--out", str(c.tmp / "b")],
        ("gigantic",),
    ),
    Case(
        "search-optimizer",
        "cli",
        lambda c: ["search", "--out", str(c.tmp / "s"), "--optimizer", "bayes"],
        ("--optimizer", "bayes"),
    ),
    Case(
        "search-executor",
        "cli",
        lambda c: ["search", "--out", str(c.tmp / "s"), "--executor", "slurm"],
        ("--executor", "slurm"),
    ),
    # ------------------------------------------------------------------ configuration files
    Case("config-unknown-key", "config", _config("epochs: 2\nepocs: 3\n"), ("bad.yaml:2", "epocs")),
    Case("config-unknown-data-key", "config", _config("data:\n  formt: kitti\n"), ("bad.yaml:2", "formt")),
    Case("config-wrong-type", "config", _config("batch_size: 4\nepochs: many\n"), ("bad.yaml:2", "epochs")),
    Case("config-negative-lr", "config", _config("optim:\n  lr: -1\n"), ("bad.yaml:2", "lr")),
    Case("config-not-a-mapping", "config", _config("- epochs\n- 2\n"), ("bad.yaml",)),
    Case("config-malformed-yaml", "config", _config("epochs: [2\nseed: 1\n"), ("bad.yaml",)),
    Case("config-image-size", "config", _config("data:\n  image_size: [70, 190]\n"), ("image_size", "32")),
    Case("config-dataset-option", "config", _config("data:\n  options:\n    split_sed: 3\n"), ("split_sed",)),
    Case(
        "config-method-option",
        "config",
        _config("method:\n  name: gradnorm\n  options:\n    alpha: high\n"),
        ("alpha", "high"),
    ),
    Case("config-duplicate-key", "config", _config("epochs: 2\nseed: 1\nepochs: 3\n"), ("bad.yaml:3", "epochs")),
    # ------------------------------------------------------------------ checkpoints
    Case("checkpoint-truncated", "checkpoint", _corrupt_checkpoint("best.pt", None), ("best.pt",)),
    Case("checkpoint-random-bytes", "checkpoint", _corrupt_checkpoint("best.pt", bytes(range(256)) * 8), ("best.pt",)),
    Case("checkpoint-empty", "checkpoint", _corrupt_checkpoint("best.pt", b""), ("best.pt", "empty")),
    Case("checkpoint-json", "checkpoint", _corrupt_checkpoint("best.pt", b'{"model": 1}'), ("best.pt",)),
    Case("checkpoint-resume-empty", "checkpoint", _corrupt_checkpoint("last.pt", b"", "resume"), ("last.pt", "empty")),
    Case("checkpoint-resume-truncated", "checkpoint", _corrupt_checkpoint("last.pt", None, "resume"), ("last.pt",)),
    Case(
        "checkpoint-other-model",
        "checkpoint",
        _evaluate_edited_config(lambda t: t.replace("width: 0.25", "width: 0.5")),
        ("best.pt", "does not fit"),
    ),
    # ------------------------------------------------------------------ result files
    Case("report-missing", "results", lambda c: ["report", str(c.tmp)], ("results.json", "not found")),
    Case("report-bad-json", "results", _report('{"schema": 1,\n "records": [}\n'), ("results.json:2",)),
    Case("report-no-records", "results", _report('{"schema": 1}'), ("results.json", "records")),
    Case(
        "report-record-fields",
        "results",
        _report(json.dumps({"schema": 1, "records": [{"dataset": "d"}]})),
        ("results.json", "lacks"),
    ),
    Case("report-schema", "results", _report(json.dumps({"schema": 99, "records": [RECORD]})), ("results.json", "99")),
    Case(
        "journal-corrupt-line", "results", _search_journal(["{}", "{not json", "{}"], "--resume"), ("journal.jsonl:",)
    ),
    Case("journal-without-resume", "results", _search_journal(['{"index": 0}']), ("journal.jsonl", "--resume")),
    # ------------------------------------------------------------------ dataset files (three formats)
    Case(
        "kitti-label-columns",
        "data",
        _data_fault("kitti", _kitti_label(lambda ls: [*ls, "Car 0 0 1"])),
        ("label_2/", ".txt:", "15 columns"),
    ),
    Case(
        "kitti-label-class",
        "data",
        _data_fault("kitti", _kitti_label(lambda ls: ["Spaceship " + ls[0].split(" ", 1)[1], *ls[1:]])),
        ("label_2/", ".txt:1", "Spaceship"),
    ),
    Case(
        "kitti-label-number",
        "data",
        _data_fault(
            "kitti", _kitti_label(lambda ls: [" ".join(ls[0].split()[:4] + ["left"] + ls[0].split()[5:]), *ls[1:]])
        ),
        ("label_2/", ".txt:1", "left"),
    ),
    Case(
        "kitti-image-corrupt",
        "data",
        _data_fault("kitti", lambda r: _replace_file(f"training/image_2/{_first_train_id(r)}.png", RANDOM_BYTES)(r)),
        ("image_2/",),
    ),
    Case(
        "kitti-image-missing",
        "data",
        _data_fault("kitti", lambda r: _delete(f"training/image_2/{_first_train_id(r)}.png")(r)),
        ("image_2", "000"),
    ),
    Case(
        "kitti-split-unknown-id",
        "data",
        _data_fault(
            "kitti",
            lambda r: (r / "splits" / "train.txt").write_text((r / "splits" / "train.txt").read_text() + "777777\n"),
        ),
        ("777777",),
    ),
    Case(
        "kitti-mask-16bit",
        "data",
        _data_fault("kitti", lambda r: _replace_file(f"training/semantic/{_first_train_id(r)}.png", _mask_16bit)(r)),
        ("semantic/",),
    ),
    Case(
        "cityscapes-instanceids-corrupt",
        "data",
        _data_fault("cityscapes", _replace_file("gtFine/train/*/*_gtFine_instanceIds.png", RANDOM_BYTES)),
        ("instanceIds.png",),
    ),
    Case(
        "cityscapes-labelids-corrupt",
        "data",
        _data_fault("cityscapes", _replace_file("gtFine/train/*/*_gtFine_labelIds.png", RANDOM_BYTES)),
        ("labelIds.png",),
    ),
    Case(
        "cityscapes-labelids-16bit",
        "data",
        _data_fault(
            "cityscapes",
            _replace_file(
                "gtFine/train/*/*_gtFine_labelIds.png",
                lambda p: _png(__import__("numpy").full((64, 128), 4000, "uint16")),
            ),
        ),
        ("labelIds.png",),
    ),
    Case(
        "cityscapes-image-corrupt",
        "data",
        _data_fault("cityscapes", _replace_file("leftImg8bit/train/*/*_leftImg8bit.png", RANDOM_BYTES)),
        ("leftImg8bit.png",),
    ),
    Case(
        "cityscapes-image-missing",
        "data",
        _data_fault("cityscapes", _delete("leftImg8bit/train/*/*_leftImg8bit.png")),
        ("leftImg8bit",),
    ),
    Case(
        "woodscape-class-id",
        "data",
        _data_fault("woodscape", _woodscape_box("person,0,10,10,20,20")),
        (".txt:1", "person"),
    ),
    Case("woodscape-box-columns", "data", _data_fault("woodscape", _woodscape_box("vehicles,0,10,10")), (".txt:1",)),
    Case(
        "woodscape-unknown-class",
        "data",
        _data_fault("woodscape", _woodscape_box("spaceship,9,10,10,20,20")),
        (".txt:1", "spaceship"),
    ),
    Case(
        "woodscape-box-number",
        "data",
        _data_fault("woodscape", _woodscape_box("vehicles,0,ten,10,20,20")),
        (".txt:1", "ten"),
    ),
    Case(
        "woodscape-mask-index",
        "data",
        _data_fault("woodscape", _replace_file("semantic_annotations/gtLabels/*.png", _mask_index(200))),
        ("gtLabels/",),
    ),
    Case(
        "woodscape-image-corrupt",
        "data",
        _data_fault("woodscape", _replace_file("rgb_images/*.png", RANDOM_BYTES)),
        ("rgb_images/",),
    ),
    # ------------------------------------------------------------------ bench presets
    Case("preset-unknown-key", "preset", _good_preset_with("sedes: 2\n"), ("preset.yaml", "sedes")),
    Case(
        "preset-unknown-method",
        "preset",
        _bench_preset(
            "train_preset: tiny\nmethods: [equal, gradnorn]\ndatasets:\n  - name: t\n    format: kitti\n    root: /x\n"
        ),
        ("preset.yaml", "gradnorn"),
    ),
    Case(
        "preset-bad-override",
        "preset",
        _good_preset_with("train_overrides:\n  epochs: -1\n"),
        ("preset.yaml", "epochs"),
    ),
    Case(
        "preset-bad-dataset-override",
        "preset",
        lambda c: _bench_preset(
            "train_preset: tiny\nmethods: [equal]\ndatasets:\n  - name: t\n    format: kitti\n    root: "
            + str(c.data)
            + "\n    train_overrides: {optim: {lr: zero}}\n"
        )(c),
        ("preset.yaml", "lr"),
    ),
    Case(
        "preset-bad-method-option",
        "preset",
        _good_preset_with("method_options:\n  equal: {alpha: 1}\n"),
        ("preset.yaml", "alpha"),
    ),
    Case("preset-malformed", "preset", _bench_preset("methods: [equal\n"), ("preset.yaml",)),
    Case("preset-duplicate-key", "preset", _good_preset_with("seeds: 2\n"), ("preset.yaml", "seeds")),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_kitti: Path) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    result = CliRunner().invoke(
        app,
        ["train", "--preset", "tiny", "--data", str(tiny_kitti), "--out", str(out), "--epochs", "2", "--no-progress"],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def other_formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny synthetic datasets in the Cityscapes and WoodScape layouts."""
    from taskweight.synth import generate_dataset

    base = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt, size in (("cityscapes", (64, 128)), ("woodscape", (64, 96))):
        out[fmt] = base / fmt
        generate_dataset(out[fmt], preset=f"synth-{fmt}", train=4, val=2, test=2, seed=0, size=size, workers=1)
    return out


def _flat(text: str) -> str:
    """Output without box drawing and line wrapping, for substring checks."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_message(
    case: Case, tmp_path: Path, tiny_kitti: Path, trained: Path, other_formats: dict[str, Path]
) -> None:
    ctx = Ctx(tmp_path, tiny_kitti, trained, other_formats)
    args = case.make(ctx)
    result = CliRunner().invoke(app, args, env=ENV)
    output = _flat(result.output)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == case.code, output
    for expected in case.expect:
        assert expected in output, f"{expected!r} not in: {output}"


def test_the_table_covers_every_category() -> None:
    counts: dict[str, int] = {}
    for case in CASES:
        counts[case.category] = counts.get(case.category, 0) + 1
    assert len({c.id for c in CASES}) == len(CASES)
    assert set(counts) >= {"options", "cli", "config", "checkpoint", "results", "preset", "data"}
    assert len(CASES) >= 60
    assert all(n >= 5 for n in counts.values()), counts


def test_debug_shows_the_traceback(tmp_path: Path, tiny_kitti: Path) -> None:
    args = [
        "--debug",
        "train",
        "--preset",
        "tiny",
        "--data",
        str(tiny_kitti),
        "--out",
        str(tmp_path / "o"),
        "--method",
        "gradnorm",
        "--method-opt",
        "alpha=1",
        "--config",
        str(tmp_path / "none.yaml"),
    ]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code != 0 and result.exception is not None and not isinstance(result.exception, SystemExit)


def test_resume_falls_back_to_the_previous_checkpoint_and_says_so(
    tmp_path: Path, tiny_kitti: Path, trained: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert (run / "last.prev.pt").is_file()
    (run / "last.pt").write_bytes(b"")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--data",
            str(tiny_kitti),
            "--out",
            str(run),
            "--resume",
            "--epochs",
            "2",
            "--no-progress",
        ],
        env=ENV,
    )
    output = _flat(result.output)
    assert result.exit_code == 0, output
    assert "last.pt" in output and "empty" in output and "last.prev.pt" in output and "after epoch 1" in output
    reference = torch.load(trained / "last.pt", weights_only=True)["model"]
    resumed = torch.load(run / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
