"""taskweight: dynamic task weighting for multi-task perception networks.

Reproduces and extends Leang et al., "Dynamic Task Weighting Methods for Multi-task
Networks in Autonomous Driving Systems" (ITSC 2020).

Data flow: config -> data -> model -> weighting -> trainer -> metrics -> report.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("taskweight")  # the one place the version is written: pyproject.toml
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"
