"""Command-line interface: ``taskweight --help``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from taskweight.classes import DEPTH_METRICS, TASKS, parse_tasks
from taskweight.errors import ConfigError, RunFolderError, TrainingError

console = Console(stderr=True)
DEBUG_ENV = "TASKWEIGHT_DEBUG"
TASKS_HELP = (
    f"the tasks to train, any of {', '.join(TASKS)}: a comma list or the option repeated, e.g. --tasks "
    "det,seg,depth (default: the preset's or --config's `tasks`, det,seg in the shipped presets); the network "
    "builds only their heads and the best epoch is chosen by the geometric mean of their scores; depth needs "
    "depth ground truth (KITTI depth PNGs, Cityscapes disparity + camera files, or a WoodScape depth/ folder; "
    "`taskweight synth --depth` writes them)"
)
"""Help of ``train --tasks`` (``search --tasks`` says the same of its evaluations)."""


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit status the CLI gives for ``exc``.

    Exit 2 for everything a user can cause — the package's own errors (which name the file
    and line or the option), invalid configurations, files that cannot be opened or written,
    malformed YAML, too little memory for the size asked; exit 1 for anything else (a
    bug: the message says so and how to see the traceback).
    """
    import pydantic
    import yaml

    from taskweight.errors import TaskweightError

    if isinstance(exc, (TaskweightError, ValueError)):
        return str(exc), 2
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 2
    if isinstance(exc, (pydantic.ValidationError, yaml.YAMLError)):
        return " ".join(str(exc).split()), 2
    if isinstance(exc, MemoryError):
        return "not enough memory for what was asked (a smaller --size, --batch or dataset fits)", 2
    return (
        f"internal error ({type(exc).__name__}: {exc}); please report it with the traceback that "
        f"`taskweight --debug ...` prints"
    ), 1


_CLICK_EXCEPTION = cast(type[Exception], next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))
"""Usage errors, which click reports itself (typer vendors click in recent releases, so found by name)."""


class _ErrorBoundary(TyperGroup):
    """Every command runs inside one error boundary: a message, an exit status, no traceback.

    ``taskweight --debug ...`` (or ``TASKWEIGHT_DEBUG=1``) lets the exception through with
    its traceback.
    """

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]  # typer passes its Context subclass
        try:
            return super().invoke(ctx)
        except (_CLICK_EXCEPTION, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _debug(ctx):
                raise
            message, code = describe_error(exc)
            console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            raise typer.Exit(code=code) from None


def _debug(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


app = typer.Typer(
    cls=_ErrorBoundary,
    name="taskweight",
    help=(
        "Dynamic task weighting for multi-task detection + segmentation (+ depth) networks "
        "(Leang et al., ITSC 2020): generate synthetic driving scenes, train the multi-task "
        "network with any of the paper's or the field's weighting strategies, and evaluate it."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"show the Python traceback of an error (or set {DEBUG_ENV}=1)")
    ] = False,
) -> None:
    ctx.obj = {"debug": debug}


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HxW such as 125x414, got {text!r}", param_hint="--size") from None
    if h <= 0 or w <= 0:
        raise typer.BadParameter(f"size must be positive, got {text!r}", param_hint="--size")
    return h, w


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="output folder (written in the dataset's real layout)")],
    preset: Annotated[
        str, typer.Option(help="synthetic dataset preset: synth-kitti, synth-cityscapes or synth-woodscape")
    ] = "synth-kitti",
    train: Annotated[int, typer.Option(min=0, help="number of training scenes")] = 800,
    val: Annotated[int, typer.Option(min=0, help="number of validation scenes")] = 200,
    test: Annotated[int, typer.Option(min=0, help="number of test scenes")] = 200,
    seed: Annotated[int, typer.Option(help="generator seed: scene i of a split with seed s is always the same")] = 0,
    size: Annotated[str | None, typer.Option(help="rendered size HxW (synth-kitti default 125x414, KITTI/3)")] = None,
    single_label_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="fraction of images carrying only one label kind, as in real KITTI")
    ] = 0.0,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="rendering processes (default: all CPU cores); the output is identical whatever the number"
        ),
    ] = None,
    depth: Annotated[
        bool,
        typer.Option(
            "--depth",
            help="also write exact depth: synth-kitti training/depth/*.png and synth-woodscape depth/*.png (KITTI "
            "uint16, metres x 256, 0 = none), synth-cityscapes disparity/ + camera/ (Cityscapes disparity format)",
        ),
    ] = False,
    depth_pattern: Annotated[
        str, typer.Option(help="with --depth: dense (every pixel) or lidar (synth-kitti: a 64-beam scanner's rows)")
    ] = "dense",
) -> None:
    """Generate procedural driving scenes with detection and segmentation labels.

    synth-kitti writes the real KITTI layout: training/image_2/*.png, training/label_2/*.txt
    (15-column KITTI lines: Car, Pedestrian, Cyclist, DontCare), training/semantic/*.png
    (Cityscapes label ids) and splits/{train,val,test}.txt. synth-cityscapes writes leftImg8bit/ and
    gtFine/ (labelIds, instanceIds, polygons); synth-woodscape rgb_images/, semantic_annotations/gtLabels/
    and box_2d_annotations/.
    Objects too small to label (lower than 8 px at KITTI/3's scale), more than 80 % hidden or truncated are
    DontCare in synth-kitti and crowd regions (persongroup, cargroup ...) in synth-cityscapes.
    """
    from rich.progress import Progress

    from taskweight.synth import generate_dataset

    with Progress(console=console) as progress:
        bar = progress.add_task(f"{preset} → {out}", total=train + val + test)
        summary = generate_dataset(
            out,
            preset=preset,
            train=train,
            val=val,
            test=test,
            seed=seed,
            size=_parse_size(size),
            single_label_fraction=single_label_fraction,
            workers=workers or os.cpu_count() or 1,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
            depth=depth,
            depth_pattern=depth_pattern,
        )
    typer.echo(json.dumps(summary, indent=2, default=str))


