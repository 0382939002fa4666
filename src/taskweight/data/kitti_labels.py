"""KITTI object label files (``label_2/NNNNNN.txt``) and result files.

Each line has 15 whitespace-separated columns (16 for result files, whose last column is
the detection score)::

    type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]

``left top right bottom`` is the 2D box in pixels; ``h w l`` the 3D size (m); ``x y z`` the
bottom centre in camera coordinates (m).  ``DontCare`` lines mark regions with unlabelled
objects and use placeholders (-1, -10, -1000) for the other fields.  Every malformed line
raises :class:`~taskweight.errors.DataFormatError` naming the file and the line number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from taskweight.errors import DataFormatError

COLUMNS = (
    "type",
    "truncated",
    "occluded",
    "alpha",
    "left",
    "top",
    "right",
    "bottom",
    "height",
    "width",
    "length",
    "x",
    "y",
    "z",
    "rotation_y",
)
DONTCARE = "DontCare"


@dataclass(frozen=True)
class KittiObject:
    type: str
    truncated: float
    occluded: int
    alpha: float
    box: tuple[float, float, float, float]  # left, top, right, bottom (pixels)
    dimensions: tuple[float, float, float]  # h, w, l (m)
    location: tuple[float, float, float]  # x, y, z (m)
    rotation_y: float
    score: float | None = None
    line: int = 0  # 1-based line number in its file

    @property
    def is_dontcare(self) -> bool:
        return self.type == DONTCARE


def _number(token: str, column: str, path: str | Path, line_no: int) -> float:
    try:
        value = float(token)
    except ValueError:
        raise DataFormatError(path, f"column '{column}' is not a number: {token!r}", line=line_no) from None
    if not math.isfinite(value):
        raise DataFormatError(path, f"column '{column}' is not finite: {token!r}", line=line_no)
    return value


def parse_label_line(text: str, path: str | Path = "<string>", line_no: int = 1) -> KittiObject:
    """Parse one KITTI label line (15 columns, or 16 with a trailing score)."""
    tokens = text.split()
    if len(tokens) not in (15, 16):
        what = "empty line" if not tokens else f"expected 15 columns (16 with a score), got {len(tokens)}"
        raise DataFormatError(path, what, line=line_no)
    kind = tokens[0]
    try:
        float(kind)
    except ValueError:
        pass
    else:
        raise DataFormatError(path, f"column 'type' must be a class name, got the number {kind!r}", line=line_no)
    values = [_number(tok, col, path, line_no) for tok, col in zip(tokens[1:15], COLUMNS[1:], strict=True)]
    truncated, occluded, alpha, left, top, right, bottom, h, w, length, x, y, z, ry = values
    if occluded != int(occluded) or int(occluded) not in (-1, 0, 1, 2, 3):
        raise DataFormatError(path, f"column 'occluded' must be an integer in -1..3, got {tokens[2]!r}", line=line_no)
    if kind != DONTCARE:
        if right <= left:
            raise DataFormatError(path, f"box right {right:g} <= left {left:g}", line=line_no)
        if bottom <= top:
            raise DataFormatError(path, f"box bottom {bottom:g} <= top {top:g}", line=line_no)
    score = _number(tokens[15], "score", path, line_no) if len(tokens) == 16 else None
    return KittiObject(
        type=kind,
        truncated=truncated,
        occluded=int(occluded),
        alpha=alpha,
        box=(left, top, right, bottom),
        dimensions=(h, w, length),
        location=(x, y, z),
        rotation_y=ry,
        score=score,
        line=line_no,
    )


def parse_label_text(text: str, path: str | Path = "<string>") -> list[KittiObject]:
    """Parse the content of a label file; empty lines are allowed only at the end."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [parse_label_line(line, path, i) for i, line in enumerate(lines, start=1)]


def parse_label_file(path: str | Path) -> list[KittiObject]:
    """Parse a KITTI label (or result) file; an empty file means no objects."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, "label file not found") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read label file: {exc.strerror or exc}") from None
    return parse_label_text(text, path)


def format_label_line(obj: KittiObject) -> str:
    """The KITTI line of an object (2 decimals, as KITTI writes them)."""
    left, top, right, bottom = obj.box
    h, w, length = obj.dimensions
    x, y, z = obj.location
    text = (
        f"{obj.type} {obj.truncated:.2f} {obj.occluded:d} {obj.alpha:.2f} {left:.2f} {top:.2f} {right:.2f} "
        f"{bottom:.2f} {h:.2f} {w:.2f} {length:.2f} {x:.2f} {y:.2f} {z:.2f} {obj.rotation_y:.2f}"
    )
    if obj.score is not None:
        text += f" {obj.score:.4f}"
    return text
