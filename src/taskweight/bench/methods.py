"""The benchmark's columns: which methods there are, their order, their titles, the best baseline.

One home for the method lists the runner, the report and the paper comparison share
(``runner`` → ``report`` → ``paper`` → ``methods``; nothing here imports them back).

- :data:`BASELINES` — the seven methods of the paper's Table II that train one network with
  one strategy of :mod:`taskweight.weighting` (§IV-A/B).
- :data:`SEARCH_METHODS` — ``meta`` and ``meta_async``: the evolutionary search of the task
  weights (and async backprop periods) of §IV-C/D, run inside the cell.
- :data:`CONTROL_METHODS` — ``equal_control``: ``equal`` trained for as many epochs as the
  lineage of ``meta_async``'s best model received (same dataset and seed), so a table can
  tell better weights from more training.
- :data:`PAPER_METHOD_ORDER` — the paper's nine Table II columns, in its order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

BASELINES: tuple[str, ...] = (
    "equal",
    "handcrafted",
    "dynamic_scaling",
    "uncertainty",
    "gradnorm",
    "geometric",
    "weight_learning",
)
SEARCH_METHODS: tuple[str, ...] = ("meta", "meta_async")
PAPER_METHOD_ORDER: tuple[str, ...] = (*BASELINES, *SEARCH_METHODS)

CONTROL_METHODS: dict[str, tuple[str, str]] = {"equal_control": ("equal", "meta_async")}
"""control column → (the strategy it trains, the search column whose best lineage sets its epochs)."""

SEARCH_AND_CONTROL_TITLES: dict[str, str] = {
    "meta": "Meta-learning",
    "meta_async": "Meta-learning async backprop",
    "equal_control": "No task weighting, meta_async's lineage epochs (control)",
}
"""Titles of the columns that are not one strategy; a strategy's title is its class's ``title``."""


def method_title(method: str) -> str:
    """The column title of ``method``: the search's or control's, the strategy's, else its name."""
    from taskweight import weighting

    if method in SEARCH_AND_CONTROL_TITLES:
        return SEARCH_AND_CONTROL_TITLES[method]
    if method in weighting.available():
        return weighting.strategy_class(method).title
    return method


def ordered_methods(methods: Iterable[str]) -> list[str]:
    """The paper's nine columns in its order, the controls, the other strategies in the registry's order
    (:func:`taskweight.weighting.available`), then any other method by name."""
    from taskweight import weighting

    methods = set(methods)
    order = dict.fromkeys((*PAPER_METHOD_ORDER, *CONTROL_METHODS, *weighting.available()))
    known = [m for m in order if m in methods]
    return known + sorted(methods - set(known))


def valid_methods() -> set[str]:
    """Every method a bench cell can run: the registered strategies, the searches and the controls."""
    from taskweight import weighting

    return set(weighting.available()) | set(SEARCH_METHODS) | set(CONTROL_METHODS)


def best_baseline(gm: Mapping[str, float]) -> str | None:
    """The baseline with the highest (finite) geometric mean in ``gm``; ties keep the paper's order. None if none."""
    best, best_gm = None, -math.inf
    for m in BASELINES:
        value = gm.get(m)
        if value is not None and not math.isnan(value) and value > best_gm:
            best, best_gm = m, value
    return best
