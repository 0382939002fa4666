"""The Gramian solvers' details that the other solver tests leave open: MGDA, CAGrad, FairGrad, Nash-MTL,
SDMGrad and GradVac.

Checked, on hand-worked 2-, 3- and 4-task Gramians: MGDA's start from the best pair (one Frank-Wolfe step
already returns an optimum that lies on an edge), its step budget and stopping tolerance, one task and equal
gradients; CAGrad's mean-gradient cases (c = 0, g0 = 0), the ``rescale`` factor 1 + c², its defaults and a
solve without solver warnings; FairGrad's start, stopping rule and step halving (scalar Newton on G = s·I),
its covariance with the Gramian's scale and its options; Nash-MTL's clipping, defaults, call counter and
buffers; SDMGrad's defaults and buffers; GradVac's options, default seed and float64 targets.
"""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch

from strategy_helpers import F64, aggregate
from taskweight import weighting
from taskweight.weighting.cagrad import cagrad_weights
from taskweight.weighting.fairgrad import fairgrad_weights
from taskweight.weighting.gradvac import gradvac_weights
from taskweight.weighting.mgda import min_norm_coefficients
from taskweight.weighting.nash_mtl import clip_norm, nash_mtl_weights
from taskweight.weighting.sdmgrad import sdmgrad_weights


def _gram(rows: list[list[float]]) -> torch.Tensor:
    jac = torch.tensor(rows, dtype=F64)
    return jac @ jac.T


# ------------------------------------------------------------------ MGDA
@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # g2 = (3, 0) and g3 = (−2, 0) are opposite: 0.4·g2 + 0.6·g3 = 0, the min-norm point; no other
        # combination reaches 0 (g1 = (−3, 1) and g4 = (0, 1) would need a negative y-weight)
        ([[-3.0, 1.0], [3.0, 0.0], [-2.0, 0.0], [0.0, 1.0]], [0.0, 0.4, 0.6, 0.0]),
        # on the edge a = (0, 2), b = (−1, −2): γ = (b − a)·b / ‖a − b‖² = 9/17, g_w = (−8, 2)/17 with
        # ‖g_w‖² = 4/17, and every g_k·g_w ≥ 4/17 (g1 = (−1, 1): 10/17, g4 = (0, 3): 6/17): optimal
        ([[-1.0, 1.0], [0.0, 2.0], [-1.0, -2.0], [0.0, 3.0]], [0.0, 9 / 17, 8 / 17, 0.0]),
    ],
)
def test_mgda_frank_wolfe_starts_at_the_best_pair_so_one_step_returns_an_edge_optimum(
    rows: list[list[float]], expected: list[float]
) -> None:
    """The best pair's line-search solution is the optimum when it lies on an edge; the one Frank-Wolfe step
    then stays put (its line search keeps γ = 1). Any other start needs more than one step."""
    alpha = min_norm_coefficients(_gram(rows), max_iter=1)
    assert alpha.tolist() == pytest.approx(expected, abs=1e-12)


def test_mgda_one_frank_wolfe_step_from_the_best_pair_by_hand() -> None:
    # g = (1, 0), (0, 1), (−1, −2): pair costs (0,1) ½, (0,2) ½, (1,2) 0.1 (γ = 7/10): start α = (0, 0.7, 0.3),
    # g_α = (−0.3, 0.1), Gα = (−0.3, 0.1, 0.1) → vertex k = 0; line search between g_α and g1:
    # a·a = 0.1, a·b = −0.3, b·b = 1, γ = (1 + 0.3)/(0.1 + 1 + 0.6) = 13/17 → α = (4, 9.1, 3.9)/17
    gram = _gram([[1.0, 0.0], [0.0, 1.0], [-1.0, -2.0]])
    one = [4 / 17, 9.1 / 17, 3.9 / 17]
    assert min_norm_coefficients(gram, max_iter=1).tolist() == pytest.approx(one, abs=1e-12)
    # that step moves α by 8/17 (L1): a tolerance of 1 makes it the last, whatever max_iter allows
    assert min_norm_coefficients(gram, tol=1.0).tolist() == pytest.approx(one, abs=1e-12)
    # with the default tolerance it goes on to the min-norm point, the origin
    assert float(min_norm_coefficients(gram) @ gram @ min_norm_coefficients(gram)) < 1e-12


