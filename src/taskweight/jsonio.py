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
