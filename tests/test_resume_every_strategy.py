"""Resume for real: every registered strategy, augmentation on, stopped mid-epoch and resumed.

The stop is an exception raised at the trainer's ``train_step`` fail point — the run dies
between two optimiser steps after its epoch-1 checkpoint, like a kill. The resumed run must
equal the uninterrupted one bit for bit: parameters, the strategy's state (its learnable
weights, loss averages, counters, random generator), the best-so-far record, ``best.pt`` and
every row of ``weights.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from taskweight import weighting
from taskweight.config import TrainConfig
from taskweight.trainer import Trainer

OPTIONS: dict[str, dict[str, Any]] = {
    "handcrafted": {"iterations": 2},  # measured over the first 2 steps: its state is set before the stop
    "async": {"frequencies": {"det": 1, "seg": 2}},
    "static": {"weights": {"det": 1.0, "seg": 3.0}},
}


class _Stop(Exception):
    pass


def _config(tiny_config: TrainConfig, method: str) -> TrainConfig:
    data = tiny_config.data.model_copy(update={"augment": True})  # flips drawn from the global RNG
    return tiny_config.model_copy(
        update={
            "epochs": 3,
            "data": data,
            "method": tiny_config.method.model_copy(update={"name": method, "options": OPTIONS.get(method, {})}),
        }
    )


def _stop_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    calls = {"n": 0}

    def failpoint(name: str) -> None:
        if name == "train_step":
            calls["n"] += 1
            if calls["n"] == step:
                raise _Stop

    monkeypatch.setattr("taskweight.trainer.failpoint", failpoint)


def _flatten(state: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(state, dict):
        out: dict[str, Any] = {}
        for key, value in state.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix: state}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("method", weighting.available())
def test_stopped_and_resumed_run_equals_the_uninterrupted_run(
    method: str, tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tiny_config, method)
    reference = Trainer(config, tmp_path / "ref", show_progress=False)
    reference.fit()

    _stop_at_step(monkeypatch, 5)  # tiny: 3 steps an epoch → the second step of epoch 2
    with pytest.raises(_Stop):
        Trainer(config, tmp_path / "cut", show_progress=False).fit()
    monkeypatch.undo()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 1  # stopped inside epoch 2
    resumed = Trainer(config, tmp_path / "cut", show_progress=False)
    resumed.fit(resume=True)

    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), f"{method}: parameter {name}"
    ref_state, cut_state = _flatten(reference.strategy.state_dict()), _flatten(resumed.strategy.state_dict())
    assert ref_state.keys() == cut_state.keys()
    for key in ref_state:
        assert _equal(ref_state[key], cut_state[key]), f"{method}: strategy state {key}"
    assert reference.strategy.current_weights() == resumed.strategy.current_weights()
    assert reference.best == resumed.best and reference.global_step == resumed.global_step == 9
    ref_best = torch.load(tmp_path / "ref" / "best.pt", weights_only=True)
    cut_best = torch.load(tmp_path / "cut" / "best.pt", weights_only=True)
    assert ref_best["epoch"] == cut_best["epoch"]
    assert all(torch.equal(v, cut_best["model"][k]) for k, v in ref_best["model"].items())
    assert (tmp_path / "cut" / "weights.csv").read_bytes() == (tmp_path / "ref" / "weights.csv").read_bytes()


def test_the_stop_really_interrupts_a_stateful_strategy(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison above can fail: a resume that forgets the strategy's state is caught."""
    config = _config(tiny_config, "uncertainty")
    reference = Trainer(config, tmp_path / "ref", show_progress=False)
    reference.fit()
    _stop_at_step(monkeypatch, 5)
    with pytest.raises(_Stop):
        Trainer(config, tmp_path / "cut", show_progress=False).fit()
    monkeypatch.undo()
    forgetful = Trainer(config, tmp_path / "cut", show_progress=False)
    original = forgetful.strategy.load_state_dict
    monkeypatch.setattr(forgetful.strategy, "load_state_dict", lambda state: None)  # the state is not restored
    forgetful.fit(resume=True)
    monkeypatch.setattr(forgetful.strategy, "load_state_dict", original)
    ref_state, got = _flatten(reference.strategy.state_dict()), _flatten(forgetful.strategy.state_dict())
    differs = [k for k, v in ref_state.items() if not _equal(v, got[k])]
    assert differs, "a resume without the strategy state went unnoticed"