def test_mgda_default_budget_is_250_frank_wolfe_steps() -> None:
    # g = (2, 3), (−1, −1), (3, 2): the origin is inside the hull, at α = (1, 5, 1)/7; Frank-Wolfe creeps
    # towards it and is still moving at step 250, so the budget decides the answer
    gram = _gram([[2.0, 3.0], [-1.0, -1.0], [3.0, 2.0]])
    at_250 = min_norm_coefficients(gram, max_iter=250)
    assert not torch.equal(min_norm_coefficients(gram, max_iter=251), at_250)  # the budget binds here
    assert torch.equal(min_norm_coefficients(gram), at_250)
    assert at_250.tolist() == pytest.approx([1 / 7, 5 / 7, 1 / 7], abs=1e-3)
    strategy = weighting.get("mgda", tasks=("a", "b", "c"), normalization="none")
    assert torch.equal(strategy.gramian_weights(gram, torch.ones(3, dtype=F64)), at_250)


def test_mgda_one_task_takes_all_the_weight_in_the_gramians_dtype() -> None:
    alpha = min_norm_coefficients(torch.tensor([[4.0]], dtype=F64))
    assert alpha.dtype == F64 and alpha.tolist() == [1.0]


@pytest.mark.parametrize("t", [2, 3])
def test_mgda_equal_gradients_split_the_weight_evenly(t: int) -> None:
    # every α on the simplex gives the same g_α: ‖a − b‖² = 0 and the line search takes γ = ½
    gram = _gram([[1.0, 2.0]] * t)
    alpha = min_norm_coefficients(gram)
    assert float(alpha.sum()) == pytest.approx(1.0) and bool((alpha >= 0).all())
    if t == 2:
        assert alpha.tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ CAGrad
@pytest.mark.parametrize(
    ("rows", "c"),
    [
        ([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], 0.0),  # c = 0: the ball is the point g0
        ([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], 0.4),  # g0 = 0: radius c‖g0‖ = 0
    ],
)
def test_cagrad_with_a_point_ball_is_the_exact_mean_in_float64(rows: list[list[float]], c: float) -> None:
    weights = cagrad_weights(_gram(rows), c)
    assert weights.dtype == F64 and weights.tolist() == [1 / 3] * 3


def test_cagrad_rescale_divides_by_one_plus_c_squared() -> None:
    # g1 = (2, 0), g2 = (0, 1), c = 0.4: v = (½, ½ + r), r = 0.4·√5/2 (test_field_solvers); ÷ (1 + 0.16)
    gram = _gram([[2.0, 0.0], [0.0, 1.0]])
    r = 0.4 * math.sqrt(5) / 2
    rescaled = cagrad_weights(gram, 0.4, rescale=True)
    assert rescaled.tolist() == pytest.approx([0.5 / 1.16, (0.5 + r) / 1.16], rel=1e-7)


def test_cagrad_defaults_are_c_0_4_without_rescaling_and_c_0_is_accepted() -> None:
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
    r = 0.4 * math.sqrt(5) / 2  # the c = 0.4 answer worked out in test_field_solvers: v = (½, ½ + r)
    _, weights = aggregate(weighting.get("cagrad", tasks=("a", "b")), jac, torch.ones(2, dtype=F64))
    assert weights.tolist() == pytest.approx([0.5, 0.5 + r], rel=1e-7)
    _, weights = aggregate(weighting.get("cagrad", tasks=("a", "b"), c=0.0), jac, torch.ones(2, dtype=F64))
    assert weights.tolist() == [0.5, 0.5]  # gradient descent on the mean


def test_cagrad_solve_raises_no_solver_warnings() -> None:
    """The SLSQP options are all ones scipy knows (an unknown option is reported with a warning)."""
    gen = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in (2, 3, 5):
            jac = torch.randn(t, 10, generator=gen, dtype=F64)
            assert bool(cagrad_weights(jac @ jac.T, 0.4).any())


# ------------------------------------------------------------------ FairGrad
def test_fairgrad_starts_from_the_uniform_weights() -> None:
    gram = torch.diag(torch.tensor([4.0, 1.0, 2.0], dtype=F64))
    assert fairgrad_weights(gram, 1.0, max_iter=0).tolist() == pytest.approx([1 / 3] * 3, rel=1e-15)


