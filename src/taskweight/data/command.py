"""``taskweight data ...`` commands (a Typer sub-app; ``cli.py`` adds it as ``data``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from taskweight.classes import DET_CLASSES
from taskweight.yamlio import load_yaml, yaml_error_location

data_app = typer.Typer(help="Dataset tools: check a dataset's layout, labels and class counts.", no_args_is_help=True)


def _options(pairs: list[str] | None) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        try:
            out[key.strip().replace("-", "_")] = load_yaml(value, f"--option {key.strip()}")
        except yaml.YAMLError as exc:
            raise typer.BadParameter(
                f"{key.strip()}={value!r}: invalid YAML value: {yaml_error_location(exc)[1]}", param_hint="--option"
            ) from None
    return out


@data_app.command()
def check(
    format: Annotated[str, typer.Option("--format", help="dataset layout: kitti, cityscapes or woodscape")],
    root: Annotated[Path, typer.Option("--root", help="dataset root folder")],
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split", help="split to check, repeatable (default train, val, test; 'all': every image as one split)"
        ),
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="class mapping YAML merged over the format's defaults")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="loader option key=value, repeatable (e.g. split_mode=official, labels=json)"),
    ] = None,
    depth: Annotated[
        bool,
        typer.Option(
            "--depth",
            help="also check the depth ground truth (KITTI depth PNGs, Cityscapes disparity + camera files, "
            "WoodScape depth/ PNGs): each file's format, size and content, and count the images that have one",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Count images and labels per split and class and list every problem (file, line or
    pixel, what is wrong).  Exits with status 1 when there are problems."""
    from taskweight.data.check import check_dataset

    console = Console(width=200, soft_wrap=True)
    try:
        options = _options(option)
        if depth:
            options["depth"] = True
        report = check_dataset(format, root, split, mapping=mapping, **options)
    except (ValueError, TypeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table(title=f"{format} dataset at {root}")
        for col in (
            "split",
            "images",
            "bad",
            "det labels",
            "seg labels",
            *(["depth"] if depth else []),
            *DET_CLASSES,
            "ignore",
            "road px",
            "sidewalk px",
        ):
            table.add_column(col, justify="left" if col == "split" else "right")
        for name, c in report.splits.items():
            table.add_row(
                name,
                str(c.images),
                str(c.bad),
                str(c.with_detection),
                str(c.with_segmentation),
                *([str(c.with_depth)] if depth else []),
                *(str(c.boxes[k]) for k in DET_CLASSES),
                str(c.ignore_boxes),
                str(c.seg_pixels["road"]),
                str(c.seg_pixels["sidewalk"]),
            )
        console.print(table)
        if report.problems:
            console.print(f"[red]{len(report.problems)} problem(s):[/red]")
            for p in report.problems:
                console.print(str(p), markup=False, highlight=False)
        else:
            console.print("[green]no problems found[/green]")
        for warning in report.warnings:
            console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    if report.problems:
        raise typer.Exit(1)
