"""Export a trained run to ONNX, check it with onnxruntime, and optionally quantise it to INT8.

Exporter: ``torch.onnx.export(..., dynamo=True)`` — the ``torch.export``-based exporter, torch's
default since 2.9 (the TorchScript exporter is deprecated); it needs ``onnxscript``. The model
is written as one self-contained file (no external data). Install with
``pip install 'taskweight[export]'`` (onnx, onnxruntime; onnxscript comes with torch's
exporter requirements and is installed alongside).

Two graphs:

- raw heads (default): ``image`` (B×3×H×W float in [0, 1], the run's ``data.image_size``,
  preprocessed as :mod:`taskweight.predict` does) → ``det`` (B×A×H/8×W/8×(5+K) raw YOLO map)
  and ``seg`` (B×C×H×W logits), and for a run with the depth head ``depth`` (B×H×W, the head's
  raw output: the natural log of the depth in metres). ``dynamic_batch`` makes B symbolic.
- ``postprocess``: batch 1, the decode and class-wise NMS of
  :meth:`taskweight.models.detection.YoloDetectionHead.decode` inside the graph → ``boxes``
  (N×4 xyxy, network-input pixels), ``scores`` (N), ``labels`` (N) and ``seg`` (1×H×W
  classes), and with the depth head ``depth`` (1×H×W, metres). Box coordinates are those of
  the network input: scale them by (W/w, H/h) to the original image
  (:func:`taskweight.predict.to_original`).

Every output, depth included, is checked against PyTorch with the same tolerance; a run without
the depth head exports exactly the graph it always did.

:func:`check_onnx` runs the exported file with onnxruntime on real images and compares each
output with the PyTorch network's (fp32, eager): the largest absolute difference must stay
within ``tolerance`` or :class:`ExportError` is raised. :func:`export_run` writes
``MODEL.json`` beside ``MODEL.onnx`` with the versions of torch, the exporter, onnx and
onnxruntime, the opset, the inputs and outputs, the check and (optionally) the INT8 model and
the metrics of each variant.

INT8 (:func:`quantize_int8`): onnxruntime's post-training static quantisation (QDQ format,
per-channel int8 weights, uint8 activations, MinMax calibration) calibrated on training images.
"""

from __future__ import annotations

import contextlib
import io
import platform
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import nms

from taskweight.build import make_loader, open_split
from taskweight.classes import DEPTH_METRICS
from taskweight.data.collate import batch_to_device, network_input
from taskweight.errors import ConfigError, TaskweightError
from taskweight.jsonio import write_json
from taskweight.metrics import MultiTaskEvaluator
from taskweight.models import Detections, MultiTaskNet
from taskweight.predict import LoadedRun, load_run

DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-3
"""Largest absolute difference allowed between onnxruntime's and PyTorch's fp32 outputs."""
EXPORTER = "torch.onnx.export(dynamo=True)"
DEPTH_OUTPUTS = {
    "raw": "natural log of the depth in metres, B×H×W (exp gives metres)",
    "postprocess": "depth in metres, 1×H×W",
}
"""What the ``depth`` output of each graph holds (in the export's JSON when the run has depth)."""


