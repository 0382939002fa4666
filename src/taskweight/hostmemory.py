"""Host memory for training on the CPU: keep freed blocks for the next step.

A CPU training step allocates and frees tensors of a few megabytes many times over (activations,
their gradients, the losses' temporaries). glibc's ``malloc`` serves a request above its mmap
threshold with a fresh ``mmap`` and unmaps it on ``free``, and it gives the top of the heap back
to the system once more than its trim threshold is free there. Either way the next step touches
new pages, and each 4 KiB page costs a page fault. PyTorch's CPU tuning guide answers this with
jemalloc or tcmalloc preloaded; :func:`keep_freed_memory` gets the same effect from glibc itself
(``mallopt``): blocks up to ``mmap_threshold`` (1 GiB) come from the heap, and freed heap memory
stays in the process for reuse. The price is a resident set that stays at its peak, as with any caching
allocator.

It changes nothing but where memory comes from: results are bit-identical. It applies to the
whole process (the loader's worker processes inherit it when they fork), and only to Linux with
glibc; elsewhere it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameters (``<malloc.h>``)."""

CAPPED_MMAP_THRESHOLD = 32 << 20
"""The largest mmap threshold older glibc versions accept on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)."""


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 30) -> int:
    """Serve blocks up to ``mmap_threshold`` bytes from the heap, and give freed heap memory back to
    the system only beyond ``trim_threshold`` bytes. A glibc that refuses the mmap threshold (older
    ones cap it at 32 MiB) gets :data:`CAPPED_MMAP_THRESHOLD`. Returns the mmap threshold now in force,
    or 0 where nothing was changed (no glibc, or glibc refused)."""
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(f"thresholds must be positive, got mmap {mmap_threshold} and trim {trim_threshold} bytes")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return 0
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) != 1:
        return 0
    for threshold in (mmap_threshold, min(mmap_threshold, CAPPED_MMAP_THRESHOLD)):
        if libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1:
            return threshold
    return 0
