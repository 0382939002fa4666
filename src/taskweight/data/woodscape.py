"""WoodScape-layout dataset (format ``woodscape``): fisheye images of four cameras.

Layout under ``root``::

    rgb_images/NNNNN_{FV,RV,MVL,MVR}.png                     RGB image
    box_2d_annotations/NNNNN_CAM.txt                         boxes, one per line (empty file: none)
    semantic_annotations/gtLabels/NNNNN_CAM.png              single-channel class indices
    depth/NNNNN_CAM.png                                      with depth=True: user-brought depth (see below)
    splits/{train,val,test}.txt                              optional, one NNNNN_CAM per line

The nested folders of the public release are found too (one extra level:
``rgb_images/rgb_images/*.png``, ``box_2d_annotations/box_2d_annotations/*.txt``,
``semantic_annotations/semantic_annotations/gtLabels/*.png``).

Box lines are headerless CSV ``class_name,class_id,x_min,y_min,x_max,y_max`` (pixels); the
class id must agree with the class name (:data:`BOX_CLASS_IDS`: vehicles 0, person 1,
bicycle 2, traffic_light 3, traffic_sign 4; names a user mapping adds are not checked).
gtLabels indices: 0 void, 1 road, 2 lanemarks, 3 curb, 4 person, 5 rider, 6 vehicles,
7 bicycle, 8 motorcycle, 9 traffic_sign.

Classes (:file:`mappings/woodscape.yaml`, overridable with ``mapping=``):

- segmentation: road <- road + lanemarks; sidewalk <- curb; the rest void.  An index not in
  the mapping is an error (the pixel is named);
- detection: car <- vehicles; pedestrian <- person; cyclist <- bicycle (WoodScape boxes a
  bicycle together with its rider); traffic_light / traffic_sign are not used; any other
  class name is an error.

A sample needs at least one of its box file and gtLabels PNG (``has_det`` / ``has_seg``
say which); boxes must have x_max > x_min, y_max > y_min and lie in the image (1 pixel
tolerance, then clipped).  With ``verify="crc"`` (the default with ``on_error="skip"``) every
gtLabels PNG is decoded when the dataset is opened, so a mask with a class index outside the
mapping is skipped or raised then, not when its sample is loaded.  Splits: ``splits/{split}.txt``
when present wins; otherwise a 60/20/20 seeded split of all images (``split_seed``, default 0;
6k/2k/2k of 10k as the paper);
``"all"`` is every image.

Depth: the WoodScape release has no dense depth, so it is brought by the user (projected LiDAR,
a depth network, a simulator): ``depth/NAME.png`` (or ``depth/depth/NAME.png``) next to
``rgb_images/``, paired with ``rgb_images/NAME.png`` by name, in KITTI's depth format - uint16
PNG, metres x 256, 0 = no measurement (:mod:`taskweight.data.depth`) - at the image's size, read
only with ``depth=True``.  **Depth means z along the camera's optical axis** (the same quantity as
KITTI's and Cityscapes' maps), not the Euclidean range ``rho`` to the point: for a pixel whose
ray makes the angle ``theta`` with the optical axis, ``z = rho * cos(theta)`` (equidistant model
``theta = r / f``; WoodScape's own calibration: its polynomial in ``r``).  Rays at or beyond 90
degrees off-axis (the edge of a 190-degree lens) have no positive z and hold 0 (no measurement).
An image without a depth PNG is not labelled for depth (``has_depth`` False, counted by
``repr``'s ``with_depth``); an 8-bit or colour PNG or one of another size is a problem of the
sample naming the file.  ``taskweight synth --preset synth-woodscape --depth`` writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from taskweight.data.boxes import check_box
from taskweight.data.class_mapping import IGNORE, detection_targets, merged_mapping, segmentation_lut
from taskweight.data.dataset import DetSegDataset, Sample
from taskweight.data.images import SINGLE_CHANNEL, decode, read_rgb, size_mismatch
from taskweight.data.splits import DEFAULT_SPLIT_SEED, SplitEntry, seeded_split
from taskweight.errors import DataFormatError

CAMERAS = ("FV", "RV", "MVL", "MVR")
IMAGE_DIR, BOX_DIR, SEM_DIR = "rgb_images", "box_2d_annotations", "semantic_annotations"
DEPTH_DIR = "depth"
"""User-brought depth maps, ``depth/NAME.png`` in KITTI's uint16 format (z along the optical axis)."""
SEG_NAMES = (
    "void",
    "road",
    "lanemarks",
    "curb",
    "person",
    "rider",
    "vehicles",
    "bicycle",
    "motorcycle",
    "traffic_sign",
)
BOX_CLASS_IDS: dict[str, int] = {"vehicles": 0, "person": 1, "bicycle": 2, "traffic_light": 3, "traffic_sign": 4}
"""class_id of each class name of the box files (WoodScape's 2D box classes)."""


