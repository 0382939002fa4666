"""Nash-MTL's, SDMGrad's and ConFIG's host solvers called directly with tensors on the test device.

``nash_mtl_weights``, ``sdmgrad_weights`` and ``config_weights`` solve in float64 on the host and answer on
the Gramian's device, in its dtype (SDMGrad's new inner weights w stay in float64 on the host). The strategies
themselves move whatever these return onto their buffers' device, so only a direct call shows where an
answer lands, and only a device Gramian shows that the solve really ran on the host: the numbers must then be
the host's bit for bit, whatever the device. Run with ``TASKWEIGHT_TEST_DEVICE=cuda`` (as
tests/test_solver_survivors.py); on a CPU-only machine every tensor is on the host already and these check the
same numbers without a device in between.
"""

from __future__ import annotations

import os

import pytest
import torch

from strategy_helpers import F64
from taskweight.weighting.config import config_weights
from taskweight.weighting.nash_mtl import nash_mtl_weights
from taskweight.weighting.sdmgrad import sdmgrad_weights

DEVICE = torch.device(os.environ.get("TASKWEIGHT_TEST_DEVICE", "cpu"))

# orthogonal gradients of norms 2 and 1: G = diag(4, 1)
ORTHOGONAL = [[2.0, 0.0], [0.0, 1.0]]
# a generic three-task Jacobian (full rank)
GENERIC = [[1.0, 0.0, 0.5], [0.0, 2.0, -0.5], [0.3, -0.2, 1.0]]
# three nearly parallel gradients: the unit Gramian's two small eigenvalues are ~1e-8, so any rounding
# difference in the solve (another device's eigen-solver or matmul) shows in the weights' last digits
NEARLY_PARALLEL = [[1.0, 0.0, 0.0], [1.0, 1e-4, 0.0], [1.0, 0.0, 2e-4]]
# four tasks in two dimensions: more tasks than directions, a rank-2 unit Gramian (the least-squares case)
CROWDED = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]


def _gram(rows: list[list[float]], dtype: torch.dtype = F64) -> torch.Tensor:
    jac = torch.tensor(rows, dtype=F64)
    return (jac @ jac.T).to(dtype)


# ------------------------------------------------------------------ Nash-MTL
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_nash_mtl_weights_answer_on_the_gramians_device_with_the_hosts_numbers(dtype: torch.dtype) -> None:
    # G = diag(4, 1): α_i (Gα)_i = 1 gives 4α₁² = 1 and α₂² = 1, α = (½, 1), exact in either dtype
    for rows, by_hand in [(ORTHOGONAL, [0.5, 1.0]), (GENERIC, None), (NEARLY_PARALLEL, None)]:
        gram = _gram(rows, dtype)
        on_device = gram.to(DEVICE)
        alpha = nash_mtl_weights(on_device)
        assert alpha.device == on_device.device and alpha.dtype == dtype, (alpha.device, alpha.dtype)
        assert torch.equal(alpha.cpu(), nash_mtl_weights(gram))  # solved on the host either way
        if by_hand is not None:
            assert alpha.tolist() == pytest.approx(by_hand, rel=1e-6)


