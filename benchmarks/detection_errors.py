"""Where a trained run's detection AP is lost, per class: AP at several IoU thresholds, and for every
ground-truth box whether it was found (a box of any class at IoU >= 0.5), named (its own class,
score >= 0.1) and which class the best box overlapping it gave (:mod:`taskweight.detection_errors`),
by box height.

    python benchmarks/detection_errors.py RUN [--split test] [--checkpoint best.pt]
        [--iou 0.1 0.3 0.5] [--min-score 0.1] [--threads 2] [--markdown FILE]

AP is torchmetrics' ``MeanAveragePrecision`` (faster-coco-eval) with the evaluator's own ground truth
(ignore regions as crowd boxes of every class), so the IoU 0.5 row is the run's reported AP50.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from table_output import emit  # a sibling script: python puts benchmarks/ on the path
from torchmetrics.detection import MeanAveragePrecision

from taskweight.build import make_loader, open_split
from taskweight.classes import DET_CLASSES
from taskweight.data import batch_to_device
from taskweight.detection_errors import GroundTruthOutcome, by_class_and_height, ground_truth_outcomes
from taskweight.metrics import map_prediction, map_target
from taskweight.scoring import load_model, open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder written by `taskweight train` (or a bench cell's run/)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--checkpoint", default="best.pt")
    parser.add_argument("--iou", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--min-score", type=float, default=0.1, help="score a box of the own class needs to name it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config, checkpoint = open_run(args.run, args.checkpoint)
    model = load_model(config, checkpoint).eval()
    cpu = torch.device("cpu")
    loader = make_loader(open_split(config, args.split, train=False), config, shuffle=False, device=cpu)
    k = len(DET_CLASSES)
    maps = {
        t: MeanAveragePrecision(box_format="xyxy", iou_thresholds=[t], class_metrics=True, backend="faster_coco_eval")
        for t in args.iou
    }
    outcomes: list[GroundTruthOutcome] = []
    with torch.no_grad():
        for batch in loader:
            batch = batch_to_device(batch, cpu, channels_last=False)
            detections = model.predict_tasks(
                batch["image"], score_threshold=config.eval.score_threshold, nms_iou=config.eval.nms_iou
            )["det"]
            for i, labelled in enumerate(batch["has_det"].tolist()):
                if not labelled:
                    continue
                d = detections[i]
                target = map_target(batch["boxes"][i], batch["labels"][i], batch["ignore_boxes"][i], k)
                for metric in maps.values():
                    metric.update([map_prediction(d)], [target])
                outcomes += ground_truth_outcomes(
                    batch["boxes"][i], batch["labels"][i], d.boxes, d.scores, d.labels, min_score=args.min_score
                )

    lines = [
        f"# Detection errors: {args.run} ({args.checkpoint}, split {args.split})",
        "",
        "| IoU | mAP | " + " | ".join(f"AP {c}" for c in DET_CLASSES) + " |",
        "|---:|---:|" + "---:|" * k,
    ]
    for t, metric in maps.items():
        r = metric.compute()
        per_class = [float(x) for x in r["map_per_class"]]
        lines.append(f"| {t:g} | {float(r['map']):.3f} | " + " | ".join(f"{x:.3f}" for x in per_class) + " |")
    table = by_class_and_height(outcomes, k)
    lines += [
        "",
        f"Ground truths by height (px of the scored input): found = a box of any class at IoU >= 0.5; "
        f"named = a box of its own class at IoU >= 0.5 scoring >= {args.min_score:g}; "
        "top = the class of the best-scoring box at IoU >= 0.5.",
        "",
        "| class | height | boxes | found | named | top: " + " / ".join(DET_CLASSES) + " / none |",
        "|---|---|---:|---:|---:|---|",
    ]
    for (c, bin_name), t in table.items():
        if t.count == 0:
            continue
        tops = " / ".join(str(t.top.get(j, 0)) for j in (*range(k), None))
        found, named = t.found / t.count, t.named / t.count
        lines.append(f"| {DET_CLASSES[c]} | {bin_name} | {t.count} | {found:.2f} | {named:.2f} | {tops} |")
    emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    main()
