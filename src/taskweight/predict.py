"""Run a trained run's network on image files and draw what it predicts.

Preprocessing is exactly the training pipeline's (:mod:`taskweight.data.dataset`,
:func:`taskweight.data.transforms.resize`): the image is decoded as RGB and **stretched** (not
letterboxed) to the run's ``data.image_size`` with a bilinear resize (antialiased when
shrinking) of the uint8 pixels, then scaled to [0, 1]; the network normalises it itself.
Training never letterboxes, so neither does prediction: an image of any size or aspect
ratio is seen as the network saw its training images. The outputs are mapped back to the
original pixels by the inverse of that stretch: a box ``(x1, y1, x2, y2)`` in network pixels
becomes ``(x1·W/w, y1·H/h, x2·W/w, y2·H/h)`` for an original W×H image and a w×h network
input (continuous pixel coordinates, column j spans [j, j+1), as everywhere in the
package), and the segmentation logits are resized bilinearly to H×W before the arg-max. A run
with the depth head (``tasks: [det, seg, depth]``) has its log depth resized bilinearly to H×W
before the exponential: depth in metres at every original pixel.

Per image, :func:`predict_paths` writes ``NAME_overlay.png`` (boxes with class and score over
the image, the segmentation mask blended), ``NAME_mask.png`` (the class index per pixel as a
palette PNG: 0 void, 1 road, 2 sidewalk), and the detections as ``NAME.txt`` (KITTI label
lines with the score in the 16th column) and/or ``NAME.json``. With depth, the ``png`` format
also writes ``NAME_depth.png``, the depth in KITTI's format (uint16, metres × 256, see
:mod:`taskweight.data.depth`; 0 only where the depth is beyond the format's 256 m), and
``NAME_depth_color.png``, the depth colour-mapped (:func:`depth_colors`: matplotlib's
:data:`DEPTH_COLORMAP` on a log scale over :data:`DEPTH_RANGE_M`, near bright, far dark), and
the JSON gains the depth's range. :func:`log_predictions` draws the same overlays (and depth
pictures beside them) for a few validation images into TensorBoard during training.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from taskweight.build import resolve_device
from taskweight.classes import DET_CLASSES, IGNORE_INDEX, PAPER_TASKS, SEG_CLASSES
from taskweight.config import TrainConfig
from taskweight.data import transforms as T
from taskweight.data.collate import network_input
from taskweight.data.depth import write_kitti_depth
from taskweight.data.images import PIL_ERRORS
from taskweight.errors import ConfigError, DataFormatError
from taskweight.models import Detections, MultiTaskNet
from taskweight.precision import autocast, resolve_precision
from taskweight.scoring import load_model, open_run

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
"""Files a folder given to ``predict`` is searched for (case-insensitive, recursively)."""
FORMATS = ("png", "kitti", "json")
"""``png``: overlay + mask PNGs (and the depth PNGs of a run with depth); ``kitti``: KITTI label lines;
``json``: detections (and the depth range) as JSON."""
KITTI_TYPES = {"car": "Car", "pedestrian": "Pedestrian", "cyclist": "Cyclist"}
SEG_COLORS = {1: (128, 64, 128), 2: (244, 35, 232)}
"""Overlay colours of road and sidewalk (Cityscapes' palette); void is left undrawn."""
DET_COLORS = ((255, 200, 0), (0, 220, 255), (120, 255, 80))
"""Box colours of car, pedestrian, cyclist."""
MASK_ALPHA = 0.45
DEPTH_RANGE_M = (1.0, 80.0)
"""Depths (metres) the colour-mapped depth picture spans, on a log scale: nearer is drawn as the
first, farther as the last (80 m: the cap of KITTI's depth evaluation)."""
DEPTH_COLORMAP = "magma_r"
"""matplotlib colormap of the depth picture: near (≤ 1 m) light yellow, far (≥ 80 m) black."""
NO_DEPTH_COLOR = (128, 128, 128)
"""Colour of pixels without a depth (0: a ground-truth pixel without a measurement)."""


# --------------------------------------------------------------------------------- model
@dataclass
class LoadedRun:
    """A trained run ready to predict: its configuration, network (eval mode, fp32 weights) and device."""

    run_dir: Path
    checkpoint: Path
    config: TrainConfig
    model: MultiTaskNet
    device: torch.device
    precision: str

    @property
    def method(self) -> str:
        return self.config.method.name

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input (H, W)."""
        return (int(self.config.data.image_size[0]), int(self.config.data.image_size[1]))

    @property
    def has_depth(self) -> bool:
        """Whether the run has the depth head (its predictions then carry depth)."""
        return "depth" in self.model.tasks


def load_run(
    run_dir: str | Path, *, checkpoint: str = "best.pt", device: str | None = None, precision: str | None = None
) -> LoadedRun:
    """Load ``run_dir/checkpoint`` with the run's configuration (``device``/``precision``: the run's by default).

    Missing files raise :class:`~taskweight.errors.DataFormatError`, a broken checkpoint
    :class:`~taskweight.checkpoint.CheckpointError`; both name the file.
    """
    config, ckpt = open_run(run_dir, checkpoint)
    missing = [task for task in PAPER_TASKS if task not in config.tasks]
    if missing:
        raise ConfigError(
            f"{run_dir}: this run has no {' and no '.join(missing)} head (its tasks are {config.tasks}); "
            f"predict, compare and export need the tasks {list(PAPER_TASKS)} (depth is drawn when a run has it)"
        )
    model = load_model(config, ckpt).eval()
    dev = resolve_device(device or config.device)
    model.to(dev)
    return LoadedRun(Path(run_dir), ckpt, config, model, dev, resolve_precision(precision or config.precision, dev))


# --------------------------------------------------------------------------------- images
def read_image(path: str | Path) -> Tensor:
    """The image at ``path`` as uint8 3×H×W RGB (as the datasets decode it); an unreadable file
    raises :class:`~taskweight.errors.DataFormatError` naming it."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot read image: {exc}") from None
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def preprocess(image: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 3×H×W → float 1×3×h×w in [0, 1]: the training pipeline's stretch to ``size`` = (h, w)."""
    return T.resize_image(image, size).float().div_(255.0).unsqueeze(0)


def to_original(boxes: Tensor, input_size: tuple[int, int], original_size: tuple[int, int]) -> Tensor:
    """Boxes (N×4 xyxy) in network-input pixels → pixels of the original image (inverse stretch)."""
    (h, w), (height, width) = input_size, original_size
    return T.scale_boxes(boxes, width / w, height / h)


@dataclass
class Prediction:
    """What the network sees in one image, in that image's own pixels."""

    name: str
    size: tuple[int, int]
    """Original (H, W)."""
    boxes: Tensor
    """N×4 xyxy, original pixels."""
    scores: Tensor
    labels: Tensor
    mask: np.ndarray
    """H×W uint8 segmentation classes (``classes.SEG_CLASSES``)."""
    source: Path | None = None
    depth: np.ndarray | None = None
    """H×W float32 depth in metres (a run with the depth head), else None."""

    def detections(self) -> list[dict[str, Any]]:
        return [
            {"class": DET_CLASSES[int(c)], "label": int(c), "score": float(s), "box": [float(v) for v in b]}
            for b, s, c in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist(), strict=True)
        ]


