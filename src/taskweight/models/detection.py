"""YOLO-style anchor-based 2D detection decoder (paper §V-A, Fig. 2).

The head fuses the encoder's stride-8, -16 and -32 maps top-down (FCN/FPN-like lateral
1×1 convolutions, upsample and add) and predicts, for each of A anchors at each cell of the
stride-8 grid, an objectness logit, K class logits and a box. The target assignment
(``assignment``) sets the cells a ground truth claims and the centre parameterisation
(s = 8, cell (i, j) = (row, column)):

- ``centre`` (YOLOv2/v3, the default): a ground truth is assigned to the one cell holding its
  centre, and the centre offset spans (0, 1) of a cell:

      c_x = (j + σ(t_x))·s,  c_y = (i + σ(t_y))·s

- ``neighbours`` (YOLOv5): a ground truth with centre (x, y) in cell (i, j) = (⌊y/s⌋, ⌊x/s⌋) is
  also assigned to the two adjacent cells nearest its centre — the horizontal neighbour
  j − 1 if x/s − j < 0.5 else j + 1, and the vertical one i − 1 if y/s − i < 0.5 else i + 1,
  each only when it lies inside the grid — so the offset spans (−0.5, 1.5):

      c_x = (j + 2σ(t_x) − 0.5)·s,  c_y = (i + 2σ(t_y) − 0.5)·s

- ``neighbours_ratio``: the cells and the parameterisation of ``neighbours``, with YOLOv5's
  anchor matching (below).

In all, w = a_w·exp(t_w) and h = a_h·exp(t_h), and a ground truth (w, h) claims, at each of
its cells, every anchor whose shape IoU with it exceeds ``match_iou`` — or, under
``neighbours_ratio``, every anchor (a_w, a_h) with max(w/a_w, a_w/w, h/a_h, a_h/h) < 4
(YOLOv5's ``anchor_t``) — and always its best anchor by shape IoU.

The loss (YOLOv3 style) per labelled image is

    L_det = Σ_pos λ_box·GIoU(b̂, b) + Σ_pos BCE(cls) + Σ_pos BCE(obj, 1) + Σ_neg BCE(obj, 0)

summed over cells (as YOLO does) and averaged over the images labelled for detection; a
negative whose predicted box overlaps a ground truth by IoU > ``ignore_iou`` or whose centre
lies in a KITTI ``DontCare`` region is not penalised. Summing over cells makes L_det one to
two orders of magnitude larger than the per-pixel mean segmentation loss — the imbalance
that the paper's handcrafted weights (Table I: w_seg = 40 … 100) compensate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

DetAssignment = Literal["centre", "neighbours", "neighbours_ratio"]
"""How ground truths are assigned to grid cells (see the module docstring)."""

DET_ASSIGNMENTS: tuple[str, ...] = get_args(DetAssignment)

DetStride = Literal[8, 4]
"""The detection grid's stride in input pixels (see :class:`YoloDetectionHead`)."""

DET_STRIDES: tuple[int, ...] = get_args(DetStride)


