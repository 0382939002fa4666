"""Cityscapes-layout dataset (format ``cityscapes``): fine polygons and/or label PNGs.

Layout under ``root``::

    leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png        RGB image
    gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_polygons.json        polygons
    gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png         8-bit labelIds
    gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_instanceIds.png      instance ids

Sample names are ``{split}/{city}/{city}_{seq}_{frame}``.  ``labels="auto"`` (default) reads
the PNGs when a labelIds or instanceIds PNG exists and the polygons otherwise; ``"png"`` /
``"json"`` force one source.  Polygons are rasterised as cityscapesscripts does (PIL
``ImageDraw.polygon``, in file order, later over earlier, ``deleted`` objects skipped, a
``...group`` label is a crowd region of its class); instance pixels are ``labelId * 1000 + k``
and values below 1000 are label ids of crowd or stuff.  A labelIds PNG alone gives
segmentation only; an instanceIds PNG alone gives both (its label ids are ``v // 1000`` for
``v >= 1000``).

Classes (:file:`mappings/cityscapes.yaml`, overridable with ``mapping=``):

- segmentation: road (7) -> road, sidewalk (8) -> sidewalk, every other id -> void;
- detection: car, truck, bus -> car; person -> pedestrian; rider -> cyclist.  Boxes are the
  visible extent of each instance (its pixels after drawing), so they agree between the
  polygon and the PNG sources;
- **rider and bicycle**: a bicycle instance is not a target of its own.  Each rider (any
  instance mapped to cyclist) is unioned with the bicycle whose box overlaps it most: with
  both boxes grown by 1 pixel (so a bicycle just below the rider's visible pixels counts),
  the intersection must cover at least ``cyclist_min_overlap`` (0.1) of the smaller box;
  pairs are taken greedily by overlap, a bicycle joins one rider at most, and a bicycle left
  without a rider is dropped (``cyclist_vehicles`` lists the vehicle labels, default
  ``[bicycle]``);
- crowd regions of a mapped class (``cargroup``, ``persongroup`` ... polygons, or instanceIds
  values < 1000 of such a class) become ``ignore_boxes``: one per group polygon, or, from the
  PNGs (which cannot tell groups apart), one per 8-connected region of a class's crowd pixels
  (two groups that touch give one box, one group seen in pieces gives one per piece).

Splits: ``split_mode="paper"`` (default) pools every image of the folders in
``paper_folders`` (default ``train`` and ``val``: the 3475 images with public fine labels;
the public ``gtFine/test`` files are placeholders without classes, so they join the pool
only when named) and cuts the pool 60/20/20 with
:func:`~taskweight.data.splits.seeded_split` (``split_seed``, default 0), as the paper did
(the official test labels are not public).  ``split_mode="official"`` uses the folders.
``root/splits/{split}.txt`` (sample names), when present, wins; ``"all"`` is every image.

With ``verify="crc"`` (the default with ``on_error="skip"``) the labelIds / instanceIds PNGs
are decoded when the dataset is opened, so a malformed one (pixels that hold no Cityscapes
label id, e.g. a 16-bit mask of other values) is skipped or raised then, not when its
sample is loaded.

Depth (``depth=True``, a run whose tasks include depth) comes from the dataset's own stereo
disparity and calibration::

    disparity/{split}/{city}/{city}_{seq}_{frame}_disparity.png   uint16: p = 0 invalid, else d = (p - 1) / 256 px
    camera/{split}/{city}/{city}_{seq}_{frame}_camera.json        extrinsic.baseline (m), intrinsic.fx (px), ...

Depth Z = baseline * fx / d metres (along the optical axis) where d > 0; p = 0 and p = 1 (d = 0,
infinitely far) are no measurement (:mod:`taskweight.data.depth`).  The disparity is turned into
metres at its own resolution, then resized with the labels (nearest), so depth values do not
change with ``image_size``.  An image without a disparity PNG is not labelled for depth
(``has_depth`` False, counted by ``repr``'s ``with_depth``); a disparity PNG that is not 16-bit
single-channel or not the image's size, a missing camera file, malformed JSON (with its line)
or a missing / non-positive baseline or fx is a problem of the sample, naming the file (raised,
or skipped with ``on_error="skip"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from taskweight.classes import DET_CLASSES
from taskweight.data.boxes import bbox_of_values, component_boxes
from taskweight.data.cityscapes_labels import (
    HAS_INSTANCES,
    ID2NAME,
    INSTANCE_OFFSET,
    MAX_ID,
    NAME2ID,
    resolve_label,
)
from taskweight.data.class_mapping import IGNORE, detection_targets, merged_mapping, segmentation_lut
from taskweight.data.dataset import DetSegDataset, Sample
from taskweight.data.depth import StereoCalibration, read_cityscapes_camera, read_cityscapes_depth
from taskweight.data.images import SINGLE_CHANNEL, decode, read_rgb, size_mismatch
from taskweight.data.splits import DEFAULT_SPLIT_SEED, SplitEntry, seeded_split
from taskweight.errors import DataFormatError
from taskweight.jsonio import read_json_file

IMAGE_DIR, LABEL_DIR = "leftImg8bit", "gtFine"
DISPARITY_DIR, CAMERA_DIR = "disparity", "camera"
IMAGE_SUFFIX = "_leftImg8bit.png"
DISPARITY_SUFFIX, CAMERA_SUFFIX = "_disparity.png", "_camera.json"
SUFFIXES = {
    "json": "_gtFine_polygons.json",
    "label_ids": "_gtFine_labelIds.png",
    "instance_ids": "_gtFine_instanceIds.png",
}
FOLDERS = ("train", "val", "test")
LABEL_SOURCES = ("auto", "png", "json")
SPLIT_MODES = ("paper", "official")


def _stem(path: Path, suffix: str) -> str | None:
    return path.name[: -len(suffix)] if path.name.endswith(suffix) else None


def resolve_cityscapes_mapping(mapping: dict | str | Path | None) -> dict[str, Any]:
    m = merged_mapping("cityscapes", mapping)
    det = detection_targets(m.get("detection") or {})
    for name in det:
        if name not in NAME2ID:
            raise ValueError(f"mapping['detection']: {name!r} is not a Cityscapes label")
    lut, _ = segmentation_lut(m.get("segmentation") or {})
    vehicles = list(m.get("cyclist_vehicles") or [])
    for name in vehicles:
        if name not in NAME2ID:
            raise ValueError(f"mapping['cyclist_vehicles']: {name!r} is not a Cityscapes label")
    overlap = float(m.get("cyclist_min_overlap", 0.1))
    return {"det": det, "lut": lut, "vehicles": vehicles, "min_overlap": overlap}


# --------------------------------------------------------------------------------- polygons
def parse_polygons(
    path: Path, problems: list[DataFormatError] | None = None
) -> tuple[tuple[int, int], list[dict[str, Any]]]:
    """((imgHeight, imgWidth), objects) of a ``gtFine_polygons.json``; every object is checked
    (label known, polygon of >= 3 finite [x, y] points); errors name the object's line.

    With a ``problems`` list, bad objects are appended to it (and left out) instead of
    raising on the first one."""
    data, text = read_json_file(path, "polygon")
    if not isinstance(data, dict):
        raise DataFormatError(path, "expected a JSON object with imgHeight, imgWidth and objects")
    for key in ("imgHeight", "imgWidth"):
        if not isinstance(data.get(key), int) or isinstance(data.get(key), bool) or data[key] <= 0:
            raise DataFormatError(path, f"'{key}' must be a positive integer, got {data.get(key)!r}")
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise DataFormatError(path, f"'objects' must be a list, got {type(objects).__name__}")
    label_lines, pos = [], text.find('"label"')
    while pos >= 0:
        label_lines.append(text.count("\n", 0, pos) + 1)
        pos = text.find('"label"', pos + 1)
    out = []
    for i, obj in enumerate(objects):
        line = label_lines[i] if i < len(label_lines) else None
        try:
            if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
                raise DataFormatError(path, f"objects[{i}] needs a string 'label'", line=line)
            resolved = resolve_label(obj["label"])
            if resolved is None:
                raise DataFormatError(
                    path,
                    f"objects[{i}]: unknown label {obj['label']!r} (not a Cityscapes label or a '...group' of one)",
                    line=line,
                )
            try:
                pts = np.asarray(obj.get("polygon"), dtype=np.float64)
            except (TypeError, ValueError):
                pts = np.zeros((0,))
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
                raise DataFormatError(
                    path,
                    f"objects[{i}] ({obj['label']}): 'polygon' must be a list of >= 3 [x, y] number pairs",
                    line=line,
                )
        except DataFormatError as exc:
            if problems is None:
                raise
            problems.append(exc)
            continue
        out.append(
            {
                "label": obj["label"],
                "class": resolved[0],
                "group": resolved[1],
                "deleted": bool(obj.get("deleted", False)),
                "polygon": [tuple(p) for p in pts.tolist()],
            }
        )
    return (data["imgHeight"], data["imgWidth"]), out


def rasterise_polygons(objects: list[dict[str, Any]], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labelIds uint8, instanceIds int32, {object index: crowd box}) of parsed polygons.

    Same rules as cityscapesscripts' json2labelImg / json2instanceImg; crowd boxes are the
    visible extent of each ``...group`` polygon.
    """
    h, w = size
    owner = Image.new("I", (w, h), 0)
    draw = ImageDraw.Draw(owner)
    values = [0]
    crowd = [False]
    counts: dict[str, int] = {}
    for obj in objects:
        if obj["deleted"]:
            continue
        cls = obj["class"]
        label_id = NAME2ID[cls]
        if label_id < 0:  # license plate: not drawn
            continue
        if obj["group"] or cls not in HAS_INSTANCES:
            value = label_id
        else:
            value = label_id * INSTANCE_OFFSET + counts.get(cls, 0)
            counts[cls] = counts.get(cls, 0) + 1
        values.append(value)
        crowd.append(obj["group"] and cls in HAS_INSTANCES)
        draw.polygon(obj["polygon"], fill=len(values) - 1)
    index = np.asarray(owner, dtype=np.int32)
    inst = np.asarray(values, np.int32)[index]
    ids = np.where(inst >= INSTANCE_OFFSET, inst // INSTANCE_OFFSET, inst).astype(np.uint8)
    crowd_arr = np.asarray(crowd, bool)
    crowd_boxes = bbox_of_values(index, keep=crowd_arr[index]) if crowd_arr.any() else {}
    return ids, inst, {k: (int(values[k]), box) for k, box in crowd_boxes.items()}


# --------------------------------------------------------------------------------- boxes
def _area(b) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _grow(b, margin: float = 1.0) -> tuple[float, float, float, float]:
    return b[0] - margin, b[1] - margin, b[2] + margin, b[3] + margin


def _inter(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def instance_targets(
    inst: np.ndarray, maps: dict[str, Any], crowd: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes, labels, ignore boxes) from an instanceIds map (see the module docstring)."""
    det, vehicles = maps["det"], set(maps["vehicles"])
    boxes: list[Any] = []
    labels, ignore, bikes, riders = [], [], [], []
    for value, box in sorted(bbox_of_values(inst, keep=inst >= INSTANCE_OFFSET).items()):
        name = ID2NAME.get(value // INSTANCE_OFFSET)
        target = det.get(name)
        if target is None:
            if name in vehicles:
                bikes.append(box)
            continue
        if target == IGNORE:
            ignore.append(box)
            continue
        if target == DET_CLASSES.index("cyclist"):
            riders.append(len(boxes))
        boxes.append(box)
        labels.append(target)
    if riders and bikes:
        pairs = []
        for r in riders:
            for b, bike in enumerate(bikes):
                rg, bg = _grow(boxes[r]), _grow(bike)
                denom = min(_area(rg), _area(bg))
                frac = _inter(rg, bg) / denom if denom > 0 else 0.0
                if frac >= maps["min_overlap"] and frac > 0:
                    pairs.append((-frac, r, b))
        used_r, used_b = set(), set()
        for _neg, r, b in sorted(pairs):
            if r in used_r or b in used_b:
                continue
            used_r.add(r)
            used_b.add(b)
            rb, bb = boxes[r], bikes[b]
            boxes[r] = (min(rb[0], bb[0]), min(rb[1], bb[1]), max(rb[2], bb[2]), max(rb[3], bb[3]))
    if crowd is not None:
        regions = [(v, box) for v, box in crowd.values()]
    else:
        regions = [
            (value, box)
            for value in np.unique(inst[inst < INSTANCE_OFFSET]).tolist()
            if ID2NAME.get(value) in HAS_INSTANCES
            for box in component_boxes(inst == value)
        ]
    for value, box in regions:
        name = ID2NAME.get(value)
        if name in HAS_INSTANCES and det.get(name) is not None:
            ignore.append(box)
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.asarray(ignore, np.float32).reshape(-1, 4),
    )


def _check_ids(values: np.ndarray, path: Path, what: str) -> None:
    bad = values > MAX_ID
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0])
        raise DataFormatError(
            path,
            f"{what}: {int(bad.sum())} pixel(s) hold no Cityscapes label id "
            f"(0..{MAX_ID}), first at pixel (x={x}, y={y}) = {int(values[y, x])}",
        )


def load_instance_ids(path: Path) -> np.ndarray:
    im = decode(path, "instanceIds PNG")
    if im.mode not in SINGLE_CHANNEL:
        raise DataFormatError(path, f"expected a single-channel instanceIds PNG, got mode {im.mode}")
    inst = np.asarray(im).astype(np.int32)
    ids = np.where(inst >= INSTANCE_OFFSET, inst // INSTANCE_OFFSET, inst)
    if (inst < 0).any():
        raise DataFormatError(path, "instanceIds: negative pixel values")
    _check_ids(ids, path, "instanceIds")
    return inst


def load_cs_label_ids(path: Path) -> np.ndarray:
    im = decode(path, "labelIds PNG")
    if im.mode not in SINGLE_CHANNEL:
        raise DataFormatError(path, f"expected a single-channel labelIds PNG, got mode {im.mode}")
    ids = np.asarray(im).astype(np.int64)
    if (ids < 0).any():
        raise DataFormatError(path, "labelIds: negative pixel values")
    _check_ids(ids, path, "labelIds")
    return ids.astype(np.uint8)


# --------------------------------------------------------------------------------- dataset
class CityscapesDataset(DetSegDataset):
    """Detection + segmentation samples of a Cityscapes-layout directory (see module docs)."""

    format_name = "cityscapes"
    layout_name = "Cityscapes"
    depth_source = f"{DISPARITY_DIR}/SPLIT/CITY/STEM{DISPARITY_SUFFIX} with {CAMERA_DIR}/SPLIT/CITY/STEM{CAMERA_SUFFIX}"
    generated_splits = (*FOLDERS, "all")
    split_files_replace_generated = False

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
        split_mode: str = "paper",
        split_seed: int = DEFAULT_SPLIT_SEED,
        paper_folders: tuple[str, ...] | list[str] = ("train", "val"),
        labels: str = "auto",
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
        if split_mode not in SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {SPLIT_MODES}, got {split_mode!r}")
        if labels not in LABEL_SOURCES:
            raise ValueError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
        self.split_mode, self.split_seed, self.label_source = split_mode, int(split_seed), labels
        unknown = [f for f in paper_folders if f not in FOLDERS]
        if unknown:
            raise ValueError(f"paper_folders must be among {FOLDERS}, got {list(paper_folders)}")
        self.paper_folders = tuple(paper_folders)
        self.maps = resolve_cityscapes_mapping(mapping)
        self._require_image_dir(self.root / IMAGE_DIR)
        self._open()

    # ----------------------------------------------------------------- split
    def _names_in(self, folder: str) -> set[str]:
        names = set()
        for p in (self.root / IMAGE_DIR / folder).glob(f"*/*{IMAGE_SUFFIX}"):
            names.add(f"{folder}/{p.parent.name}/{_stem(p, IMAGE_SUFFIX)}")
        for p in (self.root / LABEL_DIR / folder).glob("*/*_gtFine_*"):
            for suffix in SUFFIXES.values():
                stem = _stem(p, suffix)
                if stem is not None:
                    names.add(f"{folder}/{p.parent.name}/{stem}")
        return names

    def _generate_split(self, split: str) -> list[str]:
        """The official folder(s) of ``split``, or the paper's seeded cut of the pooled folders."""
        if self.split_mode == "official":
            folders = list(FOLDERS) if split == "all" else [split]
            names = set().union(*(self._names_in(f) for f in folders))
        else:
            pooled = FOLDERS if split == "all" else self.paper_folders
            folders = [f for f in pooled if (self.root / LABEL_DIR / f).is_dir()]
            if not folders:
                raise DataFormatError(
                    self.root / LABEL_DIR,
                    f"no gtFine/{{{','.join(self.paper_folders)}}} folder: the paper split pools the labelled images",
                )
            names = set(seeded_split(set().union(*(self._names_in(f) for f in folders)), split, self.split_seed))
        if not names:
            raise DataFormatError(self.root / IMAGE_DIR, f"no images for split {split!r}")
        return sorted(names)

    # ----------------------------------------------------------------- indexing
    def _paths(self, name: str) -> tuple[Path, dict[str, Path]]:
        parts = name.split("/")
        if len(parts) != 3:
            raise ValueError(name)
        folder, city, stem = parts
        image = self.root / IMAGE_DIR / folder / city / f"{stem}{IMAGE_SUFFIX}"
        labels = {k: self.root / LABEL_DIR / folder / city / f"{stem}{s}" for k, s in SUFFIXES.items()}
        return image, labels

    def _index(self, entry: SplitEntry) -> tuple[Sample | None, list[DataFormatError]]:
        try:
            image, paths = self._paths(entry.name)
        except ValueError:
            where = entry.source or self.root
            return None, [DataFormatError(where, f"sample name {entry.name!r} is not split/city/stem", line=entry.line)]
        if not image.is_file():
            return None, [self._missing_image(entry, image, list(paths.values()))]
        problems: list[DataFormatError] = []
        try:
            size, _mode = self._checked_png(image, "image")
            info, has_det = self._index_labels(image, size, paths, problems)
        except DataFormatError as exc:
            return None, [exc, *problems]
        if self.read_depth:
            self._index_depth(entry.name, image, size, info, problems)
        if problems:
            return None, problems
        return Sample(name=entry.name, image=image, size=size, has_det=has_det, has_seg=True, info=info), []

    def _index_labels(
        self, image: Path, size: tuple[int, int], paths: dict[str, Path], problems: list[DataFormatError]
    ) -> tuple[dict[str, Any], bool]:
        """(info, has_det) of the label files of an image: its PNGs, or its parsed polygons whose bad
        objects go to ``problems``; a problem that leaves no labels to read raises."""
        present = {k: p for k, p in paths.items() if p.is_file()}
        use_png = self.label_source == "png" or (
            self.label_source == "auto" and ("label_ids" in present or "instance_ids" in present)
        )
        info: dict[str, Any] = {}
        if use_png:
            if "label_ids" not in present and "instance_ids" not in present:
                raise DataFormatError(
                    image,
                    f"image without labels: neither {paths['label_ids'].name} nor "
                    f"{paths['instance_ids'].name} found in {paths['label_ids'].parent}",
                )
            for key in ("label_ids", "instance_ids"):
                if key in present:
                    p = present[key]
                    psize, mode = self._checked_png(p, p.name)
                    if psize != size:
                        raise size_mismatch(p, "label PNG", psize, image, size)
                    if mode not in SINGLE_CHANNEL:
                        raise DataFormatError(p, f"expected a single-channel PNG, got mode {mode}")
                    info[key] = p
            return info, "instance_ids" in info
        if "json" not in present:
            raise DataFormatError(
                image, f"image without labels: {paths['json'].name} not found in {paths['json'].parent}"
            )
        jsize, objects = parse_polygons(present["json"], problems)
        if jsize != size:
            problems.insert(
                0,
                DataFormatError(
                    present["json"],
                    f"imgWidth x imgHeight is {jsize[1]}x{jsize[0]} but image {image.name} is {size[1]}x{size[0]}",
                ),
            )
        info["json"], info["objects"] = present["json"], objects
        return info, True

    def depth_paths(self, name: str) -> tuple[Path, Path]:
        """(disparity PNG, camera JSON) of the sample ``split/city/stem``."""
        folder, city, stem = name.split("/")
        return (
            self.root / DISPARITY_DIR / folder / city / f"{stem}{DISPARITY_SUFFIX}",
            self.root / CAMERA_DIR / folder / city / f"{stem}{CAMERA_SUFFIX}",
        )

    def _index_depth(
        self, name: str, image: Path, size: tuple[int, int], info: dict[str, Any], problems: list[DataFormatError]
    ) -> None:
        """Pair the sample with its disparity PNG (``info["depth"]``) and calibration (``info["stereo"]``)
        when it has a disparity file; its problems (naming the file) go to ``problems``."""
        disparity, camera = self.depth_paths(name)
        found = self._paired_depth(disparity, size, image, problems, what="disparity map")
        if found is None:
            return
        if not camera.is_file():
            problems.append(
                DataFormatError(camera, f"camera calibration not found: needed to turn {found.name} into depth")
            )
            return
        try:
            info["stereo"] = read_cityscapes_camera(camera)
        except DataFormatError as exc:
            problems.append(exc)
            return
        info["depth"] = found

    def _check_labels(self, s: Sample) -> None:
        if "objects" not in s.info:  # polygons were checked when parsed
            self.label_maps(s)

    # ----------------------------------------------------------------- decoding
    def label_maps(self, s: Sample) -> tuple[np.ndarray, np.ndarray | None, dict | None]:
        """(labelIds, instanceIds or None, crowd regions of the polygons or None) of a sample."""
        if "objects" in s.info:
            return rasterise_polygons(s.info["objects"], s.size)
        inst = load_instance_ids(s.info["instance_ids"]) if "instance_ids" in s.info else None
        if "label_ids" in s.info:
            ids = load_cs_label_ids(s.info["label_ids"])
        else:
            assert inst is not None  # a sample is indexed with labelIds or instanceIds
            ids = np.where(inst >= INSTANCE_OFFSET, inst // INSTANCE_OFFSET, inst).astype(np.uint8)
        for key, arr in (("label_ids", ids), ("instance_ids", inst)):
            if arr is not None and arr.shape != s.size:
                raise size_mismatch(s.info[key], "label PNG", arr.shape, s.image, s.size)
        return ids, inst, None

    def _depth(self, s: Sample) -> np.ndarray | None:
        """Depth (float32 metres, 0 = none) of the sample's disparity PNG: baseline * fx / d."""
        path = s.info.get("depth")
        if path is None:
            return None
        stereo: StereoCalibration = s.info["stereo"]
        return read_cityscapes_depth(path, stereo, s.size)

    def _decode(self, s: Sample):
        rgb = read_rgb(s.image)
        ids, inst, crowd = self.label_maps(s)
        seg = self.maps["lut"][ids]
        if inst is not None:
            boxes, labels, ignore = instance_targets(inst, self.maps, crowd)
        else:
            boxes, labels, ignore = np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
        return rgb, seg, boxes, labels, ignore