@torch.no_grad()
def predict_image(
    run: LoadedRun, image: Tensor, *, name: str = "", score_threshold: float | None = None, source: Path | None = None
) -> Prediction:
    """Predict on a uint8 3×H×W image of any size; boxes, mask (and depth) come back in its pixels."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    x = preprocess(image, run.input_size).to(run.device)
    if run.config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(run.precision, run.device):
        outputs = run.model(x)
    raw, logits = outputs["det"].float(), outputs["seg"].float()
    threshold = run.config.eval.score_threshold if score_threshold is None else score_threshold
    det = run.model.det_head.decode(raw, run.input_size, score_threshold=threshold, nms_iou=run.config.eval.nms_iou)[0]
    full = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    mask = full.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
    boxes = to_original(det.boxes.cpu(), run.input_size, (height, width))
    depth = None
    if "depth" in outputs:  # log depth resized to the original pixels, then metres
        log_depth = F.interpolate(
            outputs["depth"].float()[:, None], size=(height, width), mode="bilinear", align_corners=False
        )
        depth = run.model.depth_head.to_depth(log_depth[0, 0]).cpu().numpy()
    return Prediction(name, (height, width), boxes, det.scores.cpu(), det.labels.cpu(), mask, source, depth)


# --------------------------------------------------------------------------------- drawing
def default_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def draw_overlay(
    image: Tensor | np.ndarray,
    boxes: Tensor,
    labels: Tensor,
    scores: Tensor | None = None,
    mask: np.ndarray | Tensor | None = None,
    *,
    alpha: float = MASK_ALPHA,
) -> Image.Image:
    """An RGB picture: ``image`` (uint8 3×H×W or H×W×3, or float in [0, 1]) with the segmentation
    ``mask`` blended (void and the ignore label left as they are) and the boxes drawn with
    their class (and score when ``scores`` is given)."""
    array = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    canvas = array.astype(np.float32)
    if mask is not None:
        classes = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
        for cls, color in SEG_COLORS.items():
            where = classes == cls
            canvas[where] = (1 - alpha) * canvas[where] + alpha * np.asarray(color, np.float32)
    picture = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    font = default_font()
    score_list = scores.tolist() if scores is not None else [None] * len(labels)
    for box, label, score in zip(boxes.tolist(), labels.tolist(), score_list, strict=True):
        color = DET_COLORS[int(label) % len(DET_COLORS)]
        x1, y1, x2, y2 = box
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=color, width=1)
        text = DET_CLASSES[int(label)] + (f" {score:.2f}" if score is not None else "")
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        ty = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1 + 1
        draw.rectangle((x1, ty, x1 + (right - left) + 2, ty + (bottom - top) + 2), fill=color)
        draw.text((x1 + 1, ty - top + 1), text, fill=(0, 0, 0), font=font)
    return picture


def mask_image(mask: np.ndarray) -> Image.Image:
    """The class map as a palette PNG: pixel values are class indices, the palette shows them."""
    picture = Image.fromarray(np.asarray(mask, np.uint8), "P")
    palette = [0, 0, 0] * 256
    for cls, color in SEG_COLORS.items():
        palette[3 * cls : 3 * cls + 3] = color
    palette[3 * IGNORE_INDEX : 3 * IGNORE_INDEX + 3] = (255, 255, 255)
    picture.putpalette(palette)
    return picture


def depth_colors(depth: np.ndarray | Tensor, depth_range: tuple[float, float] = DEPTH_RANGE_M) -> np.ndarray:
    """H×W×3 uint8 picture of a depth map in metres: :data:`DEPTH_COLORMAP` at
    t = log(d / near) / log(far / near) for ``depth_range`` = (near, far), d clipped to the range;
    pixels without a depth (0, negative or not finite) are :data:`NO_DEPTH_COLOR`."""
    import matplotlib

    near, far = depth_range
    if not 0 < near < far:
        raise ValueError(f"depth range must satisfy 0 < near < far, got {depth_range}")
    d = np.asarray(depth.detach().cpu().numpy() if isinstance(depth, Tensor) else depth, np.float64)
    valid = np.isfinite(d) & (d > 0)
    t = np.zeros(d.shape)
    t[valid] = np.log(np.clip(d[valid], near, far) / near) / math.log(far / near)
    rgb = (matplotlib.colormaps[DEPTH_COLORMAP](t)[..., :3] * 255.0).round().astype(np.uint8)
    rgb[~valid] = NO_DEPTH_COLOR
    return rgb


def depth_image(depth: np.ndarray | Tensor) -> Image.Image:
    """The colour-mapped depth picture (:func:`depth_colors`) as an RGB image."""
    return Image.fromarray(depth_colors(depth), "RGB")


def kitti_lines(prediction: Prediction) -> list[str]:
    """KITTI object label lines (type, -1 -1 -10, the 2D box, unknown 3D fields, score)."""
    lines = []
    for det in prediction.detections():
        x1, y1, x2, y2 = det["box"]
        lines.append(
            f"{KITTI_TYPES[det['class']]} -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
            f"-1 -1 -1 -1000 -1000 -1000 -10 {det['score']:.4f}"
        )
    return lines


def prediction_json(prediction: Prediction, run: LoadedRun) -> dict[str, Any]:
    height, width = prediction.size
    counts = np.bincount(prediction.mask.ravel(), minlength=len(SEG_CLASSES))
    record = {
        "image": str(prediction.source) if prediction.source is not None else prediction.name,
        "width": width,
        "height": height,
        "run": str(run.run_dir),
        "checkpoint": run.checkpoint.name,
        "method": run.method,
        "input_size": list(run.input_size),
        "resize": "stretch (as in training), outputs mapped back to the original pixels",
        "detections": prediction.detections(),
        "segmentation_pixels": {c: int(counts[i]) for i, c in enumerate(SEG_CLASSES)},
    }
    if prediction.depth is not None:
        d = prediction.depth
        record["depth_m"] = {"min": float(d.min()), "median": float(np.median(d)), "max": float(d.max())}
    return record


# --------------------------------------------------------------------------------- files
def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files of ``paths``: a file is taken as it is, a folder is searched recursively
    for :data:`IMAGE_SUFFIXES`; sorted per folder. A missing path or a folder without an
    image raises :class:`~taskweight.errors.DataFormatError` naming it."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataFormatError(path, f"no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataFormatError(path, "no such image file or folder")
    return files


@dataclass
class PredictSummary:
    """What :func:`predict_paths` did: files written per image, images it could not read."""

    written: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[DataFormatError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": len(self.written),
            "unreadable": [{"file": str(e.path), "problem": e.reason} for e in self.unreadable],
            "written": self.written,
        }


def _output_stems(files: Sequence[Path]) -> list[str]:
    """One output name per input: the file's stem, ``stem-2``, ``stem-3``… when stems repeat."""
    seen: dict[str, int] = {}
    stems = []
    for path in files:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        stems.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return stems


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"option '--format': expected some of {', '.join(FORMATS)}, got {', '.join(unknown) or '-'}")
    return chosen