@pytest.mark.parametrize("tol", [0.25, 1.5])
def test_fairgrad_stops_at_the_first_iterate_within_tol_of_the_scale(tol: float) -> None:
    """Stop when ‖F‖ ≤ tol · max_i G_ii · max(1, ‖w‖). G = I₂, α = 1: both z equal, scalar Newton on
    f(z) = e^z − e^{−z} from z₀ = −ln 2: f = ½ − 2 = −3/2, f' = ½ + 2 = 5/2, so z₁ = z₀ + 0.6 (|f| drops to
    0.19: the full step is taken). ‖F₀‖ = 1.5√2 = 2.12 against max(1, ‖w₀‖ = 0.71) = 1; ‖F₁‖ = 0.26 against
    ‖w₁‖ = 1.29: any tol in (0.26/1.29, 2.12) = (0.205, 2.12) stops after exactly one step."""
    w1 = math.exp(-math.log(2) + 0.6)
    assert fairgrad_weights(torch.eye(2, dtype=F64), 1.0, tol=tol).tolist() == pytest.approx([w1, w1], rel=1e-14)


def test_fairgrad_halves_a_newton_step_that_does_not_reduce_the_residual() -> None:
    # G = 0.1·I₂, α = 5: scalar f(z) = 0.1e^z − e^{−z/5} from z₀ = −ln 2: f₀ = 0.05 − 2^{0.2},
    # f₀' = 0.05 + 2^{0.2}/5. The full step overshoots (|f| 1.10 → 2.02), half of it is taken (|f| 0.42)
    z0 = -math.log(2)
    f0, d0 = 0.05 - 2**0.2, 0.05 + 2**0.2 / 5
    step = -f0 / d0

    def f(z: float) -> float:
        return 0.1 * math.exp(z) - math.exp(-z / 5)

    assert abs(f(z0 + step)) > abs(f0) > abs(f(z0 + step / 2))
    w = math.exp(z0 + step / 2)
    assert fairgrad_weights(0.1 * torch.eye(2, dtype=F64), 5.0, max_iter=1).tolist() == pytest.approx([w, w], rel=1e-13)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("scale", [1e-20, 1e-6, 1e6, 1e20])
def test_fairgrad_weights_follow_the_gramians_scale(alpha: float, scale: float) -> None:
    """s·G (cw) = (cw)^{−1/α} holds with c = s^{−α/(α+1)} where G w = w^{−1/α}: the stopping rule is
    relative to the Gramian's scale, so tiny and huge gradients are solved as accurately."""
    gram = _gram([[1.0, 0.0, 0.5], [-0.5, 1.0, 0.0], [0.2, 0.3, 1.0]])
    expected = scale ** (-alpha / (alpha + 1)) * fairgrad_weights(gram, alpha)
    assert fairgrad_weights(scale * gram, alpha).tolist() == pytest.approx(expected.tolist(), rel=1e-10)


def test_fairgrad_alpha_zero_is_the_exact_mean_in_the_gramians_dtype() -> None:
    weights = fairgrad_weights(torch.eye(3, dtype=F64), 0.0)
    assert weights.dtype == F64 and weights.tolist() == [1 / 3] * 3


def test_fairgrad_default_alpha_is_one_and_alpha_in_zero_one_is_accepted() -> None:
    # G = diag(4, 1): w_i = G_ii^{−α/(α+1)}; α = 1 → (½, 1); α = ½ → 4^{−1/3}; α = 0 → the mean
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
    ones = torch.ones(2, dtype=F64)
    for options, expected in (({}, [0.5, 1.0]), ({"alpha": 0.5}, [4 ** (-1 / 3), 1.0]), ({"alpha": 0.0}, [0.5] * 2)):
        _, weights = aggregate(weighting.get("fairgrad", tasks=("a", "b"), **options), jac, ones)
        assert weights.tolist() == pytest.approx(expected, rel=1e-12), options


