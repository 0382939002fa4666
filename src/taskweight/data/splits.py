"""Which samples make up a split: split files, seeded 60/20/20 splits, and the one resolver of both.

Every format resolves a split the same way (:func:`split_entries`):

1. ``root/splits/{split}.txt``, when it exists, wins: one sample name per line (:func:`read_split_file`);
   each entry remembers the file and line that listed it, so a name without its image is a
   problem naming that line;
2. otherwise, a split the format *generates* (``"all"`` and a seeded ``train``/``val``/``test`` cut of
   every image, or Cityscapes' folders) is built from the files on disk;
3. anything else is a :class:`~taskweight.errors.DataFormatError` naming the missing split file and
   listing the splits that are available.

Seeded splits (:func:`seeded_split`): the names are sorted, permuted with
``numpy.random.default_rng(seed)`` (default seed :data:`DEFAULT_SPLIT_SEED` = 0) and cut
60/20/20 into train/val/test (``round(0.6 n)``, ``round(0.2 n)``, the rest); ``"all"`` is
every name.  The result does not depend on file-system order.  :func:`stratified_split` cuts
each group of names (e.g. KITTI's images with detection labels only, segmentation only, both)
separately, so every split gets its share of each group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskweight.errors import DataFormatError

DEFAULT_SPLIT_SEED = 0
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}
SPLITS = ("train", "val", "test")
SEEDED_SPLITS = (*SPLITS, "all")
"""The splits a seeded scheme generates."""
SPLIT_DIR = "splits"
"""Folder of the split files, under the dataset root (every format)."""


@dataclass(frozen=True)
class SplitEntry:
    """One sample name of a split; ``source`` and ``line`` are the split file that listed it (None
    for a generated split), so a problem of the entry itself can name them."""

    name: str
    source: Path | None = None
    line: int | None = None


# --------------------------------------------------------------------------------- seeded splits
def seeded_split(
    names: Iterable[str], split: str, seed: int = DEFAULT_SPLIT_SEED, fractions: dict[str, float] | None = None
) -> list[str]:
    """Deterministic 60/20/20 (or ``fractions``) train/val/test split of ``names``; sorted."""
    names = sorted(set(names))
    if split == "all":
        return names
    fractions = fractions or SPLIT_FRACTIONS
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: a seeded split has {list(SPLITS)} and 'all'")
    n = len(names)
    perm = np.random.default_rng(int(seed)).permutation(n)
    n_train = int(np.floor(fractions["train"] * n + 0.5))
    n_val = min(n - n_train, int(np.floor(fractions["val"] * n + 0.5)))
    cut = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}[split]
    return sorted(names[int(i)] for i in cut)


def stratified_split(groups: Mapping[Any, Iterable[str]], split: str, seed: int = DEFAULT_SPLIT_SEED) -> list[str]:
    """:func:`seeded_split` of every group separately (groups in sorted key order), merged and sorted."""
    chosen: list[str] = []
    for key in sorted(groups):
        chosen += seeded_split(groups[key], split, seed)
    return sorted(chosen)


# --------------------------------------------------------------------------------- split files
def read_split_file(path: Path) -> list[tuple[str, int]]:
    """(name, line) of a split file: one name per line, ``#`` comments, blank lines ignored;
    a trailing ``.png`` is removed.  A name listed twice is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read split file: {exc}") from None
    out: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if len(token.split()) != 1:
            raise DataFormatError(path, f"expected one image name per line, got {token!r}", line=no)
        name = token[:-4] if token.endswith(".png") else token
        if name in seen:
            raise DataFormatError(path, f"{name!r} is listed twice (first on line {seen[name]})", line=no)
        seen[name] = no
        out.append((name, no))
    if not out:
        raise DataFormatError(path, "split file lists no images")
    return out


def split_files(root: Path) -> list[str]:
    """Names of the splits ``root/splits/*.txt`` defines, sorted."""
    folder = Path(root) / SPLIT_DIR
    return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []


# --------------------------------------------------------------------------------- the resolver
def split_entries(
    root: Path,
    split: str,
    generate: Callable[[str], Iterable[str]],
    *,
    generated: Sequence[str] = SEEDED_SPLITS,
    split_files_replace_generated: bool = True,
) -> list[SplitEntry]:
    """The entries of ``split`` of the dataset at ``root`` (see the module docstring).

    ``generate(split)`` gives the names of a split the format builds from the files on disk (it may
    raise :class:`DataFormatError` about the dataset, e.g. no images at all); ``generated`` lists
    those splits.  With ``split_files_replace_generated`` (KITTI, WoodScape) a dataset that brings
    split files uses them only: of the generated splits, only ``"all"`` is left; without it
    (Cityscapes, whose generated splits are the paper's or the official folders) both coexist.
    Generated splits are sorted by name.
    """
    split_file = Path(root) / SPLIT_DIR / f"{split}.txt"
    if split_file.is_file():
        return [SplitEntry(name, split_file, no) for name, no in read_split_file(split_file)]
    files = split_files(root)
    available = [s for s in generated if s == "all" or not (files and split_files_replace_generated)]
    if split not in available:
        choices = files + [s for s in available if s not in files]
        raise DataFormatError(split_file, f"split file not found (available splits: {choices})")
    return [SplitEntry(name) for name in sorted(generate(split))]