def _method_options(method: str, pairs: list[str]) -> dict:
    from taskweight import weighting

    try:
        return weighting.parse_options(method, pairs)
    except (KeyError, ValueError) as exc:
        raise typer.BadParameter(str(exc).strip("'\""), param_hint="--method-opt") from None


@app.command()
def train(
    out: Annotated[
        Path,
        typer.Option("--out", help="run folder: metrics.json, history.csv, weights.csv, checkpoints, tensorboard/"),
    ],
    data: Annotated[Path | None, typer.Option("--data", help="dataset root (overrides data.root)")] = None,
    format: Annotated[str | None, typer.Option("--format", help="dataset layout, e.g. kitti")] = None,
    preset: Annotated[str, typer.Option(help="configuration preset: quick, tiny or paper")] = "quick",
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding the preset (validated; errors name the line)")
    ] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help=TASKS_HELP)] = None,
    method: Annotated[str | None, typer.Option(help="task-weighting strategy (see `taskweight methods`)")] = None,
    method_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--method-opt",
            help="strategy option key=value, repeatable "
            "(e.g. alpha=1.5, weights=det:1,seg:70; see `taskweight methods`)",
        ),
    ] = None,
    gradients: Annotated[
        str | None,
        typer.Option(
            help="gradient aggregations (pcgrad, mgda, ...): per-task gradients with respect to the shared "
            "'parameters' (default) or the shared 'representation', the encoder's feature maps (MGDA-UB: one "
            "backward pass through the encoder instead of one per task)"
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="training epochs")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N")] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto (bf16 on CPUs with native bf16 and on bf16 GPUs, fp16 on older GPUs, else fp32), "
            "fp32, bf16 or fp16"
        ),
    ] = None,
    cuda_graph: Annotated[
        str | None,
        typer.Option(
            help="auto (replay the step as a CUDA graph where the device, precision and strategy allow), "
            "on (the same, an error where they do not) or off"
        ),
    ] = None,
    pretrained: Annotated[Path | None, typer.Option(help="local ImageNet ResNet checkpoint for the encoder")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue from OUT/last.pt (OUT/last.prev.pt if last.pt is unreadable)")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the results of a run already in OUT")] = False,
    on_error: Annotated[
        str | None,
        typer.Option(
            "--on-error", help="bad samples: raise (default; names file and line) or skip (counted and reported)"
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="training processes on this machine (torch.distributed: gloo on CPU, NCCL with one GPU each); "
            "N processes with batch B take the steps of one process with batch N·B",
        ),
    ] = 1,
) -> None:
    """Train the multi-task network (detection + segmentation, or the --tasks given) and write the run folder.

    Validates every epoch on the val split, keeps the best epoch by the geometric mean of the
    tasks' scores (mAP, mIoU, depth δ<1.25), and checkpoints every epoch (use --resume to continue).
    With --nproc N the run is launched on N processes through torch.distributed.run (torchrun
    --nproc-per-node N -m taskweight.cli train ... does the same); rank 0 validates and writes the
    run folder.
    """
    from taskweight import distributed
    from taskweight.config import load_config
    from taskweight.trainer import Trainer, resumable

    if nproc > 1 and not distributed.launched():
        code = distributed.launch(nproc, _argv_without_option(sys.argv[1:], "--nproc"))
        if code:
            raise TrainingError(f"a training process of the {nproc} exited with status {code} (its error is above)")
        return

    if resume and overwrite:
        raise typer.BadParameter(
            "--resume continues the run in OUT, --overwrite replaces it: choose one", param_hint="--resume/--overwrite"
        )
    if resume and not resumable(out):
        raise RunFolderError(f"{out}: nothing to resume (no run there); run without --resume to start a new run")
    overrides: dict = {"data": {}, "model": {}, "method": {}}
    if data is not None:
        overrides["data"]["root"] = str(data)
    if format is not None:
        overrides["data"]["format"] = format
    if pretrained is not None:
        overrides["model"]["pretrained"] = str(pretrained)
    if on_error is not None:
        overrides["data"]["on_error"] = on_error
    if method is not None:
        overrides["method"]["name"] = method
    if method_opt:
        overrides["method"]["options"] = _method_options(method or "equal", method_opt)
    if gradients is not None:
        overrides["method"]["gradients"] = gradients
    if tasks:
        overrides["tasks"] = list(parse_tasks(tasks, "--tasks"))
    options = {"epochs": epochs, "seed": seed, "device": device, "precision": precision, "cuda_graph": cuda_graph}
    for key, value in options.items():
        if value is not None:
            overrides[key] = value
    cfg = load_config(preset, config, overrides)
    if not resume:
        Trainer.check_folder(out, overwrite=overwrite)  # before any data is read
    trainer = Trainer(cfg, out, show_progress=progress, console=console)
    try:
        result = trainer.fit(resume=resume, overwrite=overwrite)
    finally:
        distributed.shutdown()
    if trainer.is_main:
        _print_metrics(result.metrics)