def predict_paths(
    run: LoadedRun,
    paths: Iterable[str | Path],
    out: str | Path,
    *,
    formats: Iterable[str] = FORMATS,
    score_threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_unreadable: Callable[[DataFormatError], None] | None = None,
) -> PredictSummary:
    """Predict on every image of ``paths`` and write its files into ``out`` (see the module doc).

    An image that cannot be read is reported to ``on_unreadable``, listed in the summary, and
    the others go on; when *none* can be read a :class:`~taskweight.errors.DataFormatError`
    naming the first is raised.
    """
    chosen = check_formats(formats)
    files = collect_images(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary()
    for done, (path, stem) in enumerate(zip(files, _output_stems(files), strict=True), start=1):
        try:
            image = read_image(path)
        except DataFormatError as exc:
            summary.unreadable.append(exc)
            if on_unreadable is not None:
                on_unreadable(exc)
        else:
            prediction = predict_image(run, image, name=stem, score_threshold=score_threshold, source=path)
            summary.written[str(path)] = write_prediction(prediction, image, run, out, chosen)
        if progress is not None:
            progress(done, len(files))
    if files and not summary.written:
        first = summary.unreadable[0]
        raise DataFormatError(first.path, f"{first.reason} (none of the {len(files)} image(s) could be read)")
    return summary


def write_prediction(
    prediction: Prediction, image: Tensor, run: LoadedRun, out: Path, formats: Sequence[str]
) -> list[str]:
    """Write the files of ``formats`` for one prediction; return their names."""
    written = []
    if "png" in formats:
        overlay = draw_overlay(image, prediction.boxes, prediction.labels, prediction.scores, prediction.mask)
        overlay.save(out / f"{prediction.name}_overlay.png")
        mask_image(prediction.mask).save(out / f"{prediction.name}_mask.png")
        written += [f"{prediction.name}_overlay.png", f"{prediction.name}_mask.png"]
        if prediction.depth is not None:
            write_kitti_depth(out / f"{prediction.name}_depth.png", prediction.depth)
            depth_image(prediction.depth).save(out / f"{prediction.name}_depth_color.png")
            written += [f"{prediction.name}_depth.png", f"{prediction.name}_depth_color.png"]
    if "kitti" in formats:
        lines = kitti_lines(prediction)
        (out / f"{prediction.name}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written.append(f"{prediction.name}.txt")
    if "json" in formats:
        text = json.dumps(prediction_json(prediction, run), indent=2)
        (out / f"{prediction.name}.json").write_text(text + "\n", encoding="utf-8")
        written.append(f"{prediction.name}.json")
    return written


# --------------------------------------------------------------------------------- TensorBoard
@torch.no_grad()
def log_predictions(
    writer: Any,
    model: MultiTaskNet,
    dataset: Any,
    count: int,
    step: int,
    *,
    device: torch.device,
    precision: str = "fp32",
    score_threshold: float = 0.3,
    nms_iou: float = 0.5,
    channels_last: bool = False,
    tag: str = "val/predictions",
) -> None:
    """Draw the predictions on the first ``count`` items of ``dataset`` (network-size images)
    and add them to the TensorBoard ``writer`` at ``step`` as one picture, the images one below the other
    (with depth, each image's depth picture to the right of it).

    Boxes are drawn from ``score_threshold`` (0.3) up, not from ``eval.score_threshold`` (0.01): that low
    threshold keeps the candidates mAP ranks, which would bury a picture in boxes.

    Consumes no random numbers and leaves the model's mode as it was.
    """
    count = min(count, len(dataset))
    if count <= 0:
        return
    images = torch.stack([dataset[i]["image"] for i in range(count)])
    was_training = model.training
    model.eval()
    try:
        x = network_input(images.to(device), channels_last=channels_last)
        with autocast(precision, device):
            predictions = model.predict_tasks(x, score_threshold=score_threshold, nms_iou=nms_iou)
    finally:
        model.train(was_training)
    detections, seg = predictions.get("det"), predictions.get("seg")  # a run may train only some tasks
    depth = predictions.get("depth")
    pictures = [
        _drawn(
            images[i],
            detections[i] if detections is not None else None,
            seg[i] if seg is not None else None,
            depth[i] if depth is not None else None,
        )
        for i in range(count)
    ]
    writer.add_image(tag, np.concatenate(pictures, axis=0), step, dataformats="HWC")  # one column of images


def _drawn(image: Tensor, det: Detections | None, seg: Tensor | None, depth: Tensor | None = None) -> np.ndarray:
    if det is None:
        picture = draw_overlay(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), None, _cpu(seg))
    else:
        picture = draw_overlay(image, det.boxes.cpu(), det.labels.cpu(), det.scores.cpu(), _cpu(seg))
    if depth is None:
        return np.asarray(picture)
    return np.concatenate([np.asarray(picture), depth_colors(depth)], axis=1)


def _cpu(tensor: Tensor | None) -> Tensor | None:
    return tensor.cpu() if tensor is not None else None