class ExportError(TaskweightError):
    """The export failed or the exported model disagrees with PyTorch; the message names the file."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")


# --------------------------------------------------------------------------------- graphs
class RawHeads(nn.Module):
    """The network with tuple outputs, one per task in ``model.tasks``: ``image`` → (det raw map, seg logits
    [, log depth])."""

    def __init__(self, model: MultiTaskNet) -> None:
        super().__init__()
        self.model = model
        self.output_names = model.tasks

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        out = self.model(image)
        return tuple(out[task] for task in self.output_names)


class Postprocessed(nn.Module):
    """Batch-1 network with the detection decode and NMS: ``image`` → boxes, scores, labels, seg classes
    (and, with the depth head, the depth in metres).

    The same selection as ``YoloDetectionHead.decode`` (score = σ(obj)·σ(cls), the
    ``pre_nms_top_k`` best above ``score_threshold``, class-wise NMS, ``max_detections``),
    written without data-dependent Python branches so that it traces.
    """

    def __init__(
        self,
        model: MultiTaskNet,
        *,
        score_threshold: float,
        nms_iou: float,
        max_detections: int = 100,
        pre_nms_top_k: int = 1000,
    ) -> None:
        super().__init__()
        self.model = model
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.pre_nms_top_k = pre_nms_top_k
        self.output_names: tuple[str, ...] = ("boxes", "scores", "labels", "seg")
        if "depth" in model.tasks:
            self.output_names += ("depth",)

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        out = self.model(image)
        raw = out["det"]
        head = self.model.det_head
        height, width = image.shape[-2], image.shape[-1]
        x1, y1, x2, y2 = head.decode_boxes(raw).flatten(1, 3)[0].unbind(-1)
        boxes = torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), -1)
        scores = (torch.sigmoid(raw[..., 4:5]) * torch.sigmoid(raw[..., 5:])).flatten(1, 3)[0].flatten()
        top, idx = scores.topk(min(self.pre_nms_top_k, int(scores.shape[0])))
        keep = top > self.score_threshold
        top, idx = top[keep], idx[keep]
        labels = idx % head.num_classes
        cand = boxes[idx // head.num_classes]
        valid = (cand[:, 2] > cand[:, 0]) & (cand[:, 3] > cand[:, 1])
        cand, top, labels = cand[valid], top[valid], labels[valid]
        # class-wise NMS by torchvision's coordinate trick (batched_nms itself guards on the box count,
        # which does not trace): the boxes of each class are moved apart by more than the image size
        offsets = (labels * (max(int(height), int(width)) + 1)).to(cand.dtype)
        kept = nms(cand + offsets[:, None], top, self.nms_iou)[: self.max_detections]
        outputs: tuple[Tensor, ...] = (cand[kept], top[kept], labels[kept], out["seg"].argmax(dim=1))
        if "depth" in out:
            outputs += (self.model.depth_head.to_depth(out["depth"]),)
        return outputs


def export_graph(
    module: nn.Module, example: Tensor, out: str | Path, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = False
) -> Path:
    """Export ``module`` (called with one ``image`` tensor) to ``out`` with torch's ONNX exporter."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval().float()
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = {"image": {0: torch.export.Dim("batch", min=1, max=1024)}}
        if example.shape[0] < 2:  # torch.export specialises a size-1 dimension: trace with two images
            example = example.expand(2, *example.shape[1:]).contiguous()
    names = list(getattr(module, "output_names", ()))
    captured = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                str(out),
                dynamo=True,
                external_data=False,
                input_names=["image"],
                output_names=names or None,
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean the same to a user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(out, f"torch's ONNX exporter failed ({type(exc).__name__}: {first[:300]})") from exc
    finally:
        module.eval()  # the exporter restores the mode it found; keep the network in eval mode
    return out


# --------------------------------------------------------------------------------- runtime
def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "onnxruntime is not installed: pip install 'taskweight[export]' (onnx, onnxruntime)"
        ) from None
    return onnxruntime


