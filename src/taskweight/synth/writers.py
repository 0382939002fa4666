"""The synthetic dataset presets and :func:`generate_dataset`, which checks a request and hands it
to the writer of the preset's layout (:data:`WRITERS`: :mod:`.kitti_writer`, :mod:`.cityscapes_writer`,
:mod:`.woodscape_writer`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskweight.synth import cityscapes_writer, kitti_writer, woodscape_writer
from taskweight.synth.output import Request, check_counts
from taskweight.synth.scene import DEFAULT_SIZE

Writer = Callable[[Request], dict[str, Any]]

WRITERS: dict[str, Writer] = {
    "kitti": kitti_writer.write_dataset,
    "cityscapes": cityscapes_writer.write_dataset,
    "woodscape": woodscape_writer.write_dataset,
}
"""Dataset layout (a preset's ``format``) -> the function writing a checked :class:`Request` in it."""

PRESETS: dict[str, dict[str, Any]] = {
    "synth-kitti": {
        "size": DEFAULT_SIZE,
        "format": "kitti",
        "description": "KITTI aspect 375x1242 rendered at KITTI/3",
        "format_version": kitti_writer.FORMAT_VERSION,
        "changes": "version 1: the first",
    },
    "synth-cityscapes": {
        "size": cityscapes_writer.DEFAULT_SIZE,
        "format": "cityscapes",
        "description": "Cityscapes layout (1:2 aspect, polygons + labelIds/instanceIds PNGs)",
        "format_version": cityscapes_writer.FORMAT_VERSION,
        "changes": "version 2: road users synth-kitti would label DontCare are crowd regions; "
        "version 1 made every visible fragment a target",
    },
    "synth-woodscape": {
        "size": woodscape_writer.DEFAULT_SIZE,
        "format": "woodscape",
        "description": "WoodScape layout, equidistant fisheye, cameras FV/RV/MVL/MVR",
        "format_version": woodscape_writer.FORMAT_VERSION,
        "changes": "version 1: the first",
    },
}
"""Preset -> rendered size, the dataset layout it writes (a key of :data:`WRITERS`), a description, the
generator's ``format_version`` (written to ``synth.json``; raised whenever the same parameters would give other
files) and what each version changed."""


def check_generator_options(
    preset: str,
    *,
    train: int,
    val: int,
    test: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    single_label_fraction: float = 0.0,
    depth: bool = False,
    depth_pattern: str = "dense",
) -> None:
    """Raise ``ValueError`` naming the option if :func:`generate_dataset` would refuse these settings.

    Cheap (nothing is rendered): bench presets are checked with it before any cell runs.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: available {sorted(PRESETS)}")
    if not 0.0 <= float(single_label_fraction) <= 1.0:
        raise ValueError(f"single_label_fraction must be in [0, 1], got {single_label_fraction}")
    kitti = PRESETS[preset]["format"] == "kitti"
    if not kitti and float(single_label_fraction) != 0.0:
        raise ValueError(f"single_label_fraction is only supported by synth-kitti, not {preset}")
    if depth_pattern not in kitti_writer.DEPTH_PATTERNS:
        raise ValueError(f"depth_pattern must be one of {kitti_writer.DEPTH_PATTERNS}, got {depth_pattern!r}")
    if not kitti and depth and depth_pattern != "dense":
        raise ValueError(
            f"depth_pattern {depth_pattern!r} is only supported by synth-kitti; {preset} writes dense depth"
        )
    check_counts(train, val, test, seed, size, PRESETS[preset]["size"])


def generate_dataset(
    out: Path | str,
    *,
    preset: str = "synth-kitti",
    train: int,
    val: int,
    test: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    single_label_fraction: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    depth: bool = False,
    depth_pattern: str = "dense",
) -> dict[str, Any]:
    """Generate ``train + val + test`` scenes under ``out`` in the preset's layout.

    ``synth-kitti`` writes the KITTI layout (:mod:`taskweight.synth.kitti_writer`),
    ``synth-cityscapes`` and ``synth-woodscape`` those of :mod:`taskweight.synth.cityscapes_writer`
    and :mod:`taskweight.synth.woodscape_writer` (``single_label_fraction`` must be 0 there).

    ``size`` = (H, W) overrides the preset's rendered size (125x414 for synth-kitti).
    ``single_label_fraction`` f: a fraction f of each split's images carries one label kind
    only (half detection only: no semantic PNG; half segmentation only: no label_2 file).
    ``workers`` > 1 renders in that many spawned processes (the ``__main__`` module must be
    importable); the output is byte-identical whatever the number. ``depth`` also writes every
    scene's exact depth (:mod:`taskweight.data.depth`): synth-kitti under ``training/depth/`` in
    KITTI's uint16 format, synth-cityscapes as Cityscapes disparity PNGs with camera files
    (``disparity/``, ``camera/``), synth-woodscape as fisheye depth maps under ``depth/`` in
    KITTI's format; images and labels are the same with or without it.
    ``depth_pattern`` (synth-kitti; the others are dense): ``dense`` (every pixel with a surface) or
    ``lidar`` (the rows of a 64-beam scanner, :func:`~taskweight.synth.kitti_writer.lidar_rows`,
    sparse like KITTI's projected LiDAR).
    Returns a summary with counts per split and per class.
    """
    check_generator_options(
        preset,
        train=train,
        val=val,
        test=test,
        seed=seed,
        size=size,
        single_label_fraction=single_label_fraction,
        depth=depth,
        depth_pattern=depth_pattern,
    )
    counts, size = check_counts(train, val, test, seed, size, PRESETS[preset]["size"])
    request = Request(
        out=Path(out),
        preset=preset,
        counts=counts,
        seed=int(seed),
        size=size,
        depth=bool(depth),
        depth_pattern=depth_pattern,
        single_label_fraction=float(single_label_fraction),
        workers=workers,
        progress=progress,
    )
    return WRITERS[PRESETS[preset]["format"]](request)
