"""Files that survive a kill: atomic replacement and a folder lock.

Every file a later step reads back (checkpoints, ``metrics.json``, ``cell.json``, results,
journals rewritten on resume, ``history.csv``) is written through :func:`atomic_write`:
the bytes go to a temporary file in the same folder, are flushed and ``fsync``-ed, and the
temporary file is renamed over the target. ``rename`` within one file system is atomic on
POSIX, so a reader (or a resumed run) sees either the old complete file or the new complete
file, never a torn one, whatever instant the process is killed at.

:class:`FolderLock` stops two processes from writing one run, search or bench folder at
once (``fcntl.flock`` on ``FOLDER/.lock``; the kernel drops the lock when the holder dies,
so a killed run never leaves a stale lock behind).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from taskweight.errors import TaskweightError
from taskweight.failpoints import failpoint

LOCK_FILE = ".lock"


class FolderBusyError(TaskweightError):
    """Another live process holds the folder's lock."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _default_mode() -> int:
    """0666 less the process umask: the mode ``open(path, "w")`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync it, rename it to ``path``.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content and the
    temporary file is removed (or, after a kill, left as ``.NAME.*.tmp``, which nothing reads).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the file the mode a plain open() would (or the replaced file's)
    os.fchmod(fd, target.stat().st_mode & 0o777 if target.exists() else _default_mode())
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        failpoint(f"write:{target.name}")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` by ``text`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def atomic_text_writer(path: str | Path, newline: str | None = None) -> Iterator[IO[str]]:
    """A text handle whose content replaces ``path`` atomically when the block ends without error.

    For writers that stream (``csv.writer``): nothing reaches ``path`` if the block raises.
    """
    buffer = io.StringIO(newline=newline)
    yield buffer
    atomic_write_text(path, buffer.getvalue())


class FolderLock:
    """Exclusive lock on a folder for the life of a ``with`` block.

    Raises :class:`FolderBusyError` naming the folder and the holder's PID when another
    live process holds it. The lock file stays behind (empty of meaning once its holder
    exits); the lock itself lives in the kernel.
    """

    def __init__(self, folder: str | Path, what: str = "folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self._handle: IO[str] | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        handle = (self.folder / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FolderBusyError(
                f"{self.folder}: this {self.what} is in use by {holder}; wait for it to finish or use another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.seek(0)
                self._handle.truncate()
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