def find_dir(root: Path, *parts: str) -> Path:
    """``root/parts`` or, for the public release's nesting, ``root/p0/p0/p1...``."""
    direct = root.joinpath(*parts)
    nested = root.joinpath(parts[0], *parts)
    if nested.is_dir() and not (direct.is_dir() and any(p.is_file() for p in direct.iterdir())):
        return nested
    return direct


def parse_box_file(
    path: Path, det: dict[str, Any], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[DataFormatError]]:
    """(boxes, labels, ignore boxes, problems) of a box file; every bad line is a problem."""
    problems: list[DataFormatError] = []
    boxes, labels, ignore = [], [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return _empty() + ([DataFormatError(path, f"not a text file ({exc.reason} at byte {exc.start})")],)
    except OSError as exc:
        return _empty() + ([DataFormatError(path, f"cannot read box file: {exc.strerror or exc}")],)
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6:
            problems.append(
                DataFormatError(
                    path,
                    f"expected 6 comma-separated fields class_name,class_id,x_min,y_min,x_max,y_max, got {len(fields)}",
                    line=no,
                )
            )
            continue
        name = fields[0]
        try:
            class_id = int(fields[1])
            coords = [float(v) for v in fields[2:]]
        except ValueError:
            problems.append(
                DataFormatError(path, f"class_id and coordinates must be numbers, got {line.strip()!r}", line=no)
            )
            continue
        if name not in det:
            problems.append(
                DataFormatError(
                    path, f"unknown class {name!r} (known: {sorted(det)}; extend the mapping to use it)", line=no
                )
            )
            continue
        if name in BOX_CLASS_IDS and class_id != BOX_CLASS_IDS[name]:
            named = [n for n, i in BOX_CLASS_IDS.items() if i == class_id]
            hint = f" (class_id {class_id} is {named[0]!r})" if named else ""
            problems.append(
                DataFormatError(
                    path,
                    f"class_id {class_id} contradicts class name {name!r}, whose id is {BOX_CLASS_IDS[name]}{hint}",
                    line=no,
                )
            )
            continue
        try:
            box = check_box(coords, size, path, no)
        except DataFormatError as exc:
            problems.append(exc)
            continue
        target = det[name]
        if target is None:
            continue
        if target == IGNORE:
            ignore.append(box)
        else:
            boxes.append(box)
            labels.append(target)
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.asarray(ignore, np.float32).reshape(-1, 4),
        problems,
    )


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)


