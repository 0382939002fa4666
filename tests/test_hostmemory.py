"""Keeping freed host memory (:mod:`taskweight.hostmemory`): the setting glibc takes, and what it changes.

What it changes is counted, not timed. A loop allocates three 40 MiB blocks and frees them, as a step
does its largest activations. Blocks that size lie above glibc's default mmap threshold (at most 32 MiB),
so with the defaults each one is mapped, unmapped and page-faulted in again every round, whatever else
the heap holds. Once freed memory is kept they come from the heap and are reused. The setting is
process-wide and cannot be undone, so each case runs in its own interpreter.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from taskweight.config import TrainConfig
from taskweight.hostmemory import keep_freed_memory
from taskweight.trainer import Trainer

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

ROUNDS = """
import json, resource, sys, torch
from taskweight.hostmemory import keep_freed_memory
threshold = keep_freed_memory() if sys.argv[1] == "keep" else 0
faults = []
torch.ones(16)
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(10 << 20) for _ in range(3)]  # 3 × 40 MiB, freed together as a step's activations are
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"threshold": threshold, "faults": faults}))
"""
BLOCK_PAGES = 3 * (40 << 20) // 4096  # 30,720 pages of 4 KiB


def _page_faults(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@glibc
def test_kept_memory_is_not_page_faulted_in_again_each_round():
    system, kept = _page_faults("system"), _page_faults("keep")
    assert system["threshold"] == 0
    if kept["threshold"] < 40 << 20:
        pytest.skip(f"this glibc caps the mmap threshold at {kept['threshold']} bytes, under the 40 MiB blocks")
    assert kept["threshold"] == 1 << 30
    # the defaults: every round maps the blocks afresh (30,723 faults a round measured)
    assert min(system["faults"]) > BLOCK_PAGES * 9 // 10, system
    # kept: the late rounds reuse the heap (0 measured; the first rounds grow it)
    assert max(kept["faults"][-3:]) < BLOCK_PAGES // 20, kept


@pytest.mark.parametrize("options", [{"mmap_threshold": 0}, {"trim_threshold": -1}])
def test_thresholds_must_be_positive(options: dict):
    with pytest.raises(ValueError, match="thresholds must be positive"):
        keep_freed_memory(**options)


def test_elsewhere_nothing_is_changed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert keep_freed_memory() == 0


@pytest.mark.parametrize("keep", [True, False])
def test_a_cpu_run_records_whether_it_kept_host_memory(tmp_path: Path, tiny_config: TrainConfig, keep: bool):
    config = tiny_config.model_copy(update={"keep_host_memory": keep, "epochs": 1})
    metrics = Trainer(config, tmp_path / "run", show_progress=False).fit().metrics
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert metrics["host_memory_kept"] is (keep and on_glibc)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["host_memory_kept"] is (keep and on_glibc)
