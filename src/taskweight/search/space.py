"""Search spaces: numeric, integer and categorical genes, and the task-weight space (§IV-C/D).

A *gene* is one variable of the search. Genes are stored in their *internal* value:

- :class:`NumericGene` — a float in ``[low, high]``; with ``log=True`` the internal value is
  the exponent ``x`` with ``10**x ∈ [low, high]`` (the paper's ``w'_τ = 10^{w_τ}``), so the
  optimiser works on a logarithmic scale.
- :class:`IntegerGene` — a numeric gene whose value is rounded to the nearest integer when
  decoded (the paper's async frequency: "a numeric variable in the range of 1 to 10,
  followed by a rounding operation").
- :class:`CategoricalGene` — one of a fixed tuple of choices.

Optimisers see numeric and integer genes through the unit cube: ``to_unit`` maps each
numeric gene's internal range linearly to ``[0, 1]`` ("normalised gene space"), and
categorical genes as an index into their choices.

:func:`task_weight_space` builds the paper's space: one log-scale weight gene per task and,
optionally, one integer frequency gene per task; :meth:`TaskWeightSpace.decode` turns genes
into ``{"weights": {...normalised, sums to 1...}, "raw_weights": {...}, "frequencies":
{...}, "genes": {...}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskweight.classes import DEFAULT_TASKS

GeneValue = float | int | str | bool


@dataclass(frozen=True)
class NumericGene:
    """A float gene in ``[low, high]`` (``log=True``: internal value is ``log10`` of it)."""

    name: str
    low: float
    high: float
    log: bool = False

    kind = "numeric"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(
                f"gene {self.name!r}: bounds must be finite with low < high, got [{self.low}, {self.high}]"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"gene {self.name!r}: a log-scale gene needs low > 0, got {self.low}")

    @property
    def bounds(self) -> tuple[float, float]:
        """Bounds of the internal value (exponents for a log-scale gene)."""
        if self.log:
            return math.log10(self.low), math.log10(self.high)
        return float(self.low), float(self.high)

    def clip(self, internal: float) -> float:
        lo, hi = self.bounds
        return float(min(max(internal, lo), hi))

    def to_unit(self, internal: float) -> float:
        lo, hi = self.bounds
        return (float(internal) - lo) / (hi - lo)

    def from_unit(self, unit: float) -> float:
        lo, hi = self.bounds
        return self.clip(lo + float(unit) * (hi - lo))

    def value(self, internal: float) -> float:
        """The decoded value (``10**x`` for a log-scale gene), within ``[low, high]``."""
        x = self.clip(internal)
        if self.log:
            return float(min(max(10.0**x, self.low), self.high))
        return x

    def effective_unit(self, internal: float) -> float:
        """Unit coordinate of what the gene decodes to (rounding included for integers)."""
        return self.to_unit(self.clip(internal))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class IntegerGene(NumericGene):
    """A numeric gene rounded (half up) to an integer when decoded."""

    kind = "integer"

    def value(self, internal: float) -> int:
        x = super().value(internal)
        rounded = int(math.floor(x + 0.5))
        return int(min(max(rounded, math.ceil(self.low)), math.floor(self.high)))

    def effective_unit(self, internal: float) -> float:
        v = self.value(internal)
        return self.to_unit(math.log10(v) if self.log else v)


@dataclass(frozen=True)
class CategoricalGene:
    """One of ``choices`` (JSON scalars)."""

    name: str
    choices: tuple[GeneValue, ...]

    kind = "categorical"

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ValueError(f"gene {self.name!r}: needs at least one choice")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"gene {self.name!r}: duplicate choices {list(self.choices)}")

    def index(self, value: GeneValue) -> int:
        try:
            return self.choices.index(value)
        except ValueError:
            raise ValueError(f"gene {self.name!r}: {value!r} is not one of {list(self.choices)}") from None

    def value(self, internal: GeneValue) -> GeneValue:
        self.index(internal)
        return internal

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "choices": list(self.choices)}


Gene = NumericGene | IntegerGene | CategoricalGene


class SearchSpace:
    """An ordered set of genes with sampling, unit-cube mapping and decoding.

    Subclasses override :meth:`decode` to turn gene values into a configuration; the base
    decode returns ``{"values": {name: decoded value}, "genes": {name: internal value}}``.
    """

    def __init__(self, genes: Sequence[Gene]) -> None:
        if not genes:
            raise ValueError("a search space needs at least one gene")
        names = [g.name for g in genes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate gene names in {names}")
        self.genes: tuple[Gene, ...] = tuple(genes)
        self.numeric: tuple[NumericGene, ...] = tuple(g for g in genes if isinstance(g, NumericGene))
        self.categorical: tuple[CategoricalGene, ...] = tuple(g for g in genes if isinstance(g, CategoricalGene))

    # ------------------------------------------------------------------ basics
    @property
    def names(self) -> list[str]:
        return [g.name for g in self.genes]

    @property
    def n_numeric(self) -> int:
        return len(self.numeric)

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "genes": [g.describe() for g in self.genes]}

    def sample(self, rng: np.random.Generator) -> dict[str, GeneValue]:
        """Uniform sample: numeric genes uniform in their internal bounds, categories uniform."""
        unit = rng.random(self.n_numeric)
        cats = [int(rng.integers(len(g.choices))) for g in self.categorical]
        return self.from_unit(unit, cats)

    def validate(self, genes: Mapping[str, Any]) -> dict[str, GeneValue]:
        """Check names and bounds; return the genes in space order (numeric genes clipped)."""
        missing = [n for n in self.names if n not in genes]
        extra = [n for n in genes if n not in self.names]
        if missing or extra:
            raise ValueError(f"genes do not match the space: missing {missing}, unexpected {extra}")
        out: dict[str, GeneValue] = {}
        for g in self.genes:
            if isinstance(g, NumericGene):
                out[g.name] = g.clip(float(genes[g.name]))
            else:
                out[g.name] = g.value(genes[g.name])
        return out

    # ------------------------------------------------------------ unit mapping
    def to_unit(self, genes: Mapping[str, Any]) -> tuple[np.ndarray, list[int]]:
        """Numeric genes as a vector in ``[0, 1]^n`` and categorical genes as choice indices."""
        unit = np.array([g.to_unit(float(genes[g.name])) for g in self.numeric], dtype=float)
        cats = [g.index(genes[g.name]) for g in self.categorical]
        return unit, cats

    def from_unit(self, unit: Sequence[float] | np.ndarray, cats: Sequence[int] = ()) -> dict[str, GeneValue]:
        unit = np.clip(np.asarray(unit, dtype=float), 0.0, 1.0)
        by_name: dict[str, GeneValue] = {g.name: g.from_unit(u) for g, u in zip(self.numeric, unit, strict=True)}
        by_name.update({g.name: g.choices[int(i)] for g, i in zip(self.categorical, cats, strict=True)})
        return {n: by_name[n] for n in self.names}

    def effective_vector(self, genes: Mapping[str, Any]) -> tuple[np.ndarray, list[int]]:
        """Like :meth:`to_unit` but of what the genes decode to (integers rounded)."""
        unit = np.array([g.effective_unit(float(genes[g.name])) for g in self.numeric], dtype=float)
        cats = [g.index(genes[g.name]) for g in self.categorical]
        return unit, cats

    def distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Euclidean distance in normalised gene space between what ``a`` and ``b`` decode to.

        Numeric genes count in unit-cube coordinates (integers after rounding); each
        categorical gene that differs adds 1 (the width of the unit interval).
        """
        ua, ca = self.effective_vector(a)
        ub, cb = self.effective_vector(b)
        cat = sum(1.0 for x, y in zip(ca, cb, strict=True) if x != y)
        return float(math.sqrt(float(np.sum((ua - ub) ** 2)) + cat))

    # ---------------------------------------------------------------- decoding
    def values(self, genes: Mapping[str, Any]) -> dict[str, GeneValue]:
        """Decoded value of every gene (``10**x``, rounded integers, categories)."""
        return {g.name: g.value(genes[g.name]) for g in self.genes}

    def decode(self, genes: Mapping[str, Any]) -> dict[str, Any]:
        return {"values": self.values(genes), "genes": {n: genes[n] for n in self.names}}