def session(path: str | Path, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU inference session of ``path``."""
    ort = _ort()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(path, f"onnxruntime cannot load the model: {str(exc).strip()[:300]}") from None


def run_session(sess: Any, images: Tensor) -> list[np.ndarray]:
    """The outputs of ``sess`` for a batch (a batch-1 graph is run image by image, results stacked)."""
    fixed = sess.get_inputs()[0].shape[0]
    x = images.detach().float().contiguous().cpu().numpy()
    if fixed == 1 and x.shape[0] != 1:
        parts = [sess.run(None, {"image": x[i : i + 1]}) for i in range(x.shape[0])]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    return list(sess.run(None, {"image": x}))


@torch.no_grad()
def check_onnx(
    path: str | Path, module: nn.Module, images: Tensor, *, tolerance: float = DEFAULT_TOLERANCE
) -> dict[str, Any]:
    """Run ``path`` with onnxruntime and ``module`` with PyTorch (fp32) on ``images`` and compare.

    Batch-1 graphs see the images one at a time. Returns the largest absolute difference per
    output and overall; raises :class:`ExportError` when an output's shape differs or the
    difference exceeds ``tolerance``.
    """
    module = module.eval()
    sess = session(path)
    fixed = sess.get_inputs()[0].shape[0] == 1
    batches = [images[i : i + 1] for i in range(len(images))] if fixed else [images]
    names = [o.name for o in sess.get_outputs()]
    diffs = dict.fromkeys(names, 0.0)
    for batch in batches:
        reference = module(batch.float())
        reference = reference if isinstance(reference, tuple) else (reference,)
        outputs = run_session(sess, batch)
        wanted = [want.detach().cpu().numpy() for want in reference]
        if isinstance(module, Postprocessed):  # detections of (nearly) equal score may come in either order
            wanted = align_detections(outputs, wanted)
        for name, got, want_np in zip(names, outputs, wanted, strict=True):
            if got.shape != want_np.shape:
                raise ExportError(path, f"output {name!r} has shape {got.shape}, PyTorch gives {want_np.shape}")
            if got.size:
                diffs[name] = max(diffs[name], float(np.abs(got.astype(np.float64) - want_np).max()))
    worst = max(diffs.values(), default=0.0)
    result = {"images": len(images), "max_abs_diff": diffs, "max_abs_diff_overall": worst, "tolerance": tolerance}
    if worst > tolerance:
        raise ExportError(path, f"onnxruntime's outputs differ from PyTorch's by {worst:.3g} > {tolerance:g}: {diffs}")
    return result


def align_detections(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``want``'s post-processed outputs (boxes, scores, labels, seg[, depth]) with its detections reordered
    to pair each detection of ``got`` with the nearest one of the same label.

    Two runtimes may order detections whose scores tie, or differ in the last float bits,
    differently (a fixed sort key cannot help: rounding puts near-equal scores on either side
    of a boundary). Nearest = smallest largest-coordinate box difference plus score difference,
    chosen greedily in ``got``'s order. Outputs with different detection counts are returned
    unchanged (the caller reports the shape difference).
    """
    g_boxes, g_scores, g_labels, *_ = got
    w_boxes, w_scores, w_labels, *rest = want
    if len(g_scores) != len(w_scores) or len(g_scores) == 0:
        return list(want)
    remaining = list(range(len(w_scores)))
    order: list[int] = []
    for i in range(len(g_scores)):
        same = [j for j in remaining if w_labels[j] == g_labels[i]] or remaining
        j = min(
            same,
            key=lambda j: float(np.abs(w_boxes[j] - g_boxes[i]).max()) + abs(float(w_scores[j]) - float(g_scores[i])),
        )
        order.append(j)
        remaining.remove(j)
    return [w_boxes[order], w_scores[order], w_labels[order], *rest]


def versions() -> dict[str, str]:
    """Versions of everything that made and runs the ONNX model."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "taskweight": version("taskweight"),
        "torch": torch.__version__,
        "exporter": EXPORTER,
        "onnxscript": version("onnxscript"),
        "onnx": version("onnx"),
        "onnxruntime": version("onnxruntime"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------------- images
def split_images(run: LoadedRun, split: str, count: int) -> Tensor:
    """The first ``count`` images of ``split`` as the network sees them (N×3×H×W in [0, 1])."""
    dataset: Any = open_split(run.config, split, train=False)
    count = min(count, len(dataset))
    if count < 1:
        raise ExportError(run.config.data.root or run.run_dir, f"split {split!r} has no image to check with")
    return network_input(torch.stack([dataset[i]["image"] for i in range(count)]))


# --------------------------------------------------------------------------------- INT8
class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a tensor of images (one per call)."""

    def __init__(self, images: Tensor) -> None:
        self.images = images.float().cpu().numpy()
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.images):
            return None
        self.index += 1
        return {"image": self.images[self.index - 1 : self.index]}

    def rewind(self) -> None:
        self.index = 0


