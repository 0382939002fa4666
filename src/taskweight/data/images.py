"""Reading image files (PNG) and checking them, every error naming the file.

Indexing reads headers only (:func:`png_header`: size and mode) and, with ``verify="crc"``,
every chunk (:func:`verify_png`: finds truncated or damaged files without decoding);
loading decodes (:func:`decode`, :func:`read_rgb`).  Depth and disparity PNGs have their own
checks in :mod:`taskweight.data.depth`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from taskweight.errors import DataFormatError

PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What PIL raises for a file it cannot read."""
SINGLE_CHANNEL = ("L", "P", "I", "I;16", "I;16B", "I;16L")
"""PIL modes of a single-channel (label) PNG."""


def png_header(path: Path, what: str = "PNG") -> tuple[tuple[int, int], str]:
    """((H, W), mode) from the header; an unreadable file raises DataFormatError naming it."""
    try:
        with Image.open(path) as im:
            return (im.height, im.width), im.mode
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot read {what}: {exc}") from None


def verify_png(path: Path, what: str = "PNG") -> None:
    """Read every chunk and check its CRC without decoding (finds truncated or damaged files)."""
    try:
        with Image.open(path) as im:
            im.verify()
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"corrupt or truncated {what}: {exc}") from None


def checked_png(path: Path, what: str, *, crc: bool) -> tuple[tuple[int, int], str]:
    """:func:`png_header` of ``path``, and with ``crc`` :func:`verify_png` too."""
    size, mode = png_header(path, what)
    if crc:
        verify_png(path, what)
    return size, mode


def decode(path: Path, what: str = "PNG") -> Image.Image:
    """Fully decoded copy of an image (DataFormatError naming the file when it is corrupt)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot decode {what}: {exc}") from None


def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 image; a corrupt file raises DataFormatError naming it."""
    return np.asarray(decode(path, "image").convert("RGB"))


def size_mismatch(
    path: Path, what: str, size: tuple[int, int], image: Path, image_size: tuple[int, int]
) -> DataFormatError:
    """The error of a label file ``path`` whose (H, W) ``size`` is not the image's."""
    return DataFormatError(
        path, f"{what} is {size[1]}x{size[0]} (WxH) but image {image.name} is {image_size[1]}x{image_size[0]}"
    )