def _argv_without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (what a launched rank must not see again)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def _print_metrics(metrics: dict) -> None:
    table = Table(title=f"{metrics['method']}: val metrics")
    table.add_column("")
    # the depth metrics when the run scored depth (a run without depth prints what it always did)
    depth = [k for k in DEPTH_METRICS if k in metrics["final"]]
    names = ("mAP", "mAP_coco", "mIoU", *depth, "geometric_mean")
    for name in names:
        table.add_column(name, justify="right")
    for label, row in (("final", metrics["final"]), (f"best (epoch {metrics['best_epoch']})", metrics["best"])):
        table.add_row(label, *(f"{row[k]:.4f}" if row.get(k) is not None else "n/a" for k in names))
    console = Console()
    console.print(table)
    weights = ", ".join(f"w_{t} = {w:.4g}" for t, w in metrics["final_weights"].items())
    ratio = metrics.get("initial_loss_ratio_det_over_seg")
    console.print(
        f"final weights: {weights}; initial L_det/L_seg = {ratio:.1f}" if ratio else f"final weights: {weights}"
    )
    console.print(training_summary(metrics), highlight=False)


def training_summary(metrics: dict) -> str:
    """One line: epochs, training time and the numeric precision the run resolved (``precision: auto`` is fp32
    on a CPU without native bf16, which trains several times slower than one with it)."""
    layout = " + channels-last" if metrics.get("channels_last") else ""
    extras = "".join(f", {name}" for name in ("compile", "cuda_graph") if metrics.get(name))
    epochs = metrics["epochs"]
    return (
        f"trained {epochs} epoch{'' if epochs == 1 else 's'} in {metrics['train_time_s']:.0f} s, "
        f"precision {metrics['precision']}{layout}{extras}"
    )


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder written by `taskweight train`")],
    split: Annotated[str, typer.Option(help="split to score: val or test")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best.pt (val-selected) or last.pt")] = "best.pt",
) -> None:
    """Score a trained run's checkpoint on a split (default: the held-out test split)."""
    from taskweight.scoring import score_run

    metrics = score_run(run, split=split, checkpoint=checkpoint)
    typer.echo(json.dumps(metrics, indent=2))