class TaskWeightSpace(SearchSpace):
    """The paper's space: a log-scale weight per task and, optionally, an async frequency."""

    WEIGHT_PREFIX = "log10_w_"
    FREQUENCY_PREFIX = "freq_"

    def __init__(self, genes: Sequence[Gene], tasks: Sequence[str], async_frequencies: bool) -> None:
        super().__init__(genes)
        self.tasks = tuple(tasks)
        self.async_frequencies = async_frequencies

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tasks": list(self.tasks), "async_frequencies": self.async_frequencies}

    def decode(self, genes: Mapping[str, Any]) -> dict[str, Any]:
        values = self.values(genes)
        raw = {t: float(values[self.WEIGHT_PREFIX + t]) for t in self.tasks}
        total = sum(raw.values())
        config: dict[str, Any] = {"weights": {t: raw[t] / total for t in self.tasks}}
        if self.async_frequencies:
            config["frequencies"] = {t: int(values[self.FREQUENCY_PREFIX + t]) for t in self.tasks}
        config["raw_weights"] = raw
        config["genes"] = {n: genes[n] for n in self.names}
        return config


def task_weight_space(
    tasks: Sequence[str] = DEFAULT_TASKS,
    min_weight: Mapping[str, float] | float | None = None,
    max_weight: Mapping[str, float] | float | None = None,
    *,
    async_frequencies: bool = False,
    max_frequency: int = 10,
) -> TaskWeightSpace:
    """The meta-learning space of paper §IV-C (and §IV-D with ``async_frequencies``).

    For every task τ a numeric gene ``log10_w_τ = x_τ`` with ``w'_τ = 10^{x_τ} ∈ [min_τ,
    max_τ]`` (defaults: ``min = 0.1`` for every task, ``max_det = 100``, ``max_seg = 1000``
    and 100 for any other task, paper §V-A); decoded weights are ``w̄_τ = w'_τ / Σ_j w'_j``.
    With ``async_frequencies`` also an integer gene ``freq_τ = ν_τ ∈ [1, max_frequency]``
    (numeric, rounded at decode).
    """
    tasks = tuple(tasks)
    if len(tasks) < 1 or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be distinct and non-empty, got {list(tasks)}")
    default_max = {"det": 100.0, "seg": 1000.0}

    def pick(spec: Mapping[str, float] | float | None, task: str, default: float) -> float:
        if spec is None:
            return default
        if isinstance(spec, Mapping):
            return float(spec.get(task, default))
        return float(spec)

    genes: list[Gene] = []
    for t in tasks:
        genes.append(
            NumericGene(
                TaskWeightSpace.WEIGHT_PREFIX + t,
                pick(min_weight, t, 0.1),
                pick(max_weight, t, default_max.get(t, 100.0)),
                log=True,
            )
        )
    if async_frequencies:
        if max_frequency < 2:
            raise ValueError(f"max_frequency must be >= 2, got {max_frequency}")
        genes.extend(IntegerGene(TaskWeightSpace.FREQUENCY_PREFIX + t, 1, max_frequency) for t in tasks)
    return TaskWeightSpace(genes, tasks, async_frequencies)
