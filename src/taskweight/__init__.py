"""taskweight: dynamic task weighting for multi-task perception networks.

Reproduces and extends Leang et al., "Dynamic Task Weighting Methods for Multi-task
Networks in Autonomous Driving Systems" (ITSC 2020).

Data flow: config -> data -> model -> weighting -> trainer -> metrics -> report.
"""

__version__ = "0.1.0"
