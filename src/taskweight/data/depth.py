"""Depth ground truth: the two on-disk formats the loaders read and the one check they share.

**KITTI depth** (the depth completion/prediction benchmark, ``proj_depth/groundtruth``; also the
format of the user-brought WoodScape depth): a uint16 PNG per image whose pixel p is the depth in
metres × 256; p = 0 means no measurement.  So depth Z = p / 256 metres, the finest step is
1/256 m and the farthest encodable depth 65535 / 256 ≈ 256 m.  :func:`encode_kitti_depth` writes
it (the synthetic scenes), :func:`read_kitti_depth` reads it back: float32 metres with 0 where
there is no measurement.

**Cityscapes disparity** (``disparity/{split}/{city}/{stem}_disparity.png`` with the calibration
``camera/{split}/{city}/{stem}_camera.json``): a uint16 PNG whose pixel p > 0 is the disparity
d = (p − 1) / 256 pixels, p = 0 an invalid measurement (cityscapesScripts' definition).  The
camera file holds, as the real ones do::

    {"extrinsic": {"baseline": B, "pitch": .., "roll": .., "x": .., "y": .., "yaw": .., "z": ..},
     "intrinsic": {"fx": fx, "fy": .., "u0": .., "v0": ..}}

(baseline in metres, fx in pixels of the disparity map; the real Cityscapes baseline is about
0.21-0.22 m).  Depth Z = B · fx / d metres for d > 0; d = 0 (p = 1) is a point at infinity and,
like p = 0, no measurement.  :func:`encode_cityscapes_disparity` writes p = round(256 · B · fx / Z) + 1,
0 where that is not in 2..65535 (Z too far for a 1/256-pixel disparity step, or nearer than
B · fx / 256), so the round trip errs by at most half a step in disparity:
\\|1/Z' − 1/Z\\| ≤ 1 / (512 · B · fx).

Both give **depth Z along the optical axis** (the camera's z coordinate, not the Euclidean range
to the point), in metres: what a rectified stereo pair measures and what KITTI's maps hold.

Resizing: depth maps are metric, so they are converted to metres at their own resolution (the
image's) and only then resized, nearest-neighbour, with the labels
(:func:`taskweight.data.transforms.resize`): a resized map holds measured values only and 0 stays
"no measurement".  (A disparity map could not be resized as is: disparities scale with the width.)

:func:`paired_depth_png` is the check every loader makes when it indexes a depth (or disparity)
PNG paired with an image by name: readable, 16-bit single-channel, the image's size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.errors import DataFormatError
from taskweight.jsonio import read_json_file

KITTI_DEPTH_SCALE = 256.0
"""Pixel value per metre."""
KITTI_DEPTH_MAX = 65535 / KITTI_DEPTH_SCALE
"""Farthest encodable depth (metres)."""
DISPARITY_SCALE = 256.0
"""Cityscapes disparity: pixel value per pixel of disparity (d = (p − 1) / 256)."""
UINT16_MODES = ("I;16", "I;16B", "I;16L", "I")
"""PIL modes of a single-channel 16-bit PNG (``I`` when PIL widens it on opening)."""
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


# --------------------------------------------------------------------------------- shared PNG checks
def _uint16_pixels(path: Path, what: str) -> np.ndarray:
    """H × W int64 pixels of a single-channel 16-bit PNG; anything else raises naming the file."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.asarray(image)
    except _PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot read {what} PNG: {exc}") from None
    if mode not in UINT16_MODES or pixels.ndim != 2:
        raise DataFormatError(path, f"a {what} is a 16-bit single-channel PNG, this one is mode {mode}")
    pixels = pixels.astype(np.int64)
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
        raise DataFormatError(path, f"{what} pixel values must be in 0..65535")
    return pixels


def paired_depth_png(
    path: Path,
    size: tuple[int, int],
    image: Path,
    problems: list[DataFormatError],
    *,
    verify: bool = False,
    what: str = "depth map",
) -> Path | None:
    """Index the depth (or disparity) PNG ``path`` paired by name with ``image`` of ``size`` = (H, W).

    Returns ``path`` when it is a readable single-channel 16-bit PNG of the image's size (header
    only; every chunk's CRC too with ``verify``); ``None`` when there is no such file (the sample is
    then not labelled for depth) or when it is malformed, in which case the error, naming the
    file, is appended to ``problems`` (the loader raises or skips the sample with it).
    """
    if not path.is_file():
        return None
    try:
        try:
            with Image.open(path) as im:
                depth_size, mode = (im.height, im.width), im.mode
                if verify:
                    im.verify()
        except _PIL_ERRORS as exc:
            raise DataFormatError(path, f"cannot read {what} PNG: {exc}") from None
        if depth_size != size:
            raise DataFormatError(
                path,
                f"{what} is {depth_size[1]}x{depth_size[0]} (WxH) but image {image.name} is {size[1]}x{size[0]}",
            )
        if mode not in UINT16_MODES:
            raise DataFormatError(path, f"a {what} is a 16-bit single-channel PNG, got mode {mode}")
    except DataFormatError as exc:
        problems.append(exc)
        return None
    return path


