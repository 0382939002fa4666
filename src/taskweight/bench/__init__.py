"""The benchmark: the paper's Table II (and Table I) for any data, with seed-to-seed spread."""

from taskweight.bench.methods import PAPER_METHOD_ORDER
from taskweight.bench.report import summarize, write_report
from taskweight.bench.results import CellRecord, load_results, save_results
from taskweight.bench.runner import PROTOCOLS, BenchPreset, BenchRunner, load_bench_preset, search_settings
from taskweight.bench.significance import bootstrap_ci, significance

__all__ = [
    "PAPER_METHOD_ORDER",
    "PROTOCOLS",
    "BenchPreset",
    "BenchRunner",
    "CellRecord",
    "load_bench_preset",
    "bootstrap_ci",
    "load_results",
    "save_results",
    "search_settings",
    "significance",
    "summarize",
    "write_report",
]
