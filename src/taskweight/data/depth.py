"""KITTI's depth format (the depth completion/prediction benchmark, ``proj_depth/groundtruth``):
a uint16 PNG per image whose pixel p is the depth in metres × 256; p = 0 means no measurement.

So depth d = p / 256 metres, the finest step is 1/256 m and the farthest encodable depth
65535 / 256 ≈ 256 m. :func:`encode_kitti_depth` writes it (the synthetic scenes), :func:`read_kitti_depth`
reads it back (the KITTI loader): float32 metres with 0 where there is no measurement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from taskweight.errors import DataFormatError

KITTI_DEPTH_SCALE = 256.0
"""Pixel value per metre."""
KITTI_DEPTH_MAX = 65535 / KITTI_DEPTH_SCALE
"""Farthest encodable depth (metres)."""


def encode_kitti_depth(depth: np.ndarray) -> np.ndarray:
    """uint16 pixels of a depth map in metres: round(d · 256); 0 where d is 0, not finite or beyond
    :data:`KITTI_DEPTH_MAX` (no measurement), at least 1 for any other positive depth."""
    d = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0) & (d <= KITTI_DEPTH_MAX)
    pixels = np.zeros(d.shape, np.uint16)
    pixels[valid] = np.clip(np.round(d[valid] * KITTI_DEPTH_SCALE), 1, 65535).astype(np.uint16)
    return pixels


def write_kitti_depth(path: str | Path, depth: np.ndarray) -> None:
    """Write a depth map (metres, 0 = none) as KITTI's uint16 PNG."""
    Image.fromarray(encode_kitti_depth(depth)).save(path, compress_level=3)


def read_kitti_depth(path: str | Path) -> np.ndarray:
    """A KITTI depth PNG as float32 metres (H × W), 0 where there is no measurement.

    The file must be a single-channel 16-bit PNG (an 8-bit or colour image cannot hold the
    format and is refused, naming the file).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(path, f"cannot read depth PNG: {exc}") from None
    if mode not in ("I;16", "I;16B", "I") or pixels.ndim != 2:
        raise DataFormatError(path, f"a KITTI depth map is a 16-bit single-channel PNG, this one is mode {mode}")
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
        raise DataFormatError(path, "depth pixel values must be in 0..65535")
    return (pixels.astype(np.float32) / np.float32(KITTI_DEPTH_SCALE)).astype(np.float32)