def quantize_int8(fp32: str | Path, out: str | Path, calibration: Tensor) -> Path:
    """Post-training static INT8 quantisation of a raw-heads model, calibrated on ``calibration`` images."""
    _ort()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, out = Path(fp32), Path(out)
    prepared = out.with_name(out.stem + ".prep.onnx")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(out),
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    except Exception as exc:
        raise ExportError(out, f"INT8 quantisation failed ({type(exc).__name__}: {str(exc)[:300]})") from exc
    finally:
        prepared.unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------------- metrics
RawForward = Callable[[Tensor], Sequence[Tensor | np.ndarray]]
"""Images → the raw-heads outputs, one per task of the run in ``model.tasks`` order (:class:`RawHeads`)."""


@torch.no_grad()
def score_forward(run: LoadedRun, forward: RawForward, split: str) -> dict[str, float]:
    """The run's metrics on ``split`` with the network replaced by ``forward`` (images → det raw, seg
    logits[, log depth]); decoding, NMS and the metrics are the package's own, in fp32 on the CPU."""
    loader = make_loader(open_split(run.config, split, train=False), run.config, shuffle=False)
    size = run.input_size
    tasks = run.model.tasks
    evaluator = MultiTaskEvaluator(tasks=tasks)
    head = run.model.det_head.cpu()
    for batch in loader:
        batch = batch_to_device(batch, torch.device("cpu"))  # uint8 images → the network's float input
        outputs = dict(
            zip(tasks, (torch.as_tensor(np.asarray(v)).float() for v in forward(batch["image"])), strict=True)
        )
        detections: list[Detections] = head.decode(
            outputs["det"], size, score_threshold=run.config.eval.score_threshold, nms_iou=run.config.eval.nms_iou
        )
        depth = run.model.depth_head.to_depth(outputs["depth"]) if "depth" in outputs else None
        evaluator.update(detections, outputs["seg"].argmax(dim=1), batch, depth)
    return evaluator.compute()


def torch_forward(model: MultiTaskNet) -> RawForward:
    """fp32 eager PyTorch on the CPU, in the :data:`RawForward` shape."""
    heads = RawHeads(model).eval().float().cpu()
    return lambda images: heads(images.float())


def onnx_forward(path: str | Path, *, threads: int | None = None) -> RawForward:
    sess = session(path, threads=threads)
    return lambda images: run_session(sess, images)


