"""Numeric precision of training and inference: fp32, or mixed precision by autocast.

``auto`` picks, for the device a run uses:

- CUDA with bf16 support (Ampere and newer): ``bf16`` autocast;
- older CUDA: ``fp16`` autocast with a gradient scaler (loss scaling, see :class:`LossScaler`);
- a CPU whose instruction set computes bf16 natively (AVX-512 BF16 or AMX, read from
  ``/proc/cpuinfo``): ``bf16`` autocast;
- anything else: ``fp32``.

Under autocast only activations change precision: parameters, their gradients, the task
losses (cast to fp32 by the heads) and everything a weighting strategy computes from them
(per-task gradients, norms, projections, min-norm solves) stay in fp32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of CPUs with native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles)."""


@functools.cache
def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (flags ``avx512_bf16`` or ``amx_bf16``).

    Without them oneDNN emulates bf16 and autocast is slower than fp32, so ``auto`` keeps fp32.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(flag in flags for flag in CPU_BF16_FLAGS)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """Turn ``auto`` into the concrete precision for ``device``; check explicit choices.

    Raises ``ValueError`` naming the option when the device cannot run the precision asked for.
    """
    if name not in PRECISIONS:
        raise ValueError(f"option 'precision': expected one of {', '.join(PRECISIONS)}, got {name!r}")
    if device.type == "cuda":
        if name == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return name
    if name == "auto":
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if name == "fp16" and device.type == "cpu":
        raise ValueError("option 'precision': fp16 needs a CUDA device (use bf16 or fp32 on a CPU)")
    return name


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for fp32)."""
    return _DTYPES.get(precision)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device, *, cache: bool = True) -> Iterator[None]:
    """Autocast region for a resolved precision (a no-op for fp32). ``cache=False`` casts a weight
    again at every use instead of once per region (what a CUDA graph capture needs)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype, cache_enabled=cache):
        yield


class LossScaler:
    """Gradient scaling for fp16 (``torch.amp.GradScaler``); a pass-through otherwise.

    fp16 gradients of small losses underflow, so the backward pass runs on losses whose
    gradients are multiplied by the scale S; the optimiser's gradients are divided by S
    before clipping and the step, and a step whose gradients overflowed is skipped while S
    halves. The scaled quantity is the *gradient*, not the loss value: strategies receive
    ``scale_gradients(losses)`` whose values are the true losses (loss-based weights are
    unaffected) and whose gradients carry the factor S, which they read from
    :attr:`taskweight.weighting.base.WeightingStrategy.gradient_scale` where a norm needs
    it (GradNorm); projections and min-norm solves are invariant to a common factor.
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        self.enabled = precision == "fp16"
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.enabled)

    def scale(self) -> torch.Tensor | float:
        """The current factor S (a device tensor under fp16, 1.0 otherwise)."""
        if not self.enabled:
            return 1.0
        return self.scaler.scale(torch.ones((), device=self.device))

    def scale_gradients(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses with unchanged values whose gradients are multiplied by S."""
        if not self.enabled:
            return losses
        scale = self.scale()
        return {t: _ScaleGradient.apply(v, scale) for t, v in losses.items()}

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.enabled:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.enabled:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.enabled else {}

    def load_state_dict(self, state: dict) -> None:
        if self.enabled and state:
            self.scaler.load_state_dict(state)


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass, gradient × S in the backward pass."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale.to(grad.dtype), None