@app.command()
def methods() -> None:
    """List the task-weighting strategies and their options."""
    from taskweight import weighting

    table = Table(title="task-weighting strategies (taskweight.weighting.get(name, **options))")
    table.add_column("name")
    table.add_column("title")
    table.add_column("what it does")
    table.add_column("options (--method-opt key=value)")
    for name in weighting.available():
        cls = weighting.strategy_class(name)
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, cls.title, summary, ", ".join(weighting.option_names(name)) or "—")
    Console().print(table)


def _parse_roots(pairs: list[str] | None) -> dict[str, Path]:
    roots: dict[str, Path] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise typer.BadParameter(f"expected NAME=DIR, got {pair!r}", param_hint="--root")
        roots[name] = Path(value)
    return roots


@app.command()
def bench(
    preset: Annotated[
        str,
        typer.Option(
            help="bench preset: quick (make demo, ~5 min on 2 CPU cores with native bf16, ~16 min in fp32), "
            "synth (3 synthetic datasets × 3 seeds, ~4–5 h with --jobs 2 on a bf16 CPU), "
            "synth-paper (synth under the paper protocol, 16 × 2-epoch evaluations, a few hours with --jobs 2), "
            "synth-lite (synth-kitti × 3 seeds), synth-large (synth at 800 scenes × 12 epochs, GPU), "
            "three-task (synth-kitti with depth: det + seg + depth, 9 methods × 3 seeds), "
            "paper (GPU, your data, the paper protocol), or a YAML file"
        ),
    ] = "quick",
    out: Annotated[Path, typer.Option("--out", help="results folder; finished cells found there are skipped")] = Path(
        "runs/bench"
    ),
    datasets: Annotated[
        list[str] | None,
        typer.Option("--datasets", help="only these datasets of the preset: repeat the option or give a comma list"),
    ] = None,
    methods: Annotated[
        list[str] | None,
        typer.Option(
            "--methods",
            help="only these methods: repeat the option or give a comma list, e.g. --methods equal,gradnorm,meta_async",
        ),
    ] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="number of seeds per (dataset, method)")] = None,
    root: Annotated[
        list[str] | None, typer.Option("--root", help="dataset root for a non-synthetic dataset: NAME=DIR (repeatable)")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show the progress display")] = True,
    jobs: Annotated[
        int, typer.Option(min=1, help="cells run at once in separate processes (they share the CPU cores and the GPU)")
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            help="local (--jobs processes on this machine) or ray (cells as Ray tasks, one CPU or one GPU each; "
            "a killed cell is re-run and resumes from its checkpoint)"
        ),
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address for --executor ray (default: start a local Ray)")
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="matched (every column the epochs the preset gives it) "
            "or paper (baselines E epochs, best-val checkpoint; "
            "meta/meta_async N evaluations × e epochs fine-tuning the best model so far, async periods in epochs). "
            "Default: the preset's"
        ),
    ] = None,
) -> None:
    """Run the paper's Table II: every (dataset, method, seed) cell, scored on the test split.

    Writes results.json (schema in taskweight.bench.results), results.csv, table2.md,
    table1.md, paper_comparison.md, summary.json and plots into OUT. Rerunning skips finished
    cells; a failing cell is reported and the others go on.
    """
    from taskweight.bench import PROTOCOLS, BenchRunner, load_bench_preset

    if protocol is not None and protocol not in PROTOCOLS:
        raise ConfigError(f"option '--protocol' must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    runner = BenchRunner(
        load_bench_preset(preset),
        out,
        datasets=_split_list(datasets),
        methods=_split_list(methods),
        seeds=seeds,
        roots=_parse_roots(root),
        show_progress=progress,
        console=console,
        jobs=jobs,
        protocol=protocol,
        executor=executor,
        address=address,
    )
    records = runner.run()
    typer.echo((out / "table2.md").read_text())
    failed = [r for r in records if r.status != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} cell(s) failed[/]; see {out}/cells/*/*/*/error.txt")
        raise typer.Exit(code=1)


