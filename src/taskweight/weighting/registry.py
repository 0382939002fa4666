"""Strategy registry: ``get("gradnorm", tasks=("det", "seg"), alpha=1.5)``.

One strategy per module; each module registers its class with :func:`register`. Options
given on the command line as ``key=value`` strings are parsed by :func:`parse_options`
against the strategy's keyword-only constructor arguments, so a typo is an error that names
the option and lists the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import yaml

from taskweight.weighting.base import WeightingStrategy

_REGISTRY: dict[str, type[WeightingStrategy]] = {}
S = TypeVar("S", bound=type[WeightingStrategy])


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make ``get(name)`` build this strategy."""

    def decorate(cls: S) -> S:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"weighting strategy {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available() -> list[str]:
    """Registered strategy names, in the paper's Table II order, then the rest."""
    order = ["equal", "handcrafted", "dynamic_scaling", "uncertainty", "gradnorm", "geometric",
             "weight_learning", "static", "async", "pcgrad", "mgda"]
    return [n for n in order if n in _REGISTRY] + sorted(n for n in _REGISTRY if n not in order)


def strategy_class(name: str) -> type[WeightingStrategy]:
    """The class registered under ``name`` (KeyError listing the names otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown weighting strategy {name!r}; available: {', '.join(available())}") from None


def option_names(name: str) -> list[str]:
    """The keyword options ``get(name, ...)`` accepts."""
    sig = inspect.signature(strategy_class(name).__init__)
    return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def get(name: str, tasks: Sequence[str] = ("det", "seg"), **options: Any) -> WeightingStrategy:
    """Build the strategy ``name`` for ``tasks`` with its keyword ``options``."""
    cls = strategy_class(name)
    valid = option_names(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no option(s) {', '.join(unknown)}; valid options: {', '.join(valid) or 'none'}"
        )
    return cls(tuple(tasks), **options)


def _parse_value(text: str) -> Any:
    """``det:1,seg:70`` → dict; anything else through YAML (numbers, booleans, lists)."""
    text = text.strip()
    if ":" in text and not text.startswith(("{", "[")):
        out: dict[str, Any] = {}
        for part in text.split(","):
            if ":" not in part:
                raise ValueError(f"expected task:value pairs separated by commas, got {text!r}")
            key, value = part.split(":", 1)
            out[key.strip()] = yaml.safe_load(value.strip())
        return out
    return yaml.safe_load(text)


def parse_options(name: str, pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``["alpha=1.5", "weights=det:1,seg:70"]`` for strategy ``name``.

    Values are YAML scalars/lists/mappings; ``task:value,task:value`` is a mapping.
    """
    valid = option_names(name)
    options: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"method option {pair!r} is not key=value")
        key, value = pair.split("=", 1)
        key = key.strip()
        if key not in valid:
            raise ValueError(f"strategy {name!r} has no option {key!r}; valid options: {', '.join(valid) or 'none'}")
        try:
            options[key] = _parse_value(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"cannot parse the value of method option {key!r}: {exc}") from None
    return options