@dataclass
class Detections:
    """Detections of one image: ``boxes`` (N×4 xyxy pixels), ``scores`` (N), ``labels`` (N)."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor


@dataclass(frozen=True)
class DetectionLossWeights:
    """Weights of the detection loss terms (YOLOv1/v3 conventions)."""

    box: float = 2.0
    cls: float = 1.0
    obj: float = 1.0
    noobj: float = 1.0


def _conv_bn_relu(in_ch: int, out_ch: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
    )


class YoloDetectionHead(nn.Module):
    """Anchor-based detection decoder on the stride-8 (or stride-4) grid.

    Args:
        in_channels: channels of the encoder maps ``{"s4", "s8", "s16", "s32"}`` (``s4`` only with stride 4).
        num_classes: K detection classes.
        anchors: A×2 tensor of anchor (width, height) in input pixels.
        channels: width of the fused feature map.
        assignment: ``centre`` — each ground truth goes to the cell holding its centre, with
            c = (j + σ(t))·s; ``neighbours`` — also to the horizontal and the vertical neighbour
            cell nearest its centre (inside the grid), with c = (j + 2σ(t) − 0.5)·s (YOLOv5);
            ``neighbours_ratio`` — as ``neighbours``, with anchors matched by a width and height
            ratio under :attr:`anchor_ratio` instead of a shape IoU over ``match_iou``.
            It changes the loss and the decoding, not the parameters.
        stride: 8 — the grid of the fused stride-8 map (the paper's decoder); 4 — the top-down sum
            goes on to the encoder's stride-4 map (one more lateral 1×1 convolution), so each cell is
            4 px: objects a few pixels wide (distant pedestrians) get a cell of their own, for about
            4× the head's and the loss's work.
    """

    anchor_ratio: float = 4.0  # YOLOv5's anchor_t, for ``neighbours_ratio``
    anchors: Tensor  # buffer registered in __init__

    def __init__(
        self,
        in_channels: dict[str, int],
        num_classes: int,
        anchors: Tensor,
        channels: int = 64,
        *,
        assignment: DetAssignment = "centre",
        stride: DetStride = 8,
    ) -> None:
        super().__init__()
        if stride not in DET_STRIDES:
            raise ValueError(f"stride must be one of {list(DET_STRIDES)}, got {stride!r}")
        self.stride: int = stride
        self.levels = ("s32", "s16", "s8", "s4")[: 3 if stride == 8 else 4]
        anchors = torch.as_tensor(anchors, dtype=torch.float32)
        if anchors.ndim != 2 or anchors.shape[1] != 2 or (anchors <= 0).any():
            raise ValueError(f"anchors must be an A×2 tensor of positive (w, h), got {anchors.tolist()}")
        if assignment not in DET_ASSIGNMENTS:
            raise ValueError(f"assignment must be one of {list(DET_ASSIGNMENTS)}, got {assignment!r}")
        self.assignment: DetAssignment = assignment
        self.num_classes = num_classes
        self.register_buffer("anchors", anchors.clone())
        self.lateral = nn.ModuleDict({k: nn.Conv2d(in_channels[k], channels, 1) for k in self.levels[::-1]})
        self.fuse = nn.Sequential(_conv_bn_relu(channels, channels), _conv_bn_relu(channels, channels))
        self.pred = nn.Conv2d(channels, self.num_anchors * (5 + num_classes), 1)
        with torch.no_grad():  # start from a low objectness prior so empty cells cost little
            assert self.pred.bias is not None  # Conv2d has a bias unless bias=False
            bias = self.pred.bias.view(self.num_anchors, 5 + num_classes)
            bias.zero_()
            bias[:, 4] = math.log(0.01 / 0.99)
            bias[:, 5:] = math.log(0.1 / 0.9)

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """Return raw predictions of shape (B, A, H/s, W/s, 5 + K), s = :attr:`stride`."""
        p = self.lateral["s32"](features["s32"])
        for level in self.levels[1:]:
            p = F.interpolate(p, size=features[level].shape[-2:], mode="nearest") + self.lateral[level](features[level])
        out = self.pred(self.fuse(p))
        b, _, h, w = out.shape
        return out.view(b, self.num_anchors, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2)

    def decode_boxes(self, raw: Tensor) -> Tensor:
        """Boxes (B, A, H, W, 4) in xyxy input pixels from raw predictions (:meth:`boxes_from` at
        every cell and anchor)."""
        _, _, h, w, _ = raw.shape
        ys = torch.arange(h, device=raw.device, dtype=raw.dtype).view(h, 1).expand(h, w)
        xs = torch.arange(w, device=raw.device, dtype=raw.dtype).view(1, w).expand(h, w)
        cell_xy = torch.stack((xs, ys), dim=-1)  # H×W×2: (j, i) of each cell
        anchor_wh = self.anchors.to(raw.dtype).view(1, -1, 1, 1, 2)
        return self.boxes_from(raw[..., :4], cell_xy, anchor_wh)

    def boxes_from(self, box_raw: Tensor, cell_xy: Tensor, anchor_wh: Tensor) -> Tensor:
        """xyxy boxes from the raw (t_x, t_y, t_w, t_h) of cells at grid positions ``cell_xy`` (j, i)
        with anchors ``anchor_wh`` (all broadcast, last dimension 2 or 4):
        c = (cell + o(t_xy))·s with the offset o of the assignment (σ(t), or 2σ(t) − 0.5 with
        neighbour cells), (w, h) = a·exp(min(t_wh, 4)), box = (c − (w, h)/2, c + (w, h)/2)."""
        centre = (cell_xy + self._centre_offset(box_raw[..., :2])) * self.stride
        size = anchor_wh * torch.exp(box_raw[..., 2:].clamp(max=4.0))
        return torch.cat((centre - size / 2, centre + size / 2), dim=-1)

    def _centre_offset(self, t: Tensor) -> Tensor:
        """The centre offset within a cell: σ(t) ∈ (0, 1), or 2σ(t) − 0.5 ∈ (−0.5, 1.5) for ``neighbours``."""
        if self.assignment != "centre":
            return 2 * torch.sigmoid(t) - 0.5
        return torch.sigmoid(t)

    def target_cells(self, gt: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """The grid cells that ground truths ``gt`` (…×4 xyxy pixels) are assigned to.

        Returns the rows and columns (…×P, long) and whether each is a real cell (…×P, bool) of
        a ``grid`` of (H, W) cells. Position 0 is the cell holding the centre (x, y), clamped to
        the grid: (i, j) = (⌊y/s⌋, ⌊x/s⌋). Under ``centre`` P = 1; otherwise P = 3,
        position 1 is the horizontal neighbour (i, j − 1 if x/s − j < 0.5 else j + 1) and
        position 2 the vertical one (i − 1 if y/s − i < 0.5 else i + 1, j); a neighbour outside
        the grid is not real (its row and column are then the centre cell's)."""
        gh, gw = grid
        centre = (gt[..., :2] + gt[..., 2:]) / 2
        gx = (centre[..., 0] / self.stride).long().clamp(0, gw - 1)
        gy = (centre[..., 1] / self.stride).long().clamp(0, gh - 1)
        if self.assignment == "centre":
            return gy[..., None], gx[..., None], torch.ones_like(gx[..., None], dtype=torch.bool)
        # the side the centre lies closer to (measured from the clamped cell, so an off-grid
        # centre points back into the grid and its outward neighbour is dropped)
        nx = torch.where(centre[..., 0] / self.stride - gx < 0.5, gx - 1, gx + 1)
        ny = torch.where(centre[..., 1] / self.stride - gy < 0.5, gy - 1, gy + 1)
        x_ok = (nx >= 0) & (nx < gw)
        y_ok = (ny >= 0) & (ny < gh)
        rows = torch.stack((gy, gy, torch.where(y_ok, ny, gy)), dim=-1)
        cols = torch.stack((gx, torch.where(x_ok, nx, gx), gx), dim=-1)
        real = torch.stack((torch.ones_like(x_ok), x_ok, y_ok), dim=-1)
        return rows, cols, real

    # ------------------------------------------------------------------ loss
    def loss(
        self,
        raw: Tensor,
        boxes: list[Tensor],
        labels: list[Tensor],
        ignore_boxes: list[Tensor | None] | None = None,
        *,
        weights: DetectionLossWeights = DetectionLossWeights(),
        match_iou: float = 0.3,
        ignore_iou: float = 0.6,
        details: dict[str, Tensor | float] | None = None,
        labelled: Tensor | None = None,
    ) -> Tensor:
        """Detection loss averaged over the images of ``raw`` labelled for detection.

        ``labelled`` (B bool, default: all) marks the images that carry detection labels; the
        others add nothing, and the mean is over the labelled ones. Masking instead of
        indexing keeps the step free of host synchronisation and of a scatter in the backward.

        A ground truth is assigned to the cell holding its centre (and, under ``neighbours`` and
        ``neighbours_ratio`` assignment, to the two adjacent cells nearest its centre:
        :meth:`target_cells`) and, at each of them, to every anchor whose shape IoU with it
        exceeds ``match_iou`` (under ``neighbours_ratio``: whose width and height ratios to it
        are under :attr:`anchor_ratio`), and always to its best anchor by shape IoU. When several
        ground truths claim the same anchor and cell, a claim on the cell holding the ground
        truth's centre beats a neighbour's claim, and among equals the highest GT index wins.

        Vectorised over the batch, the boxes and the anchors: the per-image box lists are padded
        into B×N×4 tensors with a validity mask, and nothing waits for the device (``details``
        receives detached 0-dim tensors). Half-precision predictions are promoted to float32
        first, so the loss is float32 under autocast.
        """
        num_images = raw.shape[0]
        if num_images == 0:
            raise ValueError("detection loss needs at least one labelled image")
        if len(boxes) != num_images or len(labels) != num_images:
            raise ValueError(f"got {len(boxes)} box and {len(labels)} label lists for {num_images} images")
        if labelled is None:
            counts = [len(t.reshape(-1, 4)) for t in boxes]
            if any(len(lab) != n for lab, n in zip(labels, counts, strict=True)):
                raise ValueError(f"label counts {[len(lab) for lab in labels]} differ from box counts {counts}")
        targets = pad_detection_targets(boxes, labels, ignore_boxes, device=raw.device)
        options = {"match_iou": match_iou, "ignore_iou": ignore_iou}
        return self.loss_on_targets(raw, targets, weights=weights, details=details, labelled=labelled, **options)

    def loss_on_targets(
        self,
        raw: Tensor,
        targets: DetectionTargets,
        *,
        weights: DetectionLossWeights = DetectionLossWeights(),
        match_iou: float = 0.3,
        ignore_iou: float = 0.6,
        details: dict[str, Tensor | float] | None = None,
        labelled: Tensor | None = None,
    ) -> Tensor:
        """:meth:`loss` on targets already padded to fixed shapes on ``raw``'s device
        (:func:`pad_detection_targets`): the arithmetic of the loss, with nothing read from the
        host, so a CUDA graph can capture it for any batch of the same padded shapes."""
        num_images = raw.shape[0]
        if raw.dtype in (torch.float16, torch.bfloat16):
            raw = raw.float()
        dtype, device = raw.dtype, raw.device
        # torch.full, not new_tensor: a tensor made from host data is a host-to-device copy that waits
        denominator = (
            torch.full((), float(num_images), dtype=dtype, device=device)
            if labelled is None
            else labelled.sum().clamp_min(1).to(dtype)
        )
        a_count, gh, gw = raw.shape[1:4]
        cells = a_count * gh * gw
        k = self.num_classes
        # one split: its backward writes the gradient of raw once (a slice per term would each fill a
        # raw-sized zero tensor and add it); boxes with a gradient are decoded at the claimed cells only
        box_raw, obj_raw, cls_raw = raw.split((4, 1, k), dim=-1)
        with torch.no_grad():
            pred_boxes = self.decode_boxes(raw.detach()).reshape(num_images, cells, 4)
        obj_logit = obj_raw.reshape(num_images, cells)
        # negatives that are not penalised (DontCare centre, or overlapping a GT by IoU > ignore_iou)
        unpenalised = torch.zeros(num_images, cells, dtype=torch.bool, device=device)
        pos = torch.zeros(num_images, cells, dtype=torch.bool, device=device)
        total_box = raw.new_zeros(())
        total_cls = raw.new_zeros(())

        if targets.ignore.shape[1]:
            ign = targets.ignore.to(dtype)  # B×M×4
            with torch.no_grad():  # laid out B×M×C: the cells run along the vectorised inner dimension
                centres = ((pred_boxes[..., :2] + pred_boxes[..., 2:]) / 2).movedim(-1, 0).contiguous()
                cx, cy = centres[0, :, None], centres[1, :, None]  # B×1×C, each contiguous (see _pairwise_iou)
                ign = ign[..., None]  # B×M×4×1
                inside = (
                    (cx >= ign[:, :, 0])
                    & (cx <= ign[:, :, 2])
                    & (cy >= ign[:, :, 1])
                    & (cy <= ign[:, :, 3])
                    & targets.ignore_valid[..., None]
                ).any(dim=1)
            unpenalised |= inside

        n_max = targets.boxes.shape[1]
        if n_max:
            gt = targets.boxes.to(dtype)  # B×N×4
            cls_idx = targets.labels  # B×N
            valid = targets.valid  # B×N
            if labelled is not None:
                valid = valid & labelled[:, None]
            with torch.no_grad():
                # B×N×C (GTs first: the cells run along the vectorised inner dimension), as torchvision's box_iou
                overlap = _pairwise_iou(gt, pred_boxes)
                overlap = overlap.masked_fill_(~valid[..., None], -math.inf).amax(dim=1)
                unpenalised |= overlap > ignore_iou
                wh = (gt[..., 2:] - gt[..., :2]).clamp(min=1e-3)
                inter = torch.minimum(wh[..., None, :], self.anchors).prod(-1)  # B×N×A
                shape_iou = inter / (wh.prod(-1)[..., None] + self.anchors.prod(-1) - inter)
                anchor_ids = torch.arange(a_count, device=device)
                best = shape_iou.argmax(dim=-1, keepdim=True) == anchor_ids
                if self.assignment == "neighbours_ratio":  # YOLOv5: max(w/a_w, a_w/w, h/a_h, a_h/h) < anchor_t
                    ratio = wh[..., None, :] / self.anchors  # B×N×A×2
                    match = (torch.maximum(ratio, 1 / ratio).amax(dim=-1) < self.anchor_ratio) | best
                else:
                    match = (shape_iou > match_iou) | best
                rows, cols, real = self.target_cells(gt, (gh, gw))  # B×N×P
                n_pos = rows.shape[-1]  # P cells per GT: 1 (centre) or 3 (neighbours)
                # B×N×A×P: GT n claims anchor a at its p-th cell
                claim = (match & valid[..., None])[..., None] & real[:, :, None]
                cell_shape = (num_images, n_max, a_count, n_pos)
                cell = ((anchor_ids[:, None] * gh + rows[:, :, None]) * gw + cols[:, :, None]).reshape(num_images, -1)
                # rank of a claim: its GT index, raised by N at the GT's own centre cell (position 0)
                gt_ids = torch.arange(n_max, device=device).view(1, -1, 1, 1)
                rank = (gt_ids + n_max * (torch.arange(n_pos, device=device) == 0)).expand(cell_shape)
                # the highest rank owns a cell (deterministic: amax is order-free)
                owner = torch.full((num_images, cells), -1, dtype=torch.long, device=device).scatter_reduce(
                    1, cell, torch.where(claim, rank, -1).reshape(num_images, -1), reduce="amax"
                )
                pos = owner >= 0
                # the (GT, anchor, cell) claims that own their cell: one per positive cell
                win = claim & (owner.gather(1, cell).view(cell_shape) == rank)  # B×N×A×P
            # box and class terms on the claimed cells, kept only for the winning claims
            safe = raw.new_zeros(4)  # a valid unit box where no GT wins (filled on the device: no copy)
            safe[2:] = 1.0
            win4 = win[..., None]
            box_sel = box_raw.reshape(num_images, cells, 4).gather(1, cell[..., None].expand(-1, -1, 4))
            cell_xy = torch.stack((cols, rows), dim=-1).to(dtype)[:, :, None]  # B×N×1×P×2, as decode_boxes
            anchor_wh = self.anchors.to(dtype).view(1, 1, a_count, 1, 2)
            pred_sel = self.boxes_from(box_sel.view(*cell_shape, 4), cell_xy, anchor_wh)
            target = gt[:, :, None, None].expand_as(pred_sel)
            box_terms = _giou_loss(torch.where(win4, pred_sel, safe), torch.where(win4, target, safe))
            total_box = torch.where(win, box_terms, 0.0).sum()
            cls_logits = cls_raw.reshape(num_images, cells, k)
            cls_logits = cls_logits.gather(1, cell[..., None].expand(-1, -1, k)).view(*cell_shape, k)
            cls_target = F.one_hot(cls_idx, k).to(dtype)[:, :, None, None].expand_as(cls_logits)
            cls_terms = F.binary_cross_entropy_with_logits(cls_logits, cls_target, reduction="none")
            total_cls = torch.where(win4, cls_terms, 0.0).sum()

        obj_target = pos.to(dtype)
        obj_weight = torch.full_like(obj_logit, weights.noobj).masked_fill(unpenalised, 0.0)
        obj_weight = obj_weight.masked_fill(pos, weights.obj)
        if labelled is not None:
            obj_weight = obj_weight.masked_fill(~labelled[:, None], 0.0)
        total_obj = (F.binary_cross_entropy_with_logits(obj_logit, obj_target, reduction="none") * obj_weight).sum()
        loss = (weights.box * total_box + weights.cls * total_cls + total_obj) / denominator
        if details is not None:
            details["det_box"] = total_box.detach() / denominator
            details["det_cls"] = total_cls.detach() / denominator
            details["det_obj"] = total_obj.detach() / denominator
        return loss

    # ------------------------------------------------------------- inference
    @torch.no_grad()
    def decode(
        self,
        raw: Tensor,
        image_size: tuple[int, int],
        *,
        score_threshold: float = 0.01,
        nms_iou: float = 0.5,
        max_detections: int = 100,
        pre_nms_top_k: int = 1000,
    ) -> list[Detections]:
        """Decode raw predictions into per-image detections with class-wise (batched) NMS.

        Score of class k = σ(objectness)·σ(class logit k), as in YOLOv3.
        """
        height, width = image_size
        boxes = self.decode_boxes(raw).flatten(1, 3)
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, width)
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, height)
        scores = (torch.sigmoid(raw[..., 4:5]) * torch.sigmoid(raw[..., 5:])).flatten(1, 3)
        results: list[Detections] = []
        for b in range(raw.shape[0]):
            s = scores[b].flatten()
            keep = s > score_threshold
            idx = keep.nonzero(as_tuple=True)[0]
            if idx.numel() > pre_nms_top_k:
                idx = idx[s[idx].topk(pre_nms_top_k).indices]
            cand_scores = s[idx]
            cand_labels = idx % self.num_classes
            cand_boxes = boxes[b][idx // self.num_classes]
            valid = (cand_boxes[:, 2] > cand_boxes[:, 0]) & (cand_boxes[:, 3] > cand_boxes[:, 1])
            cand_boxes, cand_scores, cand_labels = cand_boxes[valid], cand_scores[valid], cand_labels[valid]
            kept = batched_nms(cand_boxes, cand_scores, cand_labels, nms_iou)[:max_detections]
            results.append(Detections(cand_boxes[kept], cand_scores[kept], cand_labels[kept]))
        return results


@dataclass
class DetectionTargets:
    """A batch's detection targets padded to fixed shapes, on one device.

    ``boxes`` B×N×4 xyxy pixels, ``labels`` B×N class indices, ``valid`` B×N (False on padding);
    ``ignore`` B×M×4 regions whose negatives go unpenalised (KITTI ``DontCare``), ``ignore_valid``
    B×M. N and M may exceed the largest per-image count (a CUDA graph replays one padded shape).
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    ignore: Tensor
    ignore_valid: Tensor


def pad_detection_targets(
    boxes: list[Tensor],
    labels: list[Tensor],
    ignore_boxes: list[Tensor | None] | None,
    *,
    device: torch.device,
    num_boxes: int = 0,
    num_ignore: int = 0,
) -> DetectionTargets:
    """Pad per-image box, label and ignore-region lists into :class:`DetectionTargets` with
    N = max(largest box count, ``num_boxes``) and M = max(largest ignore count, ``num_ignore``).

    An image's labels are fitted to its boxes (cut, or padded with class 0): an image not labelled
    for detection may carry any lists, and the loss masks it out. Copies to ``device`` do not wait."""
    gt_list = [t.reshape(-1, 4) for t in boxes]
    counts = [len(t) for t in gt_list]
    label_list = [
        lab.reshape(-1)[:n] if len(lab) >= n else torch.cat([lab.reshape(-1), lab.new_zeros(n - len(lab))])
        for lab, n in zip(labels, counts, strict=True)
    ]
    ign_list = [torch.zeros(0, 4) if t is None else t.reshape(-1, 4) for t in (ignore_boxes or [])[: len(gt_list)]] or [
        torch.zeros(0, 4)
    ] * len(gt_list)
    ign_counts = [len(t) for t in ign_list]
    n = max(max(counts, default=0), num_boxes)
    m = max(max(ign_counts, default=0), num_ignore)
    return DetectionTargets(
        boxes=_pad(gt_list, n, (4,), torch.float32).to(device, non_blocking=True),
        labels=_pad(label_list, n, (), torch.long).to(device, non_blocking=True),
        valid=_valid_mask(counts, n, device),
        ignore=_pad(ign_list, m, (4,), torch.float32).to(device, non_blocking=True),
        ignore_valid=_valid_mask(ign_counts, m, device),
    )


def _pad(tensors: list[Tensor], length: int, tail: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Stack per-image tensors (k×*tail) into B×length×*tail, zero-filled past each one's end, on the
    tensors' own device (no copy to the host)."""
    device = next((t.device for t in tensors if t.numel()), torch.device("cpu"))
    out = torch.zeros(len(tensors), length, *tail, dtype=dtype, device=device)
    for i, t in enumerate(tensors):
        if len(t):
            out[i, : len(t)] = t.to(device, dtype)
    return out


def _valid_mask(counts: list[int], length: int, device: torch.device) -> Tensor:
    """B×length mask of the real (unpadded) entries; the counts go to the device without a sync."""
    lengths = torch.tensor(counts).to(device, non_blocking=True)
    return torch.arange(length, device=device) < lengths[:, None]


@torch.no_grad()
def _pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Batched IoU (…×N×M) of xyxy boxes …×N×4 and …×M×4, without grad.

    The same arithmetic as torchvision's ``box_iou`` (bit for bit), laid out per coordinate and
    in place: the …×N×M temporaries dominate the loss's cost on CPU, where each fresh one is paid
    for in page faults, so three serve the whole computation. Pass the larger set as ``boxes2``:
    M then runs along the inner dimension, where the CPU kernels vectorise."""
    # each coordinate plane contiguous: a strided plane (every 4th float) takes the CPU's scalar loop
    x1, y1, x2, y2 = (c.unsqueeze(-1) for c in boxes1.movedim(-1, 0).contiguous())  # …×N×1
    x1g, y1g, x2g, y2g = (c.unsqueeze(-2) for c in boxes2.movedim(-1, 0).contiguous())  # …×1×M
    area1 = (x2 - x1) * (y2 - y1)
    area2 = (x2g - x1g) * (y2g - y1g)
    inter = torch.minimum(x2, x2g)
    low = torch.maximum(x1, x1g)
    inter.sub_(low).clamp_(min=0)
    high = torch.minimum(y2, y2g)
    torch.maximum(y1, y1g, out=low)
    inter.mul_(high.sub_(low).clamp_(min=0))
    torch.add(area1, area2, out=low)
    return inter.div_(low.sub_(inter))


def _giou_loss(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Element-wise ``1 − GIoU`` of xyxy boxes: torchvision's ``generalized_box_iou_loss`` (reduction
    ``none``) with its boolean-mask assignment replaced by ``torch.where``, which needs no host sync."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1 = torch.max(x1, x1g)
    ykis1 = torch.max(y1, y1g)
    xkis2 = torch.min(x2, x2g)
    ykis2 = torch.min(y2, y2g)
    intsctk = torch.where((ykis2 > ykis1) & (xkis2 > xkis1), (xkis2 - xkis1) * (ykis2 - ykis1), 0.0)
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    iouk = intsctk / (unionk + eps)
    area_c = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return 1 - (iouk - (area_c - unionk) / (area_c + eps))


def default_anchors(image_height: int) -> Tensor:
    """Anchors (w, h) as fractions of the image height, for when no boxes are known."""
    rel = torch.tensor([[0.08, 0.06], [0.06, 0.14], [0.18, 0.13], [0.14, 0.30], [0.40, 0.30]])
    return rel * image_height


def kmeans_anchors(wh: Tensor, k: int, *, iterations: int = 60, seed: int = 0) -> Tensor:
    """YOLOv2 anchor clustering: k-means on box (w, h) with distance 1 − IoU(shapes).

    Deterministic for a given ``seed`` (k-means++ initialisation from a seeded generator).
    Returns k×2 anchors sorted by area.
    """
    wh = torch.as_tensor(wh, dtype=torch.float64).reshape(-1, 2)
    if len(wh) < k:
        raise ValueError(f"need at least {k} boxes to cluster {k} anchors, got {len(wh)}")
    gen = torch.Generator().manual_seed(seed)

    def shape_iou(a: Tensor, b: Tensor) -> Tensor:
        inter = torch.minimum(a[:, None], b[None]).prod(-1)
        return inter / (a.prod(-1)[:, None] + b.prod(-1)[None] - inter)

    centres = wh[torch.randint(len(wh), (1,), generator=gen)]
    while len(centres) < k:
        dist = (1 - shape_iou(wh, centres)).amin(dim=1) ** 2
        pick = torch.multinomial(dist / dist.sum() if dist.sum() > 0 else torch.ones_like(dist), 1, generator=gen)
        centres = torch.cat([centres, wh[pick]])
    for _ in range(iterations):
        assign = shape_iou(wh, centres).argmax(dim=1)
        new = torch.stack(
            [wh[assign == j].median(dim=0).values if (assign == j).any() else centres[j] for j in range(k)]
        )
        if torch.allclose(new, centres):
            break
        centres = new
    return centres[centres.prod(-1).argsort()].to(torch.float32)
