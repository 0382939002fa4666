"""Host memory for training on the CPU: keep freed blocks for the next step.

A CPU training step allocates and frees tensors of a few megabytes many times over (activations,
their gradients, the losses' temporaries). glibc's ``malloc`` serves a request above its mmap
threshold with a fresh ``mmap`` and unmaps it on ``free``, and it gives the top of the heap back
to the system once more than its trim threshold is free there. Either way the next step touches
new pages, and each 4 KiB page costs a page fault. PyTorch's CPU tuning guide answers this with
jemalloc or tcmalloc preloaded; :func:`keep_freed_memory` gets the same effect from glibc itself
(``mallopt``): blocks up to ``mmap_threshold`` come from the heap, and freed heap memory stays in
the process for reuse. The price is a resident set that stays at its peak, as with any caching
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

MAX_MMAP_THRESHOLD = 32 << 20
"""The largest mmap threshold glibc accepts on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)."""


def keep_freed_memory(mmap_threshold: int = MAX_MMAP_THRESHOLD, trim_threshold: int = 1 << 30) -> bool:
    """Serve blocks up to ``mmap_threshold`` bytes from the heap, and give freed heap memory back to
    the system only beyond ``trim_threshold`` bytes. Returns True when glibc took both settings,
    False on a system without glibc (nothing changed there)."""
    if not 0 < mmap_threshold <= MAX_MMAP_THRESHOLD:
        raise ValueError(f"mmap_threshold must be in (0, {MAX_MMAP_THRESHOLD}] bytes, got {mmap_threshold}")
    if trim_threshold <= 0:
        raise ValueError(f"trim_threshold must be positive, got {trim_threshold}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    taken = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 and taken