# ------------------------------------------------------------------ Nash-MTL
@pytest.mark.parametrize(("weights", "expected"), [([0.3, 0.0], [0.3, 0.0]), ([0.8, 0.0], [0.5, 0.0])])
def test_nash_mtl_clip_norm_of_updates_shorter_than_one(weights: list[float], expected: list[float]) -> None:
    # G = I: ‖αᵀJ‖ = ‖α‖; max_norm ½: 0.3 is left alone, 0.8 is scaled by ½/0.8
    clipped = clip_norm(torch.tensor(weights, dtype=F64), torch.eye(2, dtype=F64), 0.5)
    assert clipped.tolist() == pytest.approx(expected, rel=1e-15)


def test_nash_mtl_weights_keep_a_float32_gramians_dtype() -> None:
    alpha = nash_mtl_weights(torch.diag(torch.tensor([4.0, 1.0])))
    assert alpha.dtype == torch.float32 and alpha.tolist() == pytest.approx([0.5, 1.0], rel=1e-6)


def test_nash_mtl_defaults_solve_every_call_and_clip_to_norm_one() -> None:
    # G = diag(4, 1): α = (½, 1), ‖αᵀJ‖ = √2 → clipped to (½, 1)/√2; then G = I: α = (1, 1) → (1, 1)/√2
    strategy = weighting.get("nash_mtl", tasks=("a", "b")).to(F64)
    ones = torch.ones(2, dtype=F64)
    _, first = aggregate(strategy, torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64), ones)
    assert first.tolist() == pytest.approx([0.5 / math.sqrt(2), 1 / math.sqrt(2)], rel=1e-12)
    _, second = aggregate(strategy, torch.eye(2, dtype=F64), ones)
    assert second.tolist() == pytest.approx([1 / math.sqrt(2)] * 2, rel=1e-12)
    assert strategy.calls.dtype == torch.int64 and int(strategy.calls) == 2  # aggregation calls so far
    assert strategy.solved_for.dtype == torch.bool and strategy.solved_for.tolist() == [True, True]


def test_nash_mtl_float32_strategy_with_a_float64_jacobian() -> None:
    # the buffers stay float32, the weights come back in the Jacobian's dtype: α = (½, 1)/√2 as above
    strategy = weighting.get("nash_mtl", tasks=("a", "b"))
    _, weights = aggregate(strategy, torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64), torch.ones(2, dtype=F64))
    assert weights.dtype == F64
    assert weights.tolist() == pytest.approx([0.5 / math.sqrt(2), 1 / math.sqrt(2)], rel=1e-6)


# ------------------------------------------------------------------ SDMGrad
def test_sdmgrad_defaults_are_lam_0_3_lr_10_momentum_0_5_and_20_iterations() -> None:
    # G = diag(4, 1): with lr 10 w keeps jumping between the simplex's vertices, so lr and the number of
    # iterations both show in the result
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
    gram, uniform = jac @ jac.T, torch.full((2,), 0.5, dtype=F64)
    expected = sdmgrad_weights(gram, uniform, 0.3, 10.0, 0.5, 20)[0]
    assert not torch.allclose(sdmgrad_weights(gram, uniform, 0.3, 10.0, 0.5, 21)[0], expected)
    assert not torch.allclose(sdmgrad_weights(gram, uniform, 0.3, 11.0, 0.5, 20)[0], expected)
    strategy = weighting.get("sdmgrad", tasks=("a", "b")).to(F64)
    _, weights = aggregate(strategy, jac, torch.ones(2, dtype=F64))
    assert weights.tolist() == expected.tolist()
    assert strategy.computed_for.dtype == torch.bool and strategy.computed_for.tolist() == [True, True]


def test_sdmgrad_one_iteration_is_accepted() -> None:
    # one step from (½, ½) with the defaults' lr 10 leaves the simplex's interior: w = e₂ (test_field_solvers
    # works out the step); the weights (w + 0.15)/1.3
    strategy = weighting.get("sdmgrad", tasks=("a", "b"), n_iter=1).to(F64)
    _, weights = aggregate(strategy, torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64), torch.ones(2, dtype=F64))
    assert weights.tolist() == pytest.approx([0.15 / 1.3, 1.15 / 1.3], rel=1e-12)


