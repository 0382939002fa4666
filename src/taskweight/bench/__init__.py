"""The benchmark: the paper's Table II (and Table I) for any data, with seed-to-seed spread."""

from taskweight.bench.methods import PAPER_METHOD_ORDER
from taskweight.bench.report import summarize, write_report
from taskweight.bench.results import CellRecord, load_results, save_results
from taskweight.bench.runner import BenchPreset, BenchRunner, load_bench_preset

__all__ = [
    "PAPER_METHOD_ORDER",
    "BenchPreset",
    "BenchRunner",
    "CellRecord",
    "load_bench_preset",
    "load_results",
    "save_results",
    "summarize",
    "write_report",
]
