"""Strategy registry: ``get("gradnorm", tasks=config.tasks, alpha=1.5)``.

One strategy per module; each module registers its class with :func:`register`. Options
given on the command line as ``key=value`` strings are parsed by :func:`parse_options`
against the strategy's keyword-only constructor arguments, so a typo is an error that names
the option and lists the valid ones.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pydantic
import yaml

from taskweight.classes import DEFAULT_TASKS
from taskweight.errors import ConfigError
from taskweight.weighting.base import WeightingStrategy

_REGISTRY: dict[str, type[WeightingStrategy]] = {}
S = TypeVar("S", bound=type[WeightingStrategy])


def register(name: str, *, title: str) -> Callable[[S], S]:
    """Class decorator: make ``get(name)`` build this strategy; ``title`` is its name in tables and plots."""

    def decorate(cls: S) -> S:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"weighting strategy {name!r} is already registered")
        cls.name = name
        cls.title = title
        _REGISTRY[name] = cls
        return cls

    return decorate


class UnknownStrategyError(ConfigError, KeyError):
    """No strategy is registered under the name asked (a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def available() -> list[str]:
    """Registered strategy names: the paper's Table II order, PCGrad and MGDA, the field's, then the rest."""
    order = [
        "equal",
        "handcrafted",
        "dynamic_scaling",
        "uncertainty",
        "gradnorm",
        "geometric",
        "weight_learning",
        "static",
        "async",
        "pcgrad",
        "mgda",
        "dwa",
        "rlw",
        "imtl_l",
        "famo",
        "upgrad",
        "imtl_g",
        "aligned_mtl",
        "dualproj",
        "config",
        "gradvac",
        "graddrop",
        "fairgrad",
        "cagrad",
        "nash_mtl",
        "sdmgrad",
        "db_mtl",
        "moco",
        "stch",
    ]
    return [n for n in order if n in _REGISTRY] + sorted(n for n in _REGISTRY if n not in order)


def strategy_class(name: str) -> type[WeightingStrategy]:
    """The class registered under ``name`` (KeyError listing the names otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategyError(
            f"unknown weighting strategy {name!r}; available: {', '.join(available())}"
        ) from None


def option_names(name: str) -> list[str]:
    """The keyword options ``get(name, ...)`` accepts."""
    sig = inspect.signature(strategy_class(name).__init__)
    return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def option_types(name: str) -> dict[str, Any]:
    """Each keyword option's annotated type (``Any`` where the constructor gives none)."""
    cls = strategy_class(name)
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    return {option: hints.get(option, Any) for option in option_names(name)}


def option_details(name: str) -> list[tuple[str, str, Any]]:
    """(option, expected type in words, default) for each keyword option of strategy ``name``."""
    params = inspect.signature(strategy_class(name).__init__).parameters
    types = option_types(name)
    return [(option, _type_name(types[option]), params[option].default) for option in option_names(name)]


def validate_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``options`` of strategy ``name`` by name and type (pydantic, lax: ``1`` is a valid float).

    Returns the validated values. Raises :class:`ConfigError` (a ``ValueError``) naming the
    strategy, the option, the expected type and the value given. Ranges are the
    constructors' business (they raise naming the option); :func:`get` runs both.
    """
    valid = option_names(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"strategy {name!r} has no option(s) {', '.join(unknown)}; valid options: {', '.join(valid) or 'none'}"
        )
    types = option_types(name)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        try:
            checked[key] = _adapter(types[key]).validate_python(value)
        except pydantic.ValidationError:
            raise ConfigError(
                f"strategy {name!r}: option {key!r} expects {_type_name(types[key])}, got {value!r}"
            ) from None
    return checked


def get(name: str, tasks: Sequence[str] = DEFAULT_TASKS, **options: Any) -> WeightingStrategy:
    """Build the strategy ``name`` for ``tasks`` with its keyword ``options``.

    Options are checked by :func:`validate_options`, then by the constructor (ranges); either
    failure is a :class:`ConfigError` naming the strategy and the option.
    """
    cls = strategy_class(name)
    checked = validate_options(name, options)
    try:
        return cls(tuple(tasks), **checked)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from None


@functools.cache
def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def _type_name(annotation: Any) -> str:
    """``Mapping[str, float] | Sequence[float] | None`` → ``a mapping task: number, a list of numbers or nothing``."""
    if annotation is Any:
        return "any value"
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args]
        return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    if origin is typing.Annotated:
        return _type_name(args[0])
    if annotation is type(None):
        return "nothing (null)"
    simple = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    if annotation in simple:
        return simple[annotation]
    if origin in (Mapping, dict, collections.abc.Mapping):
        return f"a mapping task: {_type_name(args[1]).removeprefix('a ').removeprefix('an ')}" if args else "a mapping"
    if origin in (Sequence, list, tuple, collections.abc.Sequence):
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    return str(annotation)


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
            raise ConfigError(f"method option {pair!r} is not key=value")
        key, value = pair.split("=", 1)
        key = key.strip()
        if key not in valid:
            raise ConfigError(f"strategy {name!r} has no option {key!r}; valid options: {', '.join(valid) or 'none'}")
        try:
            options[key] = _parse_value(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value of method option {key!r}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"method option {key!r}: {exc}") from None
    return validate_options(name, options)