def _check_shape(path: Path, values: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    if values.shape != tuple(size):
        raise DataFormatError(
            path, f"{what} is {values.shape[1]}x{values.shape[0]} (WxH), not the image's {size[1]}x{size[0]}"
        )
    return values


# --------------------------------------------------------------------------------- KITTI depth
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
    pixels = _uint16_pixels(Path(path), "KITTI depth map")
    return (pixels.astype(np.float32) / np.float32(KITTI_DEPTH_SCALE)).astype(np.float32)


def load_kitti_depth(path: Path, size: tuple[int, int]) -> np.ndarray:
    """:func:`read_kitti_depth` of a map that must be ``size`` = (H, W) (else an error naming it)."""
    return _check_shape(path, read_kitti_depth(path), size, "depth map")


# --------------------------------------------------------------------------------- Cityscapes disparity
@dataclass(frozen=True)
class StereoCalibration:
    """What turns a Cityscapes disparity map into depth: the stereo ``baseline`` (m) and the focal
    length ``fx`` (pixels of the disparity map)."""

    baseline: float
    fx: float

    @property
    def scale(self) -> float:
        """B · fx (metre-pixels): depth Z = scale / d."""
        return self.baseline * self.fx


def cityscapes_camera(
    baseline: float,
    fx: float,
    fy: float,
    u0: float,
    v0: float,
    *,
    x: float = 0.0,
    y: float = 0.0,
    z: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    yaw: float = 0.0,
) -> dict[str, dict[str, float]]:
    """A ``camera.json`` document with the real files' structure: ``extrinsic`` (stereo baseline in
    metres; camera position x forward, y left, z up in metres and pitch, roll, yaw in radians, in the
    vehicle frame) and ``intrinsic`` (fx, fy focal lengths and u0, v0 principal point, pixels)."""
    return {
        "extrinsic": {
            "baseline": float(baseline),
            "pitch": float(pitch),
            "roll": float(roll),
            "x": float(x),
            "y": float(y),
            "yaw": float(yaw),
            "z": float(z),
        },
        "intrinsic": {"fx": float(fx), "fy": float(fy), "u0": float(u0), "v0": float(v0)},
    }


def _positive_number(path: Path, doc: dict[str, Any], section: str, key: str) -> float:
    block = doc.get(section)
    if not isinstance(block, dict):
        raise DataFormatError(path, f"camera file needs an object {section!r} (with {key!r}), got {block!r}")
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise DataFormatError(path, f"'{section}.{key}' must be a positive number, got {value!r}")
    return float(value)


def read_cityscapes_camera(path: str | Path) -> StereoCalibration:
    """The ``extrinsic.baseline`` and ``intrinsic.fx`` of a Cityscapes ``camera.json``; a missing or
    unreadable file, malformed JSON (with the parser's line) or a missing / non-positive value
    raises :class:`DataFormatError` naming the file.  The other keys are not needed and not checked."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "camera calibration not found (needed to turn the disparity map into depth)")
    doc, _ = read_json_file(path, "camera")
    if not isinstance(doc, dict):
        raise DataFormatError(path, "expected a JSON object with 'extrinsic' and 'intrinsic'")
    return StereoCalibration(
        baseline=_positive_number(path, doc, "extrinsic", "baseline"),
        fx=_positive_number(path, doc, "intrinsic", "fx"),
    )


def encode_cityscapes_disparity(depth: np.ndarray, calibration: StereoCalibration) -> np.ndarray:
    """uint16 Cityscapes disparity pixels of a depth map (metres, 0 = none): d = B · fx / Z,
    p = round(256 · d) + 1; 0 (invalid) where Z is 0 or not finite, or p falls outside 2..65535
    (too far: the disparity rounds to 0; too near: beyond 255.99 pixels)."""
    z = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(z) & (z > 0)
    steps = np.zeros(z.shape, np.float64)
    steps[valid] = np.round(DISPARITY_SCALE * calibration.scale / z[valid])
    valid &= (steps >= 1) & (steps <= 65534)
    pixels = np.zeros(z.shape, np.uint16)
    pixels[valid] = (steps[valid] + 1).astype(np.uint16)
    return pixels


def decode_cityscapes_disparity(pixels: np.ndarray) -> np.ndarray:
    """Disparity in pixels (float64) of Cityscapes disparity pixels: (p − 1) / 256 for p > 0, 0 for p = 0."""
    p = np.asarray(pixels, dtype=np.float64)
    return np.where(p > 0, (p - 1) / DISPARITY_SCALE, 0.0)


def disparity_to_depth(disparity: np.ndarray, calibration: StereoCalibration) -> np.ndarray:
    """float32 depth Z = B · fx / d metres where d > 0, 0 (no measurement) elsewhere."""
    d = np.asarray(disparity, dtype=np.float64)
    out = np.zeros(d.shape, np.float64)
    positive = d > 0
    out[positive] = calibration.scale / d[positive]
    return out.astype(np.float32)


def read_cityscapes_depth(
    disparity: str | Path, calibration: StereoCalibration, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Depth (float32 metres, 0 = no measurement) of a Cityscapes disparity PNG with its calibration;
    the PNG must be single-channel 16-bit (and ``size`` = (H, W) when given), else an error naming it."""
    path = Path(disparity)
    pixels = _uint16_pixels(path, "Cityscapes disparity map")
    if size is not None:
        _check_shape(path, pixels, size, "disparity map")
    return disparity_to_depth(decode_cityscapes_disparity(pixels), calibration)


def write_cityscapes_depth(
    disparity_path: str | Path, camera_path: str | Path, depth: np.ndarray, camera: dict[str, dict[str, float]]
) -> None:
    """Write a depth map (metres, 0 = none) as a Cityscapes disparity PNG and its ``camera.json``
    (``camera``: a :func:`cityscapes_camera` document, whose baseline and fx encode the disparity)."""
    calibration = StereoCalibration(camera["extrinsic"]["baseline"], camera["intrinsic"]["fx"])
    Image.fromarray(encode_cityscapes_disparity(depth, calibration)).save(disparity_path, compress_level=3)
    Path(camera_path).write_text(json.dumps(camera, indent=4, sort_keys=True) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ KITTI depth completion, object images
DEPTH_COMPLETION_SUBDIR = Path("proj_depth") / "groundtruth" / "image_02"
"""Where a drive of KITTI's depth completion release keeps its ground truth for the left colour camera."""
MAPPING_FILES = ("train_rand.txt", "train_mapping.txt")
"""The object devkit's ``mapping/`` files that tie object training images to raw drives and frames."""


def read_object_to_raw_mapping(folder: Path) -> dict[str, tuple[str, str]]:
    """Object training image NAME (``000123``) → (drive, frame) from the KITTI object devkit's mapping files.

    ``train_rand.txt`` is one comma-separated line: entry i (0-based, the image ``%06d`` % i) is a
    1-based line number of ``train_mapping.txt``, whose lines read ``DATE DRIVE FRAME``
    (``2011_09_26 2011_09_26_drive_0005_sync 0000000109``). A missing file, a malformed entry or
    line, or an index out of range raises a :class:`DataFormatError` naming the file (and line).
    """
    rand_path, mapping_path = (folder / name for name in MAPPING_FILES)
    for path in (rand_path, mapping_path):
        if not path.is_file():
            raise DataFormatError(
                path, "KITTI object devkit mapping file not found (option depth_mapping names its folder)"
            )
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(mapping_path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataFormatError(mapping_path, f"expected 'DATE DRIVE FRAME', got {line!r}", line=number)
        rows.append((fields[1], fields[2]))
    mapping: dict[str, tuple[str, str]] = {}
    text = rand_path.read_text(encoding="utf-8").strip()
    for index, value in enumerate(text.split(",") if text else []):
        try:
            row = int(value)
        except ValueError:
            raise DataFormatError(
                rand_path, f"entry {index + 1} is not an integer: {value.strip()!r}", line=1
            ) from None
        if not 1 <= row <= len(rows):
            raise DataFormatError(
                rand_path, f"entry {index + 1} names line {row} of {mapping_path.name}, which has {len(rows)}", line=1
            )
        mapping[f"{index:06d}"] = rows[row - 1]
    return mapping


def depth_completion_path(depth_root: Path, drive: str, frame: str) -> Path | None:
    """The ground-truth PNG of ``frame`` of ``drive`` under ``depth_root``, in the release's ``train/`` or
    ``val/`` folder or directly under ``depth_root``; None when the release has no map for that frame."""
    for part in ("train", "val", ""):
        path = depth_root / part / drive / DEPTH_COMPLETION_SUBDIR / f"{frame}.png"
        if path.is_file():
            return path
    return None
