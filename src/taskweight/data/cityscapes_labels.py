"""The Cityscapes label table (name, labelId, hasInstances), as in ``cityscapesscripts.helpers.labels``."""

from __future__ import annotations

from typing import Final

LABELS: Final[tuple[tuple[str, int, bool], ...]] = (
    ("unlabeled", 0, False),
    ("ego vehicle", 1, False),
    ("rectification border", 2, False),
    ("out of roi", 3, False),
    ("static", 4, False),
    ("dynamic", 5, False),
    ("ground", 6, False),
    ("road", 7, False),
    ("sidewalk", 8, False),
    ("parking", 9, False),
    ("rail track", 10, False),
    ("building", 11, False),
    ("wall", 12, False),
    ("fence", 13, False),
    ("guard rail", 14, False),
    ("bridge", 15, False),
    ("tunnel", 16, False),
    ("pole", 17, False),
    ("polegroup", 18, False),
    ("traffic light", 19, False),
    ("traffic sign", 20, False),
    ("vegetation", 21, False),
    ("terrain", 22, False),
    ("sky", 23, False),
    ("person", 24, True),
    ("rider", 25, True),
    ("car", 26, True),
    ("truck", 27, True),
    ("bus", 28, True),
    ("caravan", 29, True),
    ("trailer", 30, True),
    ("train", 31, True),
    ("motorcycle", 32, True),
    ("bicycle", 33, True),
    ("license plate", -1, True),
)
NAME2ID: Final[dict[str, int]] = {name: i for name, i, _ in LABELS}
ID2NAME: Final[dict[int, str]] = {i: name for name, i, _ in LABELS if i >= 0}
HAS_INSTANCES: Final[frozenset[str]] = frozenset(name for name, _, inst in LABELS if inst)
MAX_ID: Final[int] = 33
INSTANCE_OFFSET: Final[int] = 1000
"""instanceIds pixels of an instance are ``labelId * 1000 + k`` (k = 0, 1, ... per class)."""


def resolve_label(label: str) -> tuple[str, bool] | None:
    """(class name, is a crowd region) of a polygon label; ``None`` for an unknown label.

    ``cargroup`` is a crowd of cars; ``polegroup`` is a class of its own (id 18).
    """
    if label in NAME2ID:
        return label, False
    if label.endswith("group") and label[: -len("group")] in NAME2ID:
        return label[: -len("group")], True
    return None
