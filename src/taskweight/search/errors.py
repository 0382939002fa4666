"""Errors of the meta-learning search."""

from __future__ import annotations

from taskweight.errors import TaskweightError


class SearchError(TaskweightError):
    """A search cannot start or go on (bad option, mismatching journal, missing package)."""