def _split_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for item in values for v in item.replace(",", " ").split()]


@app.command()
def report(
    results: Annotated[
        list[Path], typer.Argument(help="folders holding results.json (or the files themselves); several are merged")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="where to write the report (default: beside results.json; required for several)"),
    ] = None,
) -> None:
    """Render table2.md, table1.md, summary.json and plots again from results.json alone.

    Several results (of several machines, or of two protocols' folders sharing baseline cells) are
    merged into one table: a cell found twice must hold the same numbers. The merged
    results.json and results.csv are written beside the report.
    """
    from taskweight.bench import write_report
    from taskweight.bench.results import merge_results, save_results

    if len(results) > 1 and out is None:
        raise ConfigError("option '--out': give the folder for the merged report of several results")
    records = merge_results(results)
    source = results[0] if results[0].is_dir() else results[0].parent
    target = out or source
    target.mkdir(parents=True, exist_ok=True)
    if len(results) > 1:
        save_results(target, records)
    write_report(target, records, source=source)
    typer.echo((target / "table2.md").read_text())


def _progress_bar(description: str) -> tuple[Any, Callable[[int, int], None]]:
    """A rich progress bar (a context manager) and the ``progress(done, total)`` callback that moves it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    bar = progress.add_task(description, total=None)
    return progress, lambda done, total: progress.update(bar, completed=done, total=total)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run folder written by `taskweight train`")],
    images: Annotated[
        list[Path],
        typer.Option(
            "--images", help="image file or folder (searched recursively for png/jpg/bmp/tif/webp); repeatable"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="output folder (created)")],
    score_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="keep detections scoring above this (σ(obj)·σ(cls))")
    ] = 0.3,
    format: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="what to write per image: png (NAME_overlay.png + NAME_mask.png; a run with depth adds "
            "NAME_depth.png, KITTI uint16 metres x 256, and NAME_depth_color.png, log scale 1-80 m, near bright), "
            "kitti (NAME.txt, KITTI label lines with the score last) or json (NAME.json); repeat or give a comma "
            "list (default: all three)",
        ),
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="best.pt (val-selected) or last.pt")] = "best.pt",
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N (default: the run's)")] = None,
) -> None:
    """Run a trained run on images of any size and write what it sees.

    Each image is stretched to the run's input size exactly as in training (training does
    not letterbox) and the outputs are mapped back to the original pixels. Per image: an
    overlay PNG (boxes with class and score, the segmentation mask blended), the mask as an
    index PNG (0 void, 1 road, 2 sidewalk) and the detections as KITTI label lines and/or JSON.
    A run trained with depth also writes, with png, the depth in metres at the image's own size
    as a KITTI depth PNG (uint16, metres x 256) and a colour-mapped picture (matplotlib magma_r,
    log scale from 1 m, bright, to 80 m, black). An unreadable image is reported by name and the
    rest are written (exit 0); when none can be read the command fails (exit 2).
    """
    from rich.markup import escape

    from taskweight.predict import FORMATS, check_formats, load_run, predict_paths

    formats = check_formats(_split_list(format) or FORMATS)
    loaded = load_run(run, checkpoint=checkpoint, device=device)
    progress, advance = _progress_bar(f"predict → {out}")
    with progress:
        summary = predict_paths(
            loaded,
            images,
            out,
            formats=formats,
            score_threshold=score_threshold,
            progress=advance,
            on_unreadable=lambda exc: console.print(f"[yellow]warning:[/] {escape(str(exc))}", soft_wrap=True),
        )
    total = len(summary.written) + len(summary.unreadable)
    if summary.unreadable:
        console.print(
            f"[yellow]{len(summary.unreadable)} of {total} image(s) could not be read:[/] "
            + escape(", ".join(str(e.path) for e in summary.unreadable)),
            soft_wrap=True,
        )
    typer.echo(f"wrote {len(summary.written)} image(s) into {out} ({', '.join(formats)})")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="run folders, one column each (their method titles the column)")],
    out: Annotated[Path, typer.Option("--out", help="grid PNG; the chosen images are listed in OUT.json")] = Path(
        "fig5.png"
    ),
    split: Annotated[str, typer.Option(help="split of the first run's dataset to take the images from")] = "test",
    n: Annotated[int, typer.Option("--n", min=1, help="number of images (rows)")] = 6,
    score_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="detections drawn above this score")] = 0.3,
    panel_width: Annotated[
        int | None, typer.Option(min=16, help="panel width in pixels (default: the image's, at most 640)")
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="best.pt (val-selected) or last.pt")] = "best.pt",
) -> None:
    """The paper's Fig. 5: rows of images, columns ground truth | run A | run B | ...

    The same images (spread evenly over the split, preferring those labelled for both tasks)
    through every run, each panel an overlay of boxes and the segmentation mask. When a run has
    depth, each image gets a second row of depth pictures (ground truth where the dataset has
    depth, then each run; grey: no depth).
    """
    from taskweight.compare import compare_runs

    progress, advance = _progress_bar(f"compare → {out}")
    with progress:
        report = compare_runs(
            runs,
            out,
            split=split,
            n=n,
            checkpoint=checkpoint,
            score_threshold=score_threshold,
            panel_width=panel_width,
            progress=advance,
        )
    typer.echo(
        f"wrote {out} ({report['layout']['rows']} rows × {report['layout']['cols']} columns: "
        f"{', '.join(report['columns'])}) and {out.with_suffix('.json')}"
    )


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run folder written by `taskweight train`")],
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write; versions and checks go to OUT.json")],
    format: Annotated[str, typer.Option("--format", help="export format (onnx)")] = "onnx",
    opset: Annotated[int, typer.Option(min=18, help="ONNX opset version (torch's exporter writes 18 or later)")] = 18,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="symbolic batch dimension")] = False,
    postprocess: Annotated[
        bool,
        typer.Option(
            "--postprocess",
            help="include the box decode and NMS (batch 1; outputs boxes, scores, labels in input pixels, seg classes)",
        ),
    ] = False,
    score_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="with --postprocess: score threshold in the graph (default: the run's)"),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="largest |onnxruntime − PyTorch| allowed on the check images")
    ] = 1e-3,
    check_images: Annotated[int, typer.Option(min=1, help="val images the ONNX model is checked on")] = 8,
    int8: Annotated[
        bool, typer.Option("--int8", help="also write OUT.int8.onnx: static INT8 quantisation (onnxruntime)")
    ] = False,
    calibration_images: Annotated[int, typer.Option(min=1, help="training images to calibrate INT8 on")] = 64,
    evaluate: Annotated[
        str | None,
        typer.Option("--evaluate", help="score PyTorch fp32, ONNX fp32 (and INT8) on this split; report the drop"),
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="best.pt (val-selected) or last.pt")] = "best.pt",
) -> None:
    """Export the multi-task network to ONNX with torch's exporter and check it with onnxruntime.

    The graph takes the preprocessed image (B×3×H×W in [0, 1] at the run's input size) and
    returns the raw detection map and segmentation logits, and for a run with depth the log
    depth (or, with --postprocess, the final detections, classes and depth in metres). Every
    output is compared with PyTorch's on real val images; the versions of torch, the exporter,
    onnx and onnxruntime, the check and the metrics go to OUT.json.
    Needs onnx, onnxruntime and onnxscript (the package's `export` extra).
    """
    from taskweight.export import export_run

    if format != "onnx":
        raise ConfigError(f"option '--format': only onnx is supported, got {format!r}")
    report = export_run(
        run,
        out,
        checkpoint=checkpoint,
        opset=opset,
        dynamic_batch=dynamic_batch,
        postprocess=postprocess,
        score_threshold=score_threshold,
        check_images=check_images,
        tolerance=tolerance,
        int8=int8,
        calibration_images=calibration_images,
        evaluate_split=evaluate,
        log=lambda message: console.print(message, highlight=False),
    )
    check = report["check"]
    typer.echo(
        f"wrote {out} ({report['size_mb']['fp32']:.2f} MB) and {out.with_suffix('.json')}; onnxruntime vs PyTorch "
        f"on {check['images']} image(s): max |diff| {check['max_abs_diff_overall']:.3g} (tolerance {tolerance:g})"
    )
    if "metrics" in report:
        typer.echo(json.dumps(report["metrics"], indent=2))


def _register_subcommands() -> None:
    from taskweight.search.command import search

    app.command(name="search")(search)
    from taskweight.data.command import data_app

    app.add_typer(data_app, name="data", help="inspect datasets: `taskweight data check` lists every problem")


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
