"""Shared fixtures: small synthetic KITTI-layout datasets generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskweight.config import TrainConfig, load_config


@pytest.fixture(scope="session")
def tiny_kitti(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24/8/8 synthetic scenes at 64×192 in the real KITTI layout."""
    from taskweight.synth import generate_dataset

    root = tmp_path_factory.mktemp("data") / "tiny-kitti"
    generate_dataset(root, preset="synth-kitti", train=24, val=8, test=8, seed=0, size=(64, 192))
    return root


@pytest.fixture()
def tiny_config(tiny_kitti: Path) -> TrainConfig:
    return load_config("tiny", overrides={"data": {"root": str(tiny_kitti)}, "epochs": 2})
