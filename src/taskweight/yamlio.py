"""Reading the YAML files a user writes: ``yaml.safe_load`` that rejects duplicate keys.

PyYAML's ``safe_load`` silently keeps the last of two equal keys in one mapping (``epochs:
3`` ... ``epochs: 30``), so a typo or a pasted block changes a run without a word.
:func:`load_yaml` is ``safe_load`` otherwise (same types, same tags, merge keys ``<<``
allowed: an explicit key may override a merged one) but raises :class:`DuplicateKeyError`
naming the source, the line of the second occurrence and the key.  Every YAML file of the
package and of its users (configs, bench presets, class mappings) is read through it.

Errors stay :class:`yaml.YAMLError` (so ``except yaml.YAMLError`` keeps working);
:func:`yaml_error_location` turns any of them into (line, short message) for the callers'
own error types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping; ``line`` is the second occurrence (1-based)."""

    def __init__(self, source: str, key: Any, first: yaml.Mark, second: yaml.Mark) -> None:
        self.source = source
        self.key = key
        self.line = second.line + 1
        self.first_line = first.line + 1
        super().__init__(None, None, f"duplicate key {key!r} (first given on line {self.first_line})", second)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.problem}"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings reject a key given twice (see the module docstring)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _value in node.value:
                if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: the base constructor reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(self.name, key, first, key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(path_or_text: str | Path, source: str | None = None) -> Any:
    """The object of a YAML document: a :class:`~pathlib.Path` is read as a UTF-8 file, a ``str``
    is the YAML text itself.  ``source`` names it in errors (default: the path, or ``<string>``).

    Same result as ``yaml.safe_load`` except that a key given twice in one mapping raises
    :class:`DuplicateKeyError`; syntax errors raise ``yaml.YAMLError`` as before and a file
    that cannot be read raises ``OSError`` / ``UnicodeDecodeError``.
    """
    if isinstance(path_or_text, Path):
        text = path_or_text.read_text(encoding="utf-8")
        source = source or str(path_or_text)
    else:
        text = path_or_text
        source = source or "<string>"
    loader = UniqueKeyLoader(text)
    loader.name = source  # marks (and so every error) name the source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_error_location(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """(1-based line or None, message without the location) of a YAML error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem is None:
        message = str(exc)
    elif context and not isinstance(exc, DuplicateKeyError):
        message = f"{problem} ({context})"
    else:
        message = str(problem)
    return (mark.line + 1 if mark is not None else None), message