# ------------------------------------------------------------------ GradVac
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gradvac_beta_at_the_ends_of_its_range(beta: float) -> None:
    # g1 = (1, 0), g2 = (−1, 1) (test_field_strategies): targets 0, each lifted to orthogonal, w = (2, 3/2);
    # the targets move to β·cos, cos = g1·g2/(‖g1‖‖g2‖ + 1e-8) = −1/(√2 + 1e-8): they stay 0 with β = 0 and
    # are the last cosine with β = 1 (the eps 1e-8 also shifts w by ~1e-8)
    strategy = weighting.get("gradvac", tasks=("a", "b"), beta=beta).to(F64)
    _, weights = aggregate(strategy, torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=F64), torch.ones(2, dtype=F64))
    assert weights.tolist() == pytest.approx([2.0, 1.5], rel=1e-7)
    cosine = -beta / (math.sqrt(2) + 1e-8)
    assert strategy.targets.flatten().tolist() == pytest.approx([0.0, cosine, cosine, 0.0], rel=1e-14)


def test_gradvac_default_seed_is_zero() -> None:
    # three tasks: the order in which each visits the others is drawn, and it matters here
    gen = torch.Generator().manual_seed(3)
    jacs = [torch.randn(3, 4, generator=gen, dtype=F64) for _ in range(3)]
    ones = torch.ones(3, dtype=F64)

    def run(**options: int) -> list[list[float]]:
        strategy = weighting.get("gradvac", tasks=("a", "b", "c"), **options).to(F64)
        return [aggregate(strategy, jac, ones)[1].tolist() for jac in jacs]

    assert run() == run(seed=0)
    assert run(seed=1) != run(seed=0)


def test_gradvac_new_targets_are_float64_whatever_the_targets_dtype() -> None:
    # g1 = (1, 0), g2 = (−1, 1): cos = −1/(√2 + 1e-8) (the eps in the denominator), β = ½: the EMA of zero
    # targets is ½cos, not its float32 rounding (3e-8 off)
    targets = torch.zeros(2, 2, dtype=torch.float32)
    _, updated = gradvac_weights(_gram([[1.0, 0.0], [-1.0, 1.0]]), targets, [[1], [0]], beta=0.5)
    assert updated.dtype == F64
    assert float(updated[0, 1]) == pytest.approx(-0.5 / (math.sqrt(2) + 1e-8), rel=1e-14)


# ----------------------------------------------------------------------------- devices
DEVICE = torch.device(os.environ.get("TASKWEIGHT_TEST_DEVICE", "cpu"))
"""Where the solvers' inputs live (``TASKWEIGHT_TEST_DEVICE=cuda`` in ``benchmarks/gpu.sh``): the CPU solves
(scipy, the small Newton and Frank-Wolfe loops) must take their inputs to the host and give the weights back on
the input's device. On a CPU-only machine every tensor is already on the host, so only a GPU run sees a slip."""

SOLVERS = ["mgda", "cagrad", "fairgrad", "nash_mtl", "sdmgrad", "gradvac"]


@pytest.mark.parametrize("tasks", [("a",), ("a", "b", "c")], ids=["one task", "three tasks"])
@pytest.mark.parametrize("name", SOLVERS)
def test_a_solver_answers_on_the_device_of_its_inputs_with_the_hosts_numbers(name: str, tasks: tuple) -> None:
    jacobian = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, -0.5], [0.3, -0.2, 1.0]], dtype=F64)[: len(tasks)]
    losses = torch.tensor([1.0, 2.0, 0.5], dtype=F64)[: len(tasks)]
    on_host = weighting.get(name, tasks=tasks).double()
    on_device = weighting.get(name, tasks=tasks).double().to(DEVICE)
    for _ in range(2):  # the second step reads the state the first one left (targets, momentum, counters)
        host_direction, host_weights = aggregate(on_host, jacobian, losses)
        direction, weights = aggregate(on_device, jacobian.to(DEVICE), losses.to(DEVICE))
        assert weights.device.type == DEVICE.type and direction.device.type == DEVICE.type
        torch.testing.assert_close(weights.cpu(), host_weights, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(direction.cpu(), host_direction, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_fairgrad_weights_stay_on_the_gramians_device(alpha: float) -> None:
    gram = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    weights = fairgrad_weights(gram.to(DEVICE), alpha)
    assert weights.device.type == DEVICE.type
    torch.testing.assert_close(weights.cpu(), fairgrad_weights(gram, alpha), rtol=1e-12, atol=0)