# --------------------------------------------------------------------------------- the command
@contextlib.contextmanager
def _cpu_fp32(run: LoadedRun) -> Iterator[MultiTaskNet]:
    """The run's network on the CPU in fp32, contiguous (the exporter's input), for the block."""
    model = run.model.float().cpu().to(memory_format=torch.contiguous_format).eval()
    try:
        yield model
    finally:
        run.model.to(run.device)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    checkpoint: str = "best.pt",
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    postprocess: bool = False,
    score_threshold: float | None = None,
    check_split: str = "val",
    check_images: int = 8,
    tolerance: float = DEFAULT_TOLERANCE,
    int8: bool = False,
    calibration_images: int = 64,
    evaluate_split: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Export ``run_dir``'s ``checkpoint`` to ``out``, check it, and write ``out`` with suffix ``.json``.

    ``score_threshold`` (default: the run's ``eval.score_threshold``) is built into the
    ``postprocess`` graph. ``int8`` also writes ``OUT.int8.onnx`` (quantised on ``calibration_images`` training
    images); ``evaluate_split`` scores PyTorch fp32, ONNX fp32 (and INT8) on that split and
    records each variant's metrics and its drop against PyTorch.
    """
    say = log or (lambda _message: None)
    if postprocess and dynamic_batch:
        raise ConfigError("options '--postprocess' and '--dynamic-batch': the post-processed graph takes one image")
    if postprocess and (int8 or evaluate_split):
        raise ConfigError("options '--int8'/'--evaluate' quantise and score the raw-heads graph: drop '--postprocess'")
    out = Path(out)
    run = load_run(run_dir, checkpoint=checkpoint, device="cpu", precision="fp32")
    images = split_images(run, check_split, check_images)
    report: dict[str, Any] = {
        "model": out.name,
        "run": str(run.run_dir),
        "checkpoint": checkpoint,
        "method": run.method,
        "versions": versions(),
        "opset": opset,
        "graph": "postprocess" if postprocess else "raw",
        "dynamic_batch": dynamic_batch,
        "input": {
            "name": "image",
            "shape": ["batch" if dynamic_batch else 1, 3, *run.input_size],
            "dtype": "float32",
            "preprocessing": "RGB, stretched to the input size (bilinear, antialiased when shrinking, on uint8), "
            "divided by 255; ImageNet normalisation is inside the graph",
        },
    }
    with _cpu_fp32(run) as model:
        module: nn.Module
        if postprocess:
            threshold = run.config.eval.score_threshold if score_threshold is None else score_threshold
            module = Postprocessed(model, score_threshold=threshold, nms_iou=run.config.eval.nms_iou)
            report["postprocess"] = {"score_threshold": threshold, "nms_iou": run.config.eval.nms_iou}
        else:
            module = RawHeads(model)
        say(f"exporting {run.checkpoint} with {EXPORTER}, opset {opset}")
        export_graph(module, images[:1], out, opset=opset, dynamic_batch=dynamic_batch)
        report["outputs"] = list(getattr(module, "output_names", ()))
        if "depth" in report["outputs"]:
            report["depth_output"] = DEPTH_OUTPUTS[report["graph"]]
        say(f"checking {out} with onnxruntime on {len(images)} {check_split} image(s)")
        report["check"] = {"split": check_split, **check_onnx(out, module, images, tolerance=tolerance)}
        report["size_mb"] = {"fp32": out.stat().st_size / 2**20}
        if int8:
            int8_path = out.with_name(out.stem + ".int8.onnx")
            calibration = split_images(run, run.config.data.train_split, calibration_images)
            say(f"quantising to INT8 on {len(calibration)} training image(s) → {int8_path}")
            quantize_int8(out, int8_path, calibration)
            report["int8"] = {
                "model": int8_path.name,
                "method": "onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax",
                "calibration_images": len(calibration),
            }
            report["size_mb"]["int8"] = int8_path.stat().st_size / 2**20
        if evaluate_split:
            say(f"scoring PyTorch fp32, ONNX fp32{' and INT8' if int8 else ''} on the {evaluate_split} split")
            variants: dict[str, RawForward] = {"pytorch_fp32": torch_forward(model), "onnx_fp32": onnx_forward(out)}
            if int8:
                variants["onnx_int8"] = onnx_forward(out.with_name(out.stem + ".int8.onnx"))
            metrics = {name: score_forward(run, fwd, evaluate_split) for name, fwd in variants.items()}
            base = metrics["pytorch_fp32"]
            report["metrics"] = {
                "split": evaluate_split,
                "variants": metrics,
                "drop_vs_pytorch_fp32": {
                    name: {
                        k: base[k] - v[k]
                        for k in ("mAP", "mAP_coco", "mIoU", *DEPTH_METRICS, "geometric_mean")
                        if k in v
                    }
                    for name, v in metrics.items()
                    if name != "pytorch_fp32"
                },
            }
    write_json(out.with_suffix(".json"), report)
    return report
