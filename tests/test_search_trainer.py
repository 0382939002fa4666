"""End to end: the meta-learning search with the real trainer on a tiny synthetic KITTI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from taskweight.config import TrainConfig
from taskweight.search import read_journal, search_task_weights


@pytest.mark.slow
def test_meta_async_search_trains_and_transfers_weights(tiny_config: TrainConfig, tmp_path: Path) -> None:
    cfg = tiny_config.model_copy(update={"epochs": 1})
    out = tmp_path / "search"
    result = search_task_weights(cfg, out, async_frequencies=True, budget=5, epochs_per_eval=1, seed=0, progress=False)
    records = [r.to_dict() for r in read_journal(out / "journal.jsonl")]
    assert len(records) == 5 and result.total_epochs == 5
    for r in records:
        assert (out / r["checkpoint"]).is_file()
        assert {"mAP", "mIoU", "geometric_mean"} <= set(r["metrics"])
        assert (out / "evals" / f"{r['index']:04d}" / "metrics.json").is_file()
    assert records[4]["init_checkpoint"] == max(records[:4], key=lambda r: r["fitness"] or -1)["checkpoint"]
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    assert math.isclose(sum(result.best_config["weights"].values()), 1.0)
    assert (out / "table1.md").is_file() and (out / "fig4b_frequencies.png").is_file()
