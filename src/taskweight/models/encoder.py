"""ResNet10 shared encoder (paper §V-A: "ResNet10 as a shared encoder").

ResNet10 is torchvision's ResNet with BasicBlock and one block per stage (layers [1, 1, 1, 1]).
A width multiplier scales the stage widths (64, 128, 256, 512) for CPU presets. Parameter
names follow torchvision's ResNet, so the first block of each stage of an ImageNet ResNet-18
checkpoint (``layerN.0.*``) loads into it unchanged.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, conv1x1

from taskweight.checkpoint import load_checkpoint
from taskweight.errors import DataFormatError

BASE_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)


def scaled_widths(width: float) -> tuple[int, int, int, int]:
    """Stage widths for a width multiplier, rounded to multiples of 8 (at least 8)."""
    if width <= 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    return tuple(max(8, int(round(c * width / 8)) * 8) for c in BASE_WIDTHS)  # type: ignore[return-value]  # 4 widths in, 4 out


class ResNet10Encoder(nn.Module):
    """ResNet10 feature extractor returning the stride-4, -8, -16 and -32 feature maps.

    Stem (7×7 conv stride 2, max-pool) → layer1 (stride 4) → layer2 (8) → layer3 (16) →
    layer4 (32); each layer is a single torchvision ``BasicBlock``.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3, c4 = scaled_widths(width)
        self.width = width
        self.out_channels: dict[str, int] = {"s4": c1, "s8": c2, "s16": c3, "s32": c4}
        self.conv1 = nn.Conv2d(3, c1, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(c1, c1, stride=1)
        self.layer2 = self._stage(c1, c2, stride=2)
        self.layer3 = self._stage(c2, c3, stride=2)
        self.layer4 = self._stage(c3, c4, stride=2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_ch != out_ch:
            downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        return nn.Sequential(BasicBlock(in_ch, out_ch, stride=stride, downsample=downsample))

    @property
    def last_layer(self) -> nn.Module:
        """The last shared layer (GradNorm computes its gradient norms here)."""
        return self.layer4

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        s4 = self.layer1(x)
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return {"s4": s4, "s8": s8, "s16": s16, "s32": s32}


def load_imagenet_weights(encoder: ResNet10Encoder, path: str | Path) -> list[str]:
    """Load ImageNet weights from a local torchvision ResNet checkpoint (nothing is downloaded).

    Accepts a ResNet-18/34 ``state_dict`` (or a dict with a ``state_dict``/``model`` entry):
    the stem and the first block of every stage are copied. Returns the encoder keys that
    were not found in the file. Raises :class:`DataFormatError` naming the file when it is
    missing, unreadable, or its tensor shapes do not fit this encoder's width.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "pretrained weights file not found (weights are never downloaded)")
    state = load_checkpoint(path, required=())
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise DataFormatError(path, "checkpoint does not hold a state_dict")
    state = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items()}
    own = encoder.state_dict()
    matched: dict[str, Tensor] = {}
    for key, tensor in own.items():
        if key in state:
            if state[key].shape != tensor.shape:
                raise DataFormatError(
                    path,
                    f"tensor {key} has shape {tuple(state[key].shape)}, the encoder (width "
                    f"{encoder.width}) expects {tuple(tensor.shape)}; ImageNet weights need width 1.0",
                )
            matched[key] = state[key]
    if not matched:
        raise DataFormatError(path, "no tensor of this file matches a ResNet encoder key (conv1.weight, layer1.0...)")
    encoder.load_state_dict(matched, strict=False)
    return sorted(set(own) - set(matched))
