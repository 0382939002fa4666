"""Buffers whose width is known only at the first step: per-task state over the P shared coordinates.

A strategy that tracks each task's gradient across steps (DB-MTL, MoCo) keeps a T × P buffer, but P,
the number of shared parameters, is known only when the first Jacobian arrives. Such a buffer is
registered by :func:`register_lazy_buffer` as an empty T × 0 tensor: a real buffer from the start, so
``.to(dtype/device)`` converts it and it is created at the first step (:func:`lazy_buffer`) with the
dtype and device the strategy was moved to, and it is always in the ``state_dict``. Loading a
``state_dict`` first gives the buffer the saved shape (a load pre-hook), then copies the values as
usual: a fresh strategy takes a trained one's state, and a trained one takes a fresh one's (T × 0,
created again at the next step).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
from torch import Tensor, nn


def register_lazy_buffer(module: nn.Module, name: str, rows: int) -> None:
    """Register buffer ``name`` of ``module`` as a ``rows`` × 0 placeholder whose width the first step sets."""
    module.register_buffer(name, torch.zeros(rows, 0))
    module.register_load_state_dict_pre_hook(functools.partial(_take_saved_shape, name))


def lazy_buffer(module: nn.Module, name: str, columns: int) -> Tensor:
    """The buffer ``name``, created zero-filled at width ``columns`` (placeholder's dtype and device) on first use.

    Raises a ``ValueError`` when it already has another width (the shared parameters changed)."""
    buffer: Tensor = getattr(module, name)
    if buffer.shape[1] == columns:
        return buffer
    if buffer.shape[1] != 0:
        raise ValueError(
            f"{type(module).__name__} tracks {buffer.shape[1]} shared coordinates per task, got a Jacobian with "
            f"{columns}: the shared parameters must stay the same across steps"
        )
    setattr(module, name, buffer.new_zeros(buffer.shape[0], columns))
    created: Tensor = getattr(module, name)
    return created


def _take_saved_shape(name: str, module: nn.Module, state_dict: Mapping[str, Tensor], prefix: str, *_: object) -> None:
    """Load pre-hook: give buffer ``name`` the shape saved in ``state_dict`` (its values are copied afterwards)."""
    saved = state_dict.get(prefix + name)
    current: Tensor = getattr(module, name)
    if isinstance(saved, Tensor) and saved.shape != current.shape:
        setattr(module, name, current.new_zeros(saved.shape))
