"""The WeightingStrategy contract's own behaviour, below any particular strategy.

Refused task lists and loss dicts (and what their errors name), the step and epoch counters and
how a ``state_dict`` without them or without a generator state loads, what a gradient aggregation
reports before its first step, the rows :meth:`GradientAggregation.aggregate` sees on a fresh
strategy, and the dtype of the loss values it is handed (the Jacobian's, fp32 at least).
"""

from __future__ import annotations

import pytest
import torch

from strategy_helpers import F64, aggregate, constant_step, linear_losses
from taskweight import weighting
from taskweight.weighting import GradientAggregation

TASKS = ("det", "seg")
AGGREGATIONS = [n for n in weighting.available() if issubclass(weighting.strategy_class(n), GradientAggregation)]


# ------------------------------------------------------------------ refused task lists and losses
def test_a_strategy_needs_at_least_one_task() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        weighting.strategy_class("equal")(())


def test_duplicate_task_names_are_refused_naming_them() -> None:
    with pytest.raises(ValueError) as info:
        weighting.strategy_class("equal")(("det", "seg", "det"))
    message = str(info.value)
    assert "duplicate" in message and "'det'" in message


@pytest.mark.parametrize("name", ["equal", "pcgrad"])  # a loss weighting and a gradient aggregation
def test_backward_without_any_loss_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="at least one task loss"):
        weighting.get(name, tasks=TASKS).backward({})


@pytest.mark.parametrize("name", ["equal", "pcgrad"])
def test_a_loss_of_a_task_the_strategy_does_not_know_is_refused_naming_it_and_the_tasks(name: str) -> None:
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    losses = {**linear_losses(x), "depth": x.sum() + 1.0}
    with pytest.raises(KeyError) as info:
        weighting.get(name, tasks=TASKS).backward(losses, [x], [x])
    message = str(info.value)
    assert "'depth'" in message and "['det', 'seg']" in message
    assert x.grad is None  # refused before any backward pass


# ------------------------------------------------------------------ counters and the state_dict
def test_step_and_epoch_counters_count_up_and_travel_in_the_extra_state() -> None:
    s = weighting.get("equal")
    for _ in range(3):
        constant_step(s, det=1.0, seg=2.0)  # each ends with on_step_end
    s.on_epoch_end()
    assert (s.step_count, s.epoch_count) == (3, 1)
    assert s.get_extra_state() == {"step_count": 3, "epoch_count": 1}


def test_a_state_without_counters_loads_as_a_fresh_strategy() -> None:
    s = weighting.get("equal")
    s.set_extra_state({"step_count": 5, "epoch_count": 2})
    assert (s.step_count, s.epoch_count) == (5, 2)
    s.set_extra_state({})  # a checkpoint that carried no counters: both start again from 0
    assert (s.step_count, s.epoch_count) == (0, 0)


def test_a_generator_state_given_to_a_strategy_that_draws_nothing_is_ignored() -> None:
    s = weighting.get("equal")
    state = weighting.get("rlw", seed=3).get_extra_state()
    assert "generator" in state
    s.set_extra_state(state)
    assert (s.step_count, s.epoch_count) == (0, 0)
    assert getattr(s, "generator", None) is None


def test_a_state_without_a_generator_leaves_the_strategys_draws_as_they_were() -> None:
    one, two = weighting.get("rlw", seed=3), weighting.get("rlw", seed=3)
    one.set_extra_state({"step_count": 4, "epoch_count": 1})
    assert (one.step_count, one.epoch_count) == (4, 1)
    assert torch.equal(one.generator.get_state(), two.generator.get_state())
    assert constant_step(one, det=1.0, seg=2.0) == constant_step(two, det=1.0, seg=2.0)


# ------------------------------------------------------------------ gradient aggregations
@pytest.mark.parametrize("name", AGGREGATIONS)
def test_a_gradient_aggregation_reports_weight_one_before_its_first_step(name: str) -> None:
    # nothing combined yet: the weights of the plain sum Σ_τ L_τ, which is also what it back-propagates
    # with fewer than two tasks or no shared parameters. MGDA's weights lie on the simplex: it starts at 1/T = ½.
    start = 0.5 if name == "mgda" else 1.0
    assert weighting.get(name, tasks=TASKS).current_weights() == {"det": start, "seg": start}


@pytest.mark.parametrize("name", ["gradvac", "db_mtl"])  # aggregations that index their state by self.present
def test_aggregate_on_a_fresh_strategy_takes_the_rows_for_all_its_tasks(name: str) -> None:
    jacobian = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    losses = torch.tensor([2.0, 0.5])
    fresh, told = weighting.get(name, tasks=TASKS), weighting.get(name, tasks=TASKS)
    assert fresh.present == TASKS
    combined, weights = fresh.aggregate(jacobian, losses)
    expected_combined, expected_weights = aggregate(told, jacobian, losses, present=TASKS)
    assert torch.equal(combined, expected_combined) and torch.equal(weights, expected_weights)


class _Recording(GradientAggregation):
    """Sums the rows (weights 1) and records the dtypes ``aggregate`` was handed."""

    def aggregate(self, jacobian: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen = (jacobian.dtype, losses.dtype, losses.tolist())
        return jacobian.sum(0), torch.ones(len(losses), dtype=jacobian.dtype)


def test_aggregate_gets_the_loss_values_in_the_jacobians_dtype() -> None:
    # bfloat16 parameters and losses: J is fp32 (at least), and the loss values come in fp32 too,
    # as the contract says ("same dtype"). L = (x0 + 2, 2·x1 + 0.5) at x = 0: values 2 and 0.5, exact in bf16.
    x = torch.zeros(2, dtype=torch.bfloat16, requires_grad=True)
    s = _Recording(TASKS)
    s.backward(linear_losses(x), [x], [x])
    assert s.seen == (torch.float32, torch.float32, [2.0, 0.5])
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and x.grad.tolist() == [1.0, 2.0]