class WoodScapeDataset(DetSegDataset):
    """Detection + segmentation samples of a WoodScape-layout directory (see module docs)."""

    format_name = "woodscape"
    layout_name = "WoodScape"
    depth_source = f"{DEPTH_DIR}/NAME.png, KITTI uint16 format"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: tuple[int, int] | None = None,
        augment: bool = False,
        on_error: str = "raise",
        mapping: dict | str | Path | None = None,
        cache: bool = False,
        split_seed: int = DEFAULT_SPLIT_SEED,
        verify: str | None = None,
        depth: bool = False,
    ) -> None:
        super().__init__(
            root,
            split,
            image_size=image_size,
            augment=augment,
            on_error=on_error,
            cache=cache,
            verify=verify,
            depth=depth,
        )
        m = merged_mapping("woodscape", mapping)
        self.det_map = detection_targets(m.get("detection") or {})
        self.seg_lut, self.seg_known = segmentation_lut(m.get("segmentation") or {})
        self.split_seed = int(split_seed)
        self.image_dir = find_dir(self.root, IMAGE_DIR)
        self.box_dir = find_dir(self.root, BOX_DIR)
        self.sem_dir = find_dir(self.root, SEM_DIR, "gtLabels")
        self.depth_dir = find_dir(self.root, DEPTH_DIR)
        self._require_image_dir(self.image_dir)
        self._open()

    def _generate_split(self, split: str) -> list[str]:
        """A seeded cut of every image (and orphan label); ``"all"``: every one."""
        names = {p.stem for p in self.image_dir.glob("*.png")}
        names |= {p.stem for p in self.box_dir.glob("*.txt")} if self.box_dir.is_dir() else set()
        names |= {p.stem for p in self.sem_dir.glob("*.png")} if self.sem_dir.is_dir() else set()
        if not names:
            raise DataFormatError(self.image_dir, "no PNG images found")
        return seeded_split(names, split, self.split_seed)

    def _index(self, entry: SplitEntry) -> tuple[Sample | None, list[DataFormatError]]:
        name = entry.name
        image = self.image_dir / f"{name}.png"
        box = self.box_dir / f"{name}.txt"
        sem = self.sem_dir / f"{name}.png"
        if not image.is_file():
            return None, [self._missing_image(entry, image, [box, sem])]
        try:
            if name.rsplit("_", 1)[-1] not in CAMERAS:
                raise DataFormatError(image, f"image name {name!r} does not end with a camera {list(CAMERAS)}")
            size, _ = self._checked_png(image, "image")
            has_det, has_seg = box.is_file(), sem.is_file()
            if not has_det and not has_seg:
                raise DataFormatError(
                    image,
                    f"image without labels: neither {box.relative_to(self.root)} nor "
                    f"{sem.relative_to(self.root)} found",
                )
        except DataFormatError as exc:
            return None, [exc]
        info: dict[str, Any] = {}
        problems: list[DataFormatError] = []
        if has_seg:
            try:
                ssize, mode = self._checked_png(sem, "gtLabels PNG")
                if ssize != size:
                    raise size_mismatch(sem, "gtLabels PNG", ssize, image, size)
                if mode not in SINGLE_CHANNEL:
                    raise DataFormatError(sem, f"expected a single-channel PNG of class indices, got mode {mode}")
                info["semantic"] = sem
            except DataFormatError as exc:
                problems.append(exc)
        if has_det:
            boxes, labels, ignore, box_problems = parse_box_file(box, self.det_map, size)
            problems += box_problems
            info.update(boxes=boxes, labels=labels, ignore=ignore, box_file=box)
        if self.read_depth:
            info["depth"] = self._paired_depth(self.depth_dir / f"{name}.png", size, image, problems)
        if problems:
            return None, problems
        return Sample(name=name, image=image, size=size, has_det=has_det, has_seg=has_seg, info=info), []

    def _check_labels(self, s: Sample) -> None:
        if s.has_seg:
            self._seg_classes(s)

    def _seg_classes(self, s: Sample) -> np.ndarray:
        """H x W segmentation classes of a sample's gtLabels PNG (checked: indices and size)."""
        ids = self.load_indices(s.info["semantic"])
        if ids.shape != s.size:
            raise size_mismatch(s.info["semantic"], "gtLabels PNG", ids.shape, s.image, s.size)
        return self.seg_lut[ids]

    def load_indices(self, path: Path) -> np.ndarray:
        im = decode(path, "gtLabels PNG")
        if im.mode not in SINGLE_CHANNEL:
            raise DataFormatError(path, f"expected a single-channel PNG of class indices, got mode {im.mode}")
        ids = np.asarray(im).astype(np.int64)
        bad = (ids < 0) | (ids > 255)
        bad[~bad] = ~self.seg_known[ids[~bad]]
        if bad.any():
            y, x = (int(v) for v in np.argwhere(bad)[0])
            raise DataFormatError(
                path,
                f"{int(bad.sum())} pixel(s) hold an unknown class index (known: "
                f"{np.flatnonzero(self.seg_known).tolist()}), first at pixel (x={x}, y={y}) "
                f"= {int(ids[y, x])}",
            )
        return ids.astype(np.uint8)

    def _decode(self, s: Sample):
        rgb = read_rgb(s.image)
        seg = self._seg_classes(s) if s.has_seg else None
        if s.has_det:
            return rgb, seg, s.info["boxes"], s.info["labels"], s.info["ignore"]
        return (rgb, seg) + _empty()
