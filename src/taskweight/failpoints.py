"""Named fail points: kill the process at an exact place, to test that nothing is lost.

Set ``TASKWEIGHT_FAILPOINT=NAME@N`` (comma-separated for several) and the process sends
itself ``SIGKILL`` the N-th time it passes :func:`failpoint` ``(NAME)`` — as abrupt as a
power cut or the out-of-memory killer: no ``finally`` block, no flush, no atexit handler runs.
The kill tests (``tests/faults/test_kill.py``) use it to stop a run during an epoch, during
validation and between a checkpoint's write and its rename, then check that the resumed run
ends bit-identical to an uninterrupted one. Unset (always, outside those tests), a fail
point costs one dictionary lookup.

Points: ``train_step`` (after each optimiser step), ``validation_batch`` (each batch
scored during validation), ``write:FILENAME`` (an atomic write, after the temporary file
is complete and before it replaces ``FILENAME``).
"""

from __future__ import annotations

import os
import signal

ENV = "TASKWEIGHT_FAILPOINT"


def _parse(text: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("@")
        points[name] = int(count or 1)
    return points


_ARMED: dict[str, int] = _parse(os.environ.get(ENV, ""))
_HITS: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Pass fail point ``name``; SIGKILL this process on its armed hit."""
    if not _ARMED or name not in _ARMED:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] == _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)
