"""Keeping freed host memory (:mod:`taskweight.hostmemory`): the setting glibc takes, and what it changes.

What it changes is counted, not timed: a loop that allocates a step's worth of tensors (96 MiB in twelve
8 MiB blocks) and frees them together page-faults all of it in again every round with glibc's defaults
(the freed top of the heap is given back to the system), and hardly at all once freed memory is kept. The
setting is process-wide and cannot be undone, so each case runs in its own interpreter.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from taskweight.config import TrainConfig
from taskweight.hostmemory import MAX_MMAP_THRESHOLD, keep_freed_memory
from taskweight.trainer import Trainer

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

ROUNDS = """
import json, resource, sys, torch
from taskweight.hostmemory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
torch.ones(16)
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(2 << 20) for _ in range(12)]  # 12 × 8 MiB, freed together as a step's activations are
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _page_faults(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@glibc
def test_kept_memory_is_not_page_faulted_in_again_each_round():
    system, kept = _page_faults("system"), _page_faults("keep")
    assert system["kept"] is False and kept["kept"] is True
    blocks_pages = 12 * (8 << 20) // 4096  # 24,576 pages of 4 KiB
    # the defaults: every late round faults most of the 96 MiB in again (24,544 measured)
    assert min(system["faults"][-3:]) > blocks_pages // 2, system
    # kept: the late rounds reuse the heap (0 measured; the first rounds grow it)
    assert max(kept["faults"][-3:]) < blocks_pages // 20, kept


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mmap_threshold": 0}, r"mmap_threshold must be in \(0, 33554432\] bytes, got 0"),
        ({"mmap_threshold": MAX_MMAP_THRESHOLD + 1}, r"mmap_threshold must be in \(0, 33554432\] bytes, got 33554433"),
        ({"trim_threshold": 0}, "trim_threshold must be positive, got 0"),
    ],
)
def test_thresholds_glibc_would_refuse_are_named(options: dict, message: str):
    with pytest.raises(ValueError, match=message):
        keep_freed_memory(**options)


def test_elsewhere_nothing_is_changed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert keep_freed_memory() is False


@pytest.mark.parametrize("keep", [True, False])
def test_a_cpu_run_records_whether_it_kept_host_memory(tmp_path: Path, tiny_config: TrainConfig, keep: bool):
    config = tiny_config.model_copy(update={"keep_host_memory": keep, "epochs": 1})
    metrics = Trainer(config, tmp_path / "run", show_progress=False).fit().metrics
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert metrics["host_memory_kept"] is (keep and on_glibc)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["host_memory_kept"] is (keep and on_glibc)
