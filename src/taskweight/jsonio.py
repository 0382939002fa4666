"""Strict JSON output: NaN and infinities become ``null`` so every file is valid JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from taskweight.durable import atomic_write_text


def to_jsonable(value: Any) -> Any:
    """Recursively convert paths, tuples and non-finite floats to plain JSON values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, value: Any) -> None:
    """Write ``value`` as strict JSON, atomically (:func:`taskweight.durable.atomic_write_text`)."""
    atomic_write_text(path, json.dumps(to_jsonable(value), indent=2, allow_nan=False) + "\n")


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), allow_nan=False)


def read_json_file(path: Path, what: str) -> tuple[Any, str]:
    """(the JSON document, its text) of ``path`` (a ``what`` file, e.g. "camera"); an unreadable file or
    malformed JSON raises a :class:`~taskweight.errors.DataFormatError` naming the file and, for JSON, the
    parser's line."""
    from taskweight.errors import DataFormatError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read {what} file: {exc}") from None
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"malformed JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
