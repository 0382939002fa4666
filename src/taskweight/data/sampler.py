"""The order in which a training split is visited, epoch by epoch, and the seed of each visit's
random augmentation.

One loader serves a whole run: :class:`EpochSampler` draws each epoch's order from (seed, epoch)
alone (``set_epoch``), so a resumed run visits the samples in the same order, and loader worker
processes can stay alive from one epoch to the next (``persistent_workers``).

Where the flips are drawn depends on where the items are made:

- in the training process (``num_workers: 0``), from torch's global generator, in visiting order:
  the run's seed and a resumed run's saved generator state reproduce them;
- in worker processes, a worker's generator would depend on which items that worker made before,
  so the sampler hands each visit a :class:`SampleKey` whose ``seed`` is a function of
  (seed, epoch, index) and the dataset draws the flip from a generator seeded with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


@dataclass(frozen=True)
class SampleKey:
    """A dataset index with the seed of its augmentation draws for this visit."""

    index: int
    seed: int


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of an epoch's order: seed·1,000,003 + epoch."""
    return seed * 1_000_003 + epoch


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one visit's augmentation: (seed·1,000,003 + epoch)·1,000,033 + index, modulo 2⁶³."""
    return (epoch_seed(seed, epoch) * 1_000_033 + index) % (1 << 63)


class EpochSampler(Sampler[int | SampleKey]):
    """Every index of a split once per epoch, shuffled by a generator seeded with
    :func:`epoch_seed` (or in order without ``shuffle``).

    Before the permutation the generator gives one int64 draw, the draw a ``DataLoader`` built per
    epoch with that generator took for its workers' base seed: the orders are those of earlier
    versions, which built such a loader every epoch. With ``keyed`` the sampler yields
    :class:`SampleKey` (index, :func:`augmentation_seed`) instead of plain indices.
    """

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, keyed: bool = False, epoch: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.keyed = keyed
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Visit in the order of ``epoch`` from the next iteration on."""
        self.epoch = epoch

    def order(self) -> list[int]:
        """This epoch's indices in visiting order."""
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # DataLoader's base-seed draw (see above)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int | SampleKey]:
        for index in self.order():
            yield SampleKey(index, augmentation_seed(self.seed, self.epoch, index)) if self.keyed else index

    def __len__(self) -> int:
        return self.size
