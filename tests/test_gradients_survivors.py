"""The per-task Jacobian and the write-back of the combined gradient (:mod:`taskweight.weighting.gradients`).

J's rows against gradients worked out by hand, zeros for a shared parameter a task does not reach,
J in fp32 at least (bfloat16 parameters) or the parameters' wider dtype, the shared ``.grad`` left as
it was, the autograd graph released after the last task; and :func:`add_shared_gradient` slicing the
flat vector parameter by parameter, adding to an existing ``.grad`` in the parameter's dtype.
"""

from __future__ import annotations

import pytest
import torch

from strategy_helpers import F64
from taskweight.weighting.gradients import add_shared_gradient, flat_grad, per_task_shared_gradients


def _two_tasks(dtype: torch.dtype = F64) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Shared a (2 values) and b (1 value) at a = (1, 2), b = 3.

    L_det = a0·a1 + 1         → ∇_a = (a1, a0) = (2, 1), ∇_b = 0 (b not reached: its .grad stays None)
    L_seg = b² · (a0 + a1)   → ∇_a = (b², b²) = (9, 9), ∇_b = 2b(a0 + a1) = 18
    """
    a = torch.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    b = torch.tensor([3.0], dtype=dtype, requires_grad=True)
    return [a, b], {"det": a[0] * a[1] + 1, "seg": (b**2 * (a[0] + a[1])).sum()}


# ------------------------------------------------------------------ per_task_shared_gradients
def test_jacobian_rows_are_the_task_gradients_with_zeros_where_a_task_does_not_reach() -> None:
    shared, losses = _two_tasks()
    jacobian = per_task_shared_gradients(losses, ["det", "seg"], shared)
    assert jacobian.tolist() == [[2.0, 1.0, 0.0], [9.0, 9.0, 18.0]]


def test_flat_grad_puts_zeros_for_a_parameter_without_gradient() -> None:
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    a.grad = torch.tensor([1.0, 2.0])
    assert flat_grad([a, b]).tolist() == [1.0, 2.0, 0.0, 0.0, 0.0]
    assert flat_grad([b, a], F64).dtype == F64


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(torch.bfloat16, torch.float32), (torch.float32, torch.float32), (F64, F64)],
)
def test_jacobian_is_fp32_at_least_or_the_wider_parameter_dtype(dtype: torch.dtype, expected: torch.dtype) -> None:
    shared, losses = _two_tasks(dtype)
    jacobian = per_task_shared_gradients(losses, ["det", "seg"], shared)
    assert jacobian.dtype == expected
    assert jacobian.tolist() == [[2.0, 1.0, 0.0], [9.0, 9.0, 18.0]]  # exact in every one of these dtypes


def test_flat_grad_converts_each_piece_only_when_asked() -> None:
    a = torch.zeros(2, dtype=torch.bfloat16, requires_grad=True)
    a.grad = torch.tensor([1.0, 0.5], dtype=torch.bfloat16)
    assert flat_grad([a]).dtype == torch.bfloat16
    assert flat_grad([a], torch.float32).dtype == torch.float32


def test_the_shared_gradients_held_before_are_restored() -> None:
    shared, losses = _two_tasks()
    held = torch.tensor([5.0, 6.0], dtype=F64)
    shared[0].grad = held
    per_task_shared_gradients(losses, ["det", "seg"], shared)
    assert shared[0].grad is held and shared[0].grad.tolist() == [5.0, 6.0]
    assert shared[1].grad is None


def test_the_autograd_graph_is_released_after_the_last_task() -> None:
    # the graph is kept between tasks (they share it) and freed by the last backward: the step keeps no
    # activations alive, so differentiating a loss again fails as after any plain backward
    shared, losses = _two_tasks()
    per_task_shared_gradients(losses, ["det", "seg"], shared)
    with pytest.raises(RuntimeError, match="second time"):
        losses["seg"].backward()


# ------------------------------------------------------------------ add_shared_gradient
def test_the_flat_vector_is_sliced_parameter_by_parameter() -> None:
    # sizes 2, 3 (as 3 × 1) and 1: offsets 0, 2 and 5
    params = [torch.zeros(2), torch.zeros(3, 1), torch.zeros(1)]
    add_shared_gradient(params, torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert [p.grad.tolist() for p in params] == [[1.0, 2.0], [[3.0], [4.0], [5.0]], [6.0]]


def test_the_combined_gradient_is_added_to_an_existing_gradient() -> None:
    a, b = torch.zeros(2), torch.zeros(1)
    a.grad = torch.tensor([1.0, 1.0])  # e.g. a regulariser's gradient from an earlier backward
    add_shared_gradient([a, b], torch.tensor([2.0, 3.0, 4.0]))
    assert a.grad.tolist() == [3.0, 4.0]
    assert b.grad.tolist() == [4.0]


def test_the_addition_happens_in_the_parameters_dtype() -> None:
    # bf16 keeps 8 significant bits: its spacing at 1 is 2⁻⁷. v = 2⁻⁸(1 + 2⁻⁸) rounds to 2⁻⁸ in bf16, and
    # 1 + 2⁻⁸ is then a tie, rounded to even: 1. (Adding in fp32 first would give 1 + 2⁻⁸ + 2⁻¹⁶ → 1 + 2⁻⁷.)
    p = torch.zeros(1, dtype=torch.bfloat16)
    p.grad = torch.ones(1, dtype=torch.bfloat16)
    add_shared_gradient([p], torch.tensor([2.0**-8 * (1 + 2.0**-8)]))
    assert p.grad.dtype == torch.bfloat16 and p.grad.tolist() == [1.0]


def test_a_new_gradient_has_its_parameters_memory_layout() -> None:
    p = torch.zeros(1, 2, 2, 3).contiguous(memory_format=torch.channels_last)
    add_shared_gradient([p], torch.arange(12.0))
    assert p.grad.stride() == p.stride()
    assert p.grad.flatten().tolist() == list(range(12))  # the values by logical index, layout aside
