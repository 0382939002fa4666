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


@pytest.fixture(scope="session")
def tiny_kitti_depth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_kitti``'s scenes with their exact depth under ``training/depth`` (KITTI uint16 PNGs)."""
    from taskweight.synth import generate_dataset

    root = tmp_path_factory.mktemp("data") / "tiny-kitti-depth"
    generate_dataset(root, preset="synth-kitti", train=24, val=8, test=8, seed=0, size=(64, 192), depth=True)
    return root


@pytest.fixture()
def tiny_config(tiny_kitti: Path) -> TrainConfig:
    return load_config("tiny", overrides={"data": {"root": str(tiny_kitti)}, "epochs": 2})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_kitti: Path) -> Path:
    """A run folder trained for 2 epochs on ``tiny_kitti`` (fp32): predict, compare, export read it."""
    from taskweight.trainer import Trainer

    config = load_config("tiny", overrides={"data": {"root": str(tiny_kitti)}, "epochs": 2, "precision": "fp32"})
    run = tmp_path_factory.mktemp("runs") / "equal"
    Trainer(config, run, show_progress=False).fit()
    return run


@pytest.fixture(scope="session")
def tiny_depth_run(tmp_path_factory: pytest.TempPathFactory, tiny_kitti_depth: Path) -> Path:
    """A run folder trained for 2 epochs on ``tiny_kitti_depth`` with the three tasks (fp32): predict,
    compare and export read it."""
    from taskweight.trainer import Trainer

    config = load_config(
        "tiny",
        overrides={
            "data": {"root": str(tiny_kitti_depth)},
            "epochs": 2,
            "precision": "fp32",
            "tasks": ["det", "seg", "depth"],
        },
    )
    run = tmp_path_factory.mktemp("runs") / "equal-depth"
    Trainer(config, run, show_progress=False).fit()
    return run
