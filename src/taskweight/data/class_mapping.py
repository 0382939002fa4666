"""Class mappings: source classes of a format -> the detection and segmentation classes.

Class mappings are data: ``taskweight/data/mappings/{format}.yaml``.  A user mapping (a dict
or the path of a YAML file) is merged over the format's defaults section by section; a
top-level ``inherit: false`` starts from empty tables instead.  A target is a class name of
:data:`~taskweight.classes.DET_CLASSES` / :data:`~taskweight.classes.SEG_CLASSES`, ``"ignore"``
(detection: an ignore region; segmentation: 255) or None (detection: not used).
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from taskweight.classes import DET_CLASSES, IGNORE_INDEX, SEG_CLASSES
from taskweight.errors import DataFormatError
from taskweight.yamlio import load_yaml, yaml_error_location

IGNORE = "ignore"
META_KEYS = ("inherit", "description", "name")
"""Top-level keys of a mapping file that are not tables."""


def default_mapping(format: str) -> dict[str, Any]:
    """The format's default mapping, read from ``data/mappings/{format}.yaml``."""
    try:
        # one joinpath() per part: Traversable.joinpath takes a single argument before Python 3.11
        text = resources.files("taskweight.data").joinpath("mappings").joinpath(f"{format}.yaml").read_text("utf-8")
    except FileNotFoundError:
        raise ValueError(f"no default class mapping for format {format!r}") from None
    return load_yaml(text, f"taskweight/data/mappings/{format}.yaml")


def read_mapping_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = load_yaml(path)
    except OSError as exc:
        raise DataFormatError(path, f"cannot read mapping file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not a text file ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        line, message = yaml_error_location(exc)
        raise DataFormatError(path, f"invalid YAML: {message}", line=line) from None
    if not isinstance(data, dict):
        raise DataFormatError(path, "a mapping file must hold a YAML mapping (detection: ..., segmentation: ...)")
    return data


def merged_mapping(format: str, mapping: dict | str | Path | None) -> dict[str, Any]:
    """Defaults of ``format`` with ``mapping`` (dict or YAML path) merged over them."""
    merged = default_mapping(format)
    if mapping is None:
        return merged
    user = read_mapping_file(mapping) if isinstance(mapping, (str, Path)) else mapping
    if not isinstance(user, dict):
        raise ValueError(f"mapping must be a dict or the path of a YAML file, got {type(mapping).__name__}")
    if user.get("inherit", True) is False:
        merged = {k: ({} if isinstance(v, dict) else ([] if isinstance(v, list) else v)) for k, v in merged.items()}
    for key, value in user.items():
        if key in META_KEYS:
            continue
        if key not in merged:
            raise ValueError(f"mapping: unknown key {key!r} for format {format!r}, expected one of {sorted(merged)}")
        if isinstance(merged[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"mapping[{key!r}] must be a dict")
            merged[key] = {**merged[key], **copy.deepcopy(value)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def detection_targets(table: dict[Any, Any], *, allow_ignore: bool = True) -> dict[str, int | str | None]:
    """Source class name -> detection class index, ``"ignore"`` or None."""
    out: dict[str, int | str | None] = {}
    for name, target in table.items():
        if target is None or (allow_ignore and target == IGNORE):
            out[str(name)] = target
        elif target in DET_CLASSES:
            out[str(name)] = DET_CLASSES.index(target)
        else:
            allowed = list(DET_CLASSES) + (["ignore"] if allow_ignore else []) + ["None"]
            raise ValueError(f"mapping['detection'][{name!r}] = {target!r}: expected one of {allowed}")
    return out


def seg_target(key: Any, target: Any, section: str = "segmentation") -> int:
    if target == IGNORE:
        return IGNORE_INDEX
    if target in SEG_CLASSES:
        return SEG_CLASSES.index(target)
    raise ValueError(f"mapping[{section!r}][{key!r}] = {target!r}: expected one of {list(SEG_CLASSES)} or 'ignore'")


def segmentation_lut(table: dict[Any, Any], size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 lookup table id -> class, bool table of ids listed in the mapping)."""
    lut = np.zeros(size, np.uint8)
    listed = np.zeros(size, bool)
    for label_id, target in table.items():
        if isinstance(label_id, bool) or not isinstance(label_id, (int, np.integer)) or not 0 <= int(label_id) < size:
            raise ValueError(f"mapping['segmentation'] key {label_id!r} must be a label id in 0..{size - 1}")
        lut[int(label_id)] = seg_target(label_id, target)
        listed[int(label_id)] = True
    return lut, listed


def color_table(table: dict[Any, Any]) -> dict[int, int]:
    """``"R,G,B"`` (or [R, G, B]) -> class, as packed 0xRRGGBB -> class index."""
    out = {}
    for key, target in table.items():
        parts = key if isinstance(key, (list, tuple)) else str(key).replace(" ", "").split(",")
        try:
            r, g, b = (int(v) for v in parts)
            if not all(0 <= v <= 255 for v in (r, g, b)):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"mapping['colors'] key {key!r} must be 'R,G,B' with values in 0..255") from None
        out[(r << 16) | (g << 8) | b] = seg_target(key, target, "colors")
    return out


def map_colors(rgb: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """H x W x 3 uint8 colour mask -> H x W uint8 classes (colours not in ``table`` are void)."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.zeros(packed.shape, np.uint8)
    for code, cls in table.items():
        if cls:
            out[packed == code] = cls
    return out


def unmapped_counts(values: np.ndarray, known: np.ndarray) -> dict[int, int]:
    """Pixels per value of an integer label map that the bool table ``known`` does not list
    (values past the end of ``known`` count as not listed)."""
    hist = np.bincount(np.asarray(values).ravel().astype(np.int64, copy=False))
    listed = np.zeros(hist.size, bool)
    listed[: min(hist.size, known.size)] = known[: hist.size]
    return {int(v): int(hist[v]) for v in np.flatnonzero((hist > 0) & ~listed)}
