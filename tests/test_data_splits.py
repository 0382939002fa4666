"""The one split resolver of every format (``taskweight.data.splits``): split files win, generated
splits otherwise, and an unknown split names the missing file and the available splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskweight.data.splits import SplitEntry, seeded_split, split_entries, stratified_split
from taskweight.errors import DataFormatError

NAMES = [f"n{i}" for i in range(10)]


def _generate(split: str) -> list[str]:
    return seeded_split(NAMES, split, 0)


def test_generated_splits_without_split_files(tmp_path: Path) -> None:
    parts = {s: split_entries(tmp_path, s, _generate) for s in ("train", "val", "test", "all")}
    assert [len(parts[s]) for s in ("train", "val", "test", "all")] == [6, 2, 2, 10]
    assert all(e.source is None and e.line is None for es in parts.values() for e in es)
    assert sorted(e.name for s in ("train", "val", "test") for e in parts[s]) == NAMES
    assert [e.name for e in parts["train"]] == sorted(e.name for e in parts["train"])
    with pytest.raises(DataFormatError) as info:
        split_entries(tmp_path, "trainval", _generate)
    assert info.value.path == tmp_path / "splits/trainval.txt"
    assert info.value.reason == "split file not found (available splits: ['train', 'val', 'test', 'all'])"


def test_split_files_win_and_name_their_lines(tmp_path: Path) -> None:
    (tmp_path / "splits").mkdir()
    mine = tmp_path / "splits/mine.txt"
    mine.write_text("# a comment\nn3\n\nn1.png\n")
    assert split_entries(tmp_path, "mine", _generate) == [SplitEntry("n3", mine, 2), SplitEntry("n1", mine, 4)]
    # a dataset with split files uses them only: of the generated splits "all" is left ...
    with pytest.raises(DataFormatError, match=r"split file not found \(available splits: \['mine', 'all'\]\)"):
        split_entries(tmp_path, "train", _generate)
    assert [e.name for e in split_entries(tmp_path, "all", _generate)] == NAMES
    # ... unless the format's generated splits stand beside them (Cityscapes' paper / official splits)
    both = split_entries(tmp_path, "train", _generate, split_files_replace_generated=False)
    assert [e.name for e in both] == _generate("train")
    with pytest.raises(DataFormatError, match=r"\['mine', 'train', 'val', 'test', 'all'\]"):
        split_entries(tmp_path, "trainval", _generate, split_files_replace_generated=False)
    # a split file of a generated split's name wins over generating it
    (tmp_path / "splits/train.txt").write_text("n9\n")
    assert split_entries(tmp_path, "train", _generate) == [SplitEntry("n9", tmp_path / "splits/train.txt", 1)]


def test_bad_split_files_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/dup.txt").write_text("n1\nn2\nn1.png\n")
    with pytest.raises(DataFormatError, match=r"'n1' is listed twice \(first on line 1\)") as info:
        split_entries(tmp_path, "dup", _generate)
    assert info.value.line == 3
    (tmp_path / "splits/two.txt").write_text("n1 n2\n")
    with pytest.raises(DataFormatError, match="one image name per line") as info:
        split_entries(tmp_path, "two", _generate)
    assert info.value.line == 1
    (tmp_path / "splits/empty.txt").write_text("# nothing\n")
    with pytest.raises(DataFormatError, match="lists no images"):
        split_entries(tmp_path, "empty", _generate)


def test_stratified_split_cuts_every_group() -> None:
    groups = {"det": [f"d{i}" for i in range(10)], "seg": [f"s{i}" for i in range(5)]}
    parts = {s: stratified_split(groups, s, 0) for s in ("train", "val", "test")}
    assert [sum(n.startswith("s") for n in parts[s]) for s in parts] == [3, 1, 1]
    assert [sum(n.startswith("d") for n in parts[s]) for s in parts] == [6, 2, 2]
    assert parts["train"] == sorted(seeded_split(groups["det"], "train") + seeded_split(groups["seg"], "train"))
    assert stratified_split(groups, "all") == sorted(groups["det"] + groups["seg"])
