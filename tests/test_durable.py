"""Atomic writes keep the permissions a plain write would give, and leave nothing behind on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskweight.durable import FolderBusyError, FolderLock, atomic_write, atomic_write_text


def test_new_file_gets_the_mode_of_a_plain_write(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    atomic_write_text(tmp_path / "atomic.json", "{}")
    assert (tmp_path / "atomic.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_a_failed_write_keeps_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_text("old")

    def boom(handle: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_folder_lock_refuses_a_second_holder_and_frees_on_exit(tmp_path: Path) -> None:
    with FolderLock(tmp_path, "run folder"), pytest.raises(FolderBusyError, match=f"PID {os.getpid()}"):
        FolderLock(tmp_path, "run folder").__enter__()
    with FolderLock(tmp_path, "run folder"):
        pass
