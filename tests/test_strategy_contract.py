"""One set of assertions for every registered strategy (TorchJD's shared-assertion style).

A toy network (a shared linear encoder, one head per task, positive losses) is trained for a
few steps with each strategy, T = 3 tasks, epochs of 3 steps. Every strategy must: return finite
weights keyed by exactly the tasks present; survive a ``state_dict`` round trip inside an
averaging window and between epochs with identical next steps; compute in float64 after
``.to(torch.float64)``; cope with a batch missing a task; be deterministic given the seeds; and
(gradient aggregations) compute the per-task Jacobian once per step.

The device comes from the environment, as TorchJD's shared assertions take it:
``TASKWEIGHT_TEST_DEVICE=cuda pytest tests/test_strategy_contract.py`` runs the same contract on
a GPU (CPU by default).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
import torch
from torch import nn

from taskweight import weighting
from taskweight.weighting import GradientAggregation, LossWeighting, WeightingStrategy

TASKS = ("a", "b", "c")
OPTIONS: dict[str, dict[str, Any]] = {
    "handcrafted": {"iterations": 2},
    "async": {"frequencies": {"a": 1, "b": 2, "c": 3}},
    "static": {"weights": {"a": 1.0, "b": 2.0, "c": 3.0}},
}
STEPS_PER_EPOCH = 3
DEVICE = torch.device(os.environ.get("TASKWEIGHT_TEST_DEVICE", "cpu"))


class Toy(nn.Module):
    def __init__(self, tasks: tuple[str, ...] = TASKS) -> None:
        super().__init__()
        self.shared = nn.Linear(4, 6)
        self.heads = nn.ModuleDict({t: nn.Linear(6, 1) for t in tasks})

    def losses(self, x: torch.Tensor, y: torch.Tensor, tasks: tuple[str, ...]) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.shared(x))
        scale = {t: 10.0**i for i, t in enumerate(self.heads)}  # badly scaled tasks
        return {t: scale[t] * ((self.heads[t](h).squeeze(1) - y[:, i]) ** 2).mean() + 0.1 for i, t in enumerate(tasks)}


def _batches(n: int, dtype: torch.dtype = torch.float32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(8, 4, generator=g, dtype=dtype).to(DEVICE), torch.randn(8, 3, generator=g, dtype=dtype).to(DEVICE))
        for _ in range(n)
    ]


class Run:
    def __init__(self, name: str, dtype: torch.dtype = torch.float32) -> None:
        torch.manual_seed(0)
        self.model = Toy().to(DEVICE, dtype)
        self.strategy = weighting.get(name, tasks=TASKS, **OPTIONS.get(name, {})).to(DEVICE, dtype)
        self.optimizer = torch.optim.SGD([*self.model.parameters(), *self.strategy.trainable_parameters()], lr=0.01)
        self.step = 0

    def train(self, batches: list, present: tuple[str, ...] = TASKS) -> list[dict[str, torch.Tensor]]:
        seen = []
        for x, y in batches:
            losses = self.model.losses(x, y, present)
            self.optimizer.zero_grad(set_to_none=True)
            used = self.strategy.backward(losses, self.model.shared.parameters(), self.model.shared)
            self.optimizer.step()
            self.strategy.on_step_end()
            self.step += 1
            if self.step % STEPS_PER_EPOCH == 0:
                self.strategy.on_epoch_end()
            seen.append(dict(used))
        return seen

    def params(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.model.parameters()]


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(torch.as_tensor(x[t]), torch.as_tensor(y[t])) for t in x)
        for x, y in zip(a, b, strict=True)
    )


NAMES = weighting.available()


def test_the_contract_is_abstract() -> None:
    with pytest.raises(TypeError):
        WeightingStrategy(TASKS)  # type: ignore[abstract]

    class NoWeights(LossWeighting):
        def current_weights(self) -> dict[str, float]:
            return {}

    with pytest.raises(TypeError, match="weights"):
        NoWeights(TASKS)  # type: ignore[abstract]

    class NoAggregate(GradientAggregation):
        pass

    with pytest.raises(TypeError, match="aggregate"):
        NoAggregate(TASKS)  # type: ignore[abstract]


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_finite_tensors_keyed_by_the_tasks_present(name: str) -> None:
    run = Run(name)
    for used in run.train(_batches(7)):
        assert set(used) == set(TASKS), name
        assert all(isinstance(w, torch.Tensor) and w.dim() == 0 for w in used.values()), name
        assert all(w.device.type == DEVICE.type for w in used.values()), (name, {t: w.device for t, w in used.items()})
        assert all(bool(torch.isfinite(w)) for w in used.values()), name
    current = run.strategy.current_weights()
    assert set(current) == set(TASKS) and all(isinstance(v, float) for v in current.values()), name
    assert all(torch.isfinite(p).all() for p in run.params()), name


@pytest.mark.parametrize("stop", [1, 4])
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_mid_training_gives_identical_next_steps(name: str, stop: int) -> None:
    # The first batch lacks task "c", so the tasks' running counts differ; stopping after step 1
    # falls inside every averaging window (handcrafted's 2 steps, the 3-step epochs), after step 4
    # between two epoch ends.
    batches = _batches(10)
    first = Run(name)
    first.train(batches[:1], present=("a", "b"))
    first.train(batches[1:stop])
    second = Run(name)
    second.model.load_state_dict(copy.deepcopy(first.model.state_dict()))
    second.strategy.load_state_dict(copy.deepcopy(first.strategy.state_dict()))
    second.optimizer.load_state_dict(copy.deepcopy(first.optimizer.state_dict()))
    second.step = first.step
    assert _same(first.train(batches[stop:]), second.train(batches[stop:])), name
    assert all(torch.equal(p, q) for p, q in zip(first.params(), second.params(), strict=True)), name
    assert first.strategy.current_weights() == second.strategy.current_weights(), name


@pytest.mark.parametrize("name", NAMES)
def test_float64_after_to(name: str) -> None:
    run = Run(name, torch.float64)
    batches = _batches(7, torch.float64)
    for used in run.train(batches):
        assert all(w.dtype == torch.float64 for w in used.values()), (name, {t: w.dtype for t, w in used.items()})
    assert all(p.dtype == torch.float64 for p in run.strategy.parameters()), name
    assert all(b.dtype == torch.float64 for b in run.strategy.buffers() if b.is_floating_point()), name
    assert all(p.grad is None or p.grad.dtype == torch.float64 for p in run.model.parameters()), name


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_missing_a_task(name: str) -> None:
    run = Run(name)
    run.train(_batches(2))
    x, y = _batches(1)[0]
    run.optimizer.zero_grad(set_to_none=True)
    present = ("a", "c")
    used = run.strategy.backward(run.model.losses(x, y, present), run.model.shared.parameters(), run.model.shared)
    assert set(used) == set(present), name
    assert all(bool(torch.isfinite(w)) for w in used.values()), name
    assert all(p.grad is None for p in run.model.heads["b"].parameters()), name
    run.strategy.on_step_end()
    run.strategy.on_epoch_end()
    assert set(run.train(_batches(2))[-1]) == set(TASKS), name  # and goes on with every task


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(weighting.strategy_class(n), GradientAggregation)])
def test_gradient_aggregations_pass_a_lone_task_through(name: str) -> None:
    # with one task in the batch there is nothing to combine: weight 1 and that task's own gradient
    run = Run(name)
    run.train(_batches(2))
    x, y = _batches(1)[0]
    run.optimizer.zero_grad(set_to_none=True)
    losses = run.model.losses(x, y, ("b",))
    expected = torch.autograd.grad(losses["b"], list(run.model.shared.parameters()), retain_graph=True)
    used = run.strategy.backward(losses, run.model.shared.parameters(), run.model.shared)
    assert {t: float(w) for t, w in used.items()} == {"b": 1.0}, name
    for p, g in zip(run.model.shared.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g, msg=name)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_the_seeds(name: str) -> None:
    batches = _batches(6)
    one, two = Run(name), Run(name)
    assert _same(one.train(batches), two.train(batches)), name
    assert all(torch.equal(p, q) for p, q in zip(one.params(), two.params(), strict=True)), name


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(weighting.strategy_class(n), GradientAggregation)])
def test_gradient_aggregations_compute_the_jacobian_once_per_step(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskweight.weighting import base

    calls = []
    original = base.per_task_shared_gradients

    def counted(*args: Any) -> torch.Tensor:
        jacobian = original(*args)
        calls.append(jacobian.dtype)
        return jacobian

    monkeypatch.setattr(base, "per_task_shared_gradients", counted)
    Run(name).train(_batches(3))
    assert calls == [torch.float32] * 3, name


class ConvToy(nn.Module):
    """A channels-last convolutional encoder shared by two heads, as the trainer lays out the network."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Conv2d(3, 4, 3, padding=1)
        self.heads = nn.ModuleDict({t: nn.Conv2d(4, 1, 1) for t in TASKS[:2]})
        self.to(memory_format=torch.channels_last)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.shared(x))
        return {t: (head(h) ** 2).mean() * (i + 1) for i, (t, head) in enumerate(self.heads.items())}


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(weighting.strategy_class(n), GradientAggregation)])
def test_gradient_aggregations_keep_the_parameter_layout_for_fused_optimisers(name: str) -> None:
    """A fused optimiser reads parameter, gradient and state as flat memory: a row-major gradient of a
    channels-last weight was applied to the wrong elements (found on a GPU, where fused Adam refuses
    it; on the CPU it silently mixed the elements). Every aggregation must hand back gradients laid
    out like their parameters, and a fused AdamW step must then equal the plain one."""
    from taskweight.build import _fused_available

    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6).to(DEVICE).contiguous(memory_format=torch.channels_last)
    results = []
    for fused in [True, False] if _fused_available() else [False]:
        torch.manual_seed(0)
        model = ConvToy().to(DEVICE)
        strategy = weighting.get(name, tasks=TASKS[:2], **OPTIONS.get(name, {})).to(DEVICE)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, **({"fused": True} if fused else {"foreach": False}))
        for _ in range(2):
            optimizer.zero_grad(set_to_none=True)
            strategy.backward(model.losses(x), model.shared.parameters(), model.shared)
            assert model.shared.weight.grad is not None
            assert model.shared.weight.grad.stride() == model.shared.weight.stride(), name
            optimizer.step()
        results.append(model.shared.weight.detach().clone())
    assert torch.allclose(results[0], results[-1], atol=1e-6), (name, (results[0] - results[-1]).abs().max())
