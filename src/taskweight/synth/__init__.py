"""Procedural driving scenes with KITTI detection labels and Cityscapes-id semantic masks.

- :func:`render_scene` renders one deterministic scene (image, label-id mask, KITTI objects);
- :func:`generate_dataset` (:mod:`.writers`) writes a whole train/val/test set in a real layout:
  KITTI (preset ``synth-kitti``, :mod:`.kitti_writer`: ``training/image_2``, ``training/label_2``,
  ``training/semantic``, ``splits/*.txt``), Cityscapes (``synth-cityscapes``, :mod:`.cityscapes_writer`)
  or WoodScape through an equidistant fisheye lens (``synth-woodscape``, :mod:`.woodscape_writer`,
  :mod:`.fisheye`).
"""

from taskweight.synth.kitti_writer import label_kinds, write_scene
from taskweight.synth.scene import (
    DEFAULT_SIZE,
    KITTI_SIZE,
    KITTI_TYPES,
    SPLIT_IDS,
    Scene,
    SceneObject,
    focal_length,
    min_box_height,
    render_scene,
)
from taskweight.synth.writers import PRESETS, check_generator_options, generate_dataset

__all__ = [
    "DEFAULT_SIZE",
    "KITTI_SIZE",
    "KITTI_TYPES",
    "PRESETS",
    "check_generator_options",
    "SPLIT_IDS",
    "Scene",
    "SceneObject",
    "focal_length",
    "generate_dataset",
    "label_kinds",
    "min_box_height",
    "render_scene",
    "write_scene",
]
