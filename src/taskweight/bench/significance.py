"""Is a column's lead real? Paired per-seed differences with a percentile-bootstrap confidence interval.

For each dataset and Overall, the per-seed paired difference of test geometric means

- ``meta_async`` − the best baseline, and ``meta`` − the best baseline, where the best baseline
  is the baseline column with the highest mean GM on that dataset
  (:func:`taskweight.bench.methods.best_baseline`; for Overall, on the Overall row);
- ``meta_async`` − ``equal_control``: the search's weights against plain training for as many
  epochs as the search's best model received.

Seeds pair up because a seed fixes the network's initialisation and the data order in every
column. The interval is the 2.5th and 97.5th percentiles of the mean difference over
``RESAMPLES`` resamples of the seeds with replacement (numpy ``default_rng(BOOTSTRAP_SEED)``,
``numpy.quantile``'s default linear interpolation). With fewer than two seeds there is no
interval (n/a). With few seeds the interval is coarse — with 3 seeds its ends are nearly always
the smallest and largest difference — so read it together with n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskweight.bench.methods import CONTROL_METHODS, best_baseline

RESAMPLES = 10_000
LEVEL = 0.95
BOOTSTRAP_SEED = 0
COMPARISONS: tuple[tuple[str, str | None], ...] = (
    ("meta_async", None),
    ("meta", None),
    ("meta_async", "equal_control"),
)
"""(column, against): ``None`` = the best baseline of the dataset."""


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (None for fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Per-seed ``a − b`` over the seeds both have (stats with aligned ``seeds`` and ``values``), mean and CI."""
    b_by_seed = dict(zip(b["seeds"], b["values"], strict=True))
    seeds = [s for s in a["seeds"] if s in b_by_seed]
    a_by_seed = dict(zip(a["seeds"], a["values"], strict=True))
    diffs = [a_by_seed[s] - b_by_seed[s] for s in seeds]
    ci = bootstrap_ci(diffs)
    return {
        "n": len(diffs),
        "seeds": seeds,
        "differences": diffs,
        "mean": float(np.mean(diffs)) if diffs else math.nan,
        "ci95": None if ci is None else list(ci),
    }


def significance(summary: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """For each dataset of ``summary`` (see :func:`taskweight.bench.report.summarize`) and Overall, the comparisons."""
    groups: dict[str, Mapping[str, Any]] = {
        ds: {m: s["geometric_mean"] for m, s in summary["table"][ds].items()} for ds in summary["datasets"]
    }
    if summary.get("overall"):
        groups["Overall"] = summary["overall"]
    out: dict[str, list[dict[str, Any]]] = {}
    for group, stats in groups.items():
        best = best_baseline({m: s["mean"] for m, s in stats.items()})
        entries = []
        for method, against in COMPARISONS:
            other = against or best
            if method not in stats or other is None or other not in stats:
                continue
            entries.append(
                {
                    "method": method,
                    "against": other,
                    "against_is": "best baseline" if against is None else "control",
                    **paired_difference(stats[method], stats[other]),
                }
            )
        if entries:
            out[group] = entries
    return out


def _signed(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.4f}"


def render_significance(result: Mapping[str, list[dict[str, Any]]]) -> str:
    """Markdown table of :func:`significance`."""
    lines = [f"## Paired differences over seeds, {LEVEL:.0%} bootstrap confidence interval", ""]
    if not result:
        return "\n".join(lines + ["No meta-learning column beside a baseline (or control) to compare."]) + "\n"
    lines += ["| Dataset | Difference of test GM | seeds | per seed | mean | 95% CI |", "|---|---|---|---|---|---|"]
    for group, entries in result.items():
        for i, e in enumerate(entries):
            ci = "n/a (1 seed)" if e["ci95"] is None else f"[{_signed(e['ci95'][0])}, {_signed(e['ci95'][1])}]"
            what = f"{e['method']} − {e['against']}" + (
                " (best baseline)" if e["against_is"] == "best baseline" else ""
            )
            per_seed = ", ".join(f"{_signed(d)}" for d in e["differences"])
            lines.append(
                f"| {group if i == 0 else ''} | {what} | {e['n']} | {per_seed} | {_signed(e['mean'])} | {ci} |"
            )
    control = "; ".join(
        f"{c} = {t} trained from scratch for as many epochs as {s}'s best model received along its lineage"
        for c, (t, s) in CONTROL_METHODS.items()
    )
    lines += [
        "",
        f"Per seed: the difference of the two columns' test geometric means for that seed (Overall: of the "
        f"seed's mean over datasets). CI: percentile bootstrap of the mean over seeds, {RESAMPLES} resamples, "
        f"seed {BOOTSTRAP_SEED}; an interval that excludes 0 says the sign holds beyond seed-to-seed noise. "
        f"Best baseline: the baseline with the highest mean GM on that row. Control: {control}.",
    ]
    return "\n".join(lines) + "\n"