# ------------------------------------------------------------------ SDMGrad
@pytest.mark.parametrize("start_dtype", [torch.float32, F64], ids=["float32 w (a buffer's)", "float64 w"])
def test_sdmgrad_weights_take_a_device_warm_start_to_the_host(start_dtype: torch.dtype) -> None:
    """A warm start w on the device (as the strategy's buffer ``w`` is) is taken to the host like the Gramian:
    the weights come back on the Gramian's device, the new w in float64 on the host (the docstring).

    By hand (one iteration, lr = 0.1, λ = 0.3, from w = (½, ½)) on G = diag(4, 1): A = G/(1.5² + 1e-8),
    v = A(0.65, 0.65), w − lr·v = (½ − 2.6k, ½ − 0.65k) with k = 0.1/(2.25 + 1e-8); both stay positive, so
    the simplex projection shifts them equally: w₁ = step − (Σ step − 1)/2, weights (w₁ + 0.15)/1.3."""
    gram = _gram(ORTHOGONAL)
    start = torch.full((2,), 0.5, dtype=start_dtype)
    weights, w = sdmgrad_weights(gram.to(DEVICE), start.to(DEVICE), 0.3, 0.1, 0.5, 1)
    assert weights.device == gram.to(DEVICE).device and weights.dtype == F64
    assert w.device.type == "cpu" and w.dtype == F64
    host_weights, host_w = sdmgrad_weights(gram, start, 0.3, 0.1, 0.5, 1)
    assert torch.equal(weights.cpu(), host_weights) and torch.equal(w, host_w)
    k = 0.1 / (2.25 + 1e-8)
    step = torch.tensor([0.5 - 2.6 * k, 0.5 - 0.65 * k], dtype=F64)
    w1 = step - (step.sum() - 1) / 2
    assert w.tolist() == pytest.approx(w1.tolist(), rel=1e-15)
    assert weights.tolist() == pytest.approx(((w1 + 0.15) / 1.3).tolist(), rel=1e-15)
    # twenty iterations from a device start (the defaults) agree with the host's too
    weights, w = sdmgrad_weights(_gram(GENERIC).to(DEVICE), torch.full((3,), 1 / 3).to(DEVICE), 0.3, 10.0, 0.5, 20)
    host_weights, host_w = sdmgrad_weights(_gram(GENERIC), torch.full((3,), 1 / 3), 0.3, 10.0, 0.5, 20)
    assert torch.equal(weights.cpu(), host_weights) and torch.equal(w, host_w) and w.device.type == "cpu"


# ------------------------------------------------------------------ ConFIG
def test_config_weights_of_a_device_gramian_are_the_hosts_bit_for_bit() -> None:
    """A Gramian on the device gives the host's numbers exactly (module docstring: "Solved on the host in float64"),
    also where the solve is ill-conditioned (nearly parallel gradients) or rank-deficient (more tasks than
    directions), on the Gramian's device and in its dtype."""
    for rows in (ORTHOGONAL, GENERIC, NEARLY_PARALLEL, CROWDED):
        gram = _gram(rows)
        on_device = gram.to(DEVICE)
        w = config_weights(on_device)
        assert w.device == on_device.device and w.dtype == F64
        assert torch.equal(w.cpu(), config_weights(gram)), rows
    # by hand, g = (2, 0), (0, 1): unit gradients e₁, e₂, Ĝ = I, a = D⁻¹1 = (½, 1), Ga = (2, 1), 1ᵀGa = 3,
    # aᵀGa = 2, w = (3/2)·a = (3/4, 3/2): d = (3/2, 3/2) makes the same angle with both and projects to 3/√2
    assert config_weights(_gram(ORTHOGONAL).to(DEVICE)).tolist() == pytest.approx([0.75, 1.5], rel=1e-14)
    # a float32 device Gramian answers in float32 on the device (solved in float64 on the host)
    w32 = config_weights(_gram(GENERIC, torch.float32).to(DEVICE))
    assert w32.dtype == torch.float32 and w32.device.type == DEVICE.type
    assert torch.equal(w32.cpu(), config_weights(_gram(GENERIC, torch.float32)))


def test_config_pseudo_inverse_is_taken_on_the_host_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit Gramian's pseudo-inverse, the solve itself, sees a float64 host matrix whatever the Gramian's
    device and dtype (module docstring: "Solved on the host in float64")."""
    seen: list[tuple[torch.device, torch.dtype]] = []
    pinv = torch.linalg.pinv

    def spy(matrix: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append((matrix.device, matrix.dtype))
        return pinv(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "pinv", spy)
    for dtype in (F64, torch.float32):
        w = config_weights(_gram(GENERIC, dtype).to(DEVICE))
        assert w.device.type == DEVICE.type and w.dtype == dtype
    assert seen == [(torch.device("cpu"), F64)] * 2
