"""A weighting strategy in your own training loop (the README's example, runnable).

    python examples/own_loop.py [--method gradnorm] [--steps 4]

Generates a few synthetic KITTI-layout scenes into a temporary folder, then trains the
two-task network for a few steps with the strategy doing the backward pass.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from taskweight import weighting
from taskweight.data import batch_to_device, collate_batch, open_dataset
from taskweight.models import resnet10_multitask
from taskweight.synth import generate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradnorm", choices=weighting.available())
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "scenes"
        generate_dataset(root, preset="synth-kitti", train=8, val=2, test=2, size=(64, 192), workers=1)
        loader = DataLoader(
            open_dataset("kitti", root, "train", image_size=(64, 192)),
            batch_size=4,
            shuffle=True,
            collate_fn=collate_batch,
        )

        model = resnet10_multitask(width=0.25, image_height=64)  # or your own two-head network
        strategy = weighting.get(args.method, tasks=model.tasks)  # det and seg: the default heads
        optimizer = torch.optim.AdamW([*model.parameters(), *strategy.trainable_parameters()], lr=3e-3)

        step = 0
        while step < args.steps:
            for batch in loader:
                batch = batch_to_device(batch, device)  # uint8 images → float32 in [0, 1], masks → int64
                losses = model.compute_losses(model(batch["image"]), batch)  # {"det": L_det, "seg": L_seg}
                optimizer.zero_grad(set_to_none=True)
                used = strategy.backward(losses, model.shared_parameters(), model.last_shared_layer)
                optimizer.step()
                strategy.on_step_end()
                step += 1
                print(
                    f"step {step}: "
                    + ", ".join(f"L_{t} = {v.item():.3f}, w_{t} = {float(used[t]):.3f}" for t, v in losses.items())
                )
                if step == args.steps:
                    break
            strategy.on_epoch_end()


if __name__ == "__main__":
    main()
