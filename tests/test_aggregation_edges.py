"""Edge cases of the gradient aggregations and of the stateful strategies, with hand-computed values.

Aligned-MTL, GradDrop, UPGrad (its active-set solver included), IMTL-G, PCGrad's ties, GradNorm,
FAMO, STCH, DB-MTL, MoCo and the lazily shaped buffers: zero-norm task gradients, gradients small
enough that a clamp or threshold matters, a value constructed to lie exactly on a threshold, options
other than the defaults, the state a strategy keeps across steps and epochs, and the dtypes a
strategy returns. The arithmetic of every expected value is written beside it.
"""

from __future__ import annotations

import math

import pytest
import torch

from strategy_helpers import F64, aggregate, linear_losses, linear_step, numbers
from taskweight import weighting
from taskweight.weighting.aligned_mtl import aligned_mtl_weights
from taskweight.weighting.famo import famo_logit_gradient, famo_weights
from taskweight.weighting.graddrop import graddrop_combine
from taskweight.weighting.imtl_g import imtl_g_weights
from taskweight.weighting.upgrad import nonnegative_quadratic, projection_gramian, upgrad_weights

EPS64 = torch.finfo(F64).eps


# ------------------------------------------------------------------ Aligned-MTL
def test_aligned_mtl_zero_gradients_fall_back_to_the_mean() -> None:
    # G = 0: every eigenvalue 0 = tol, none is kept, B = I and α = (½, ½)
    assert aligned_mtl_weights(torch.zeros(2, 2, dtype=F64)).tolist() == [0.5, 0.5]


def test_aligned_mtl_rank_tolerance_is_max_eigenvalue_times_t_times_eps() -> None:
    # T = 2: tol = λ_max · 2 · ε. λ = ε and λ = 2ε (exactly tol) are dropped: B = √1 · e₁e₁ᵀ/1, α = (½, 0)
    for small in (EPS64, 2 * EPS64):
        gram = torch.diag(torch.tensor([1.0, small], dtype=F64))
        assert aligned_mtl_weights(gram).tolist() == [0.5, 0.0], small
    # λ = 4ε > tol is kept and is the smallest: B = √(4ε)·diag(1, 1/√(4ε)), α = (√(4ε)/2, ½) = (√ε, ½)
    gram = torch.diag(torch.tensor([1.0, 4 * EPS64], dtype=F64))
    assert aligned_mtl_weights(gram).tolist() == pytest.approx([math.sqrt(EPS64), 0.5], rel=1e-12)


def test_aligned_mtl_median_scale_by_hand() -> None:
    # orthogonal rows, G = diag(λ): B = √s·diag(1/√λ), α = √s/(T·√λ)
    # three kept (1, 4, 9): median 4, α = 2/(3·(3, 2, 1)) = (2/9, 1/3, 2/3)
    gram = torch.diag(torch.tensor([9.0, 4.0, 1.0], dtype=F64))
    assert aligned_mtl_weights(gram, "median").tolist() == pytest.approx([2 / 9, 1 / 3, 2 / 3], rel=1e-12)
    # four kept (1, 4, 9, 16): the lower middle one, 4 (torch.median), α = 2/(4·(4, 3, 2, 1))
    gram = torch.diag(torch.tensor([16.0, 9.0, 4.0, 1.0], dtype=F64))
    assert aligned_mtl_weights(gram, "median").tolist() == pytest.approx([1 / 8, 1 / 6, 1 / 4, 1 / 2], rel=1e-12)
    # a zero gradient: eigenvalues (0, 1, 4, 9), three kept: the median of the kept ones is 4, not 1
    gram = torch.diag(torch.tensor([0.0, 9.0, 4.0, 1.0], dtype=F64))
    assert aligned_mtl_weights(gram, "median").tolist() == pytest.approx([0.0, 1 / 6, 1 / 4, 1 / 2], rel=1e-12)


def test_aligned_mtl_rmse_scale_of_a_single_kept_eigenvalue() -> None:
    # G = diag(4, 0): one kept eigenvalue, mean 4/1 = 4; B = √4·e₁e₁ᵀ/√4 = e₁e₁ᵀ, α = (½, 0)
    gram = torch.diag(torch.tensor([4.0, 0.0], dtype=F64))
    assert aligned_mtl_weights(gram, "rmse").tolist() == pytest.approx([0.5, 0.0], rel=1e-12)


# ------------------------------------------------------------------ GradDrop
def test_graddrop_a_purity_equal_to_its_draw_keeps_neither_sign() -> None:
    s = weighting.get("graddrop", tasks=("a", "b"))  # seed 0, leak 0
    # the strategy draws U in float64 from its generator, then compares in the Jacobian's dtype (float32)
    draws = torch.rand(8, generator=torch.Generator().manual_seed(0), dtype=F64).float().tolist()
    ties = [u >= 0.5 for u in draws]
    assert ties == [True, True, False, True, True, True, False, False]  # U = .970 .708 .459 .921 .645 .791 .179 .351
    # u ≥ ½: column (u, −(1 − u)), purity ½(1 + (2u − 1)/1) = u exactly in float32 (1 − u, 2u − 1 and 2u
    # are exact): neither [P > U] nor [P < U], both entries dropped. u < ½: column (1, −1), P = ½ > U, the +1 passes
    row_a = [u if tie else 1.0 for u, tie in zip(draws, ties, strict=True)]
    row_b = [-(1 - u) if tie else -1.0 for u, tie in zip(draws, ties, strict=True)]
    x = torch.zeros(8, requires_grad=True)
    losses = {"a": (torch.tensor(row_a) * x).sum() + 1, "b": (torch.tensor(row_b) * x).sum() + 1}
    used = numbers(s.backward(losses, [x]))
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    # shares kept: a keeps its three 1s, ‖g_a‖² = 3 + Σ_ties u²; b keeps nothing
    squared = 3 + sum(u * u for u, tie in zip(draws, ties, strict=True) if tie)
    assert used == pytest.approx({"a": 3 / squared, "b": 0.0}, rel=1e-6)


def test_graddrop_leak_keeps_that_share_of_a_dropped_gradient_exactly() -> None:
    s = weighting.get("graddrop", leak=0.3)  # seed 0: U = (0.970…, 0.708…)
    # g_det = (2, 1), g_seg = (−1, 3): column 1 purity ½(1 + 1/3) = ⅔ < U₁: the negative sign passes (g_seg's);
    # column 2 purity 1 > U₂: both pass. Factors ℓ + (1 − ℓ)M: det (0.3, 1), seg (1, 1)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": 2 * x[0] + x[1], "seg": -x[0] + 3 * x[1]}, [x]))
    # d = (0.3·2 − 1, 1 + 3) = (−0.4, 4), exact in float64 (a float32 leak 0.3000000119 would be 2.4e-8 off)
    assert x.grad.tolist() == pytest.approx([-0.4, 4.0], rel=1e-12, abs=0)
    # shares: det (0.3·2·2 + 1·1)/(4 + 1) = 2.2/5; seg everything
    assert used == pytest.approx({"det": 0.44, "seg": 1.0}, rel=1e-12)


def test_graddrop_shares_of_zero_and_small_gradients() -> None:
    # rows: a = 0, b = (0.5, 0.25) (‖b‖² = 0.3125 < 1), c = (1, −1); U = ½ for both columns
    jac = torch.tensor([[0.0, 0.0], [0.5, 0.25], [1.0, -1.0]], dtype=F64)
    d, shares = graddrop_combine(jac, torch.full((2,), 0.5, dtype=F64))
    # column 1: all ≥ 0, P = 1 > ½: b's 0.5 and c's 1 pass; column 2: P = ½(1 − 0.75/1.25) = 0.2 < ½: c's −1 passes
    assert d.tolist() == [1.5, -1.0]
    # a: no gradient, share 1 by convention; b: (0.5·0.5)/0.3125 = 0.8; c: all of it
    assert shares.tolist() == pytest.approx([1.0, 0.8, 1.0], rel=1e-15)


def test_graddrop_combine_keeps_a_half_precision_jacobian_in_half_precision() -> None:
    jac = torch.tensor([[1.0, -2.0], [3.0, 1.0]], dtype=torch.float16)
    # column 1: P = 1 > ½, both pass (1 + 3); column 2: P = ½(1 − 1/3) = ⅓ < ½, the −2 passes
    d, shares = graddrop_combine(jac, torch.full((2,), 0.5, dtype=torch.float16))
    assert d.dtype == shares.dtype == torch.float16
    assert d.tolist() == [4.0, -2.0]
    assert shares.tolist() == [1.0, pytest.approx(9 / 10, rel=1e-3)]  # second row keeps 3 of (3, 1): 9/10


# ------------------------------------------------------------------ UPGrad and its active-set solver
@pytest.mark.parametrize(
    ("gram", "linear", "expected"),
    [
        # x₀ = 5/11 enters, then x₁: (0.4, 0.3), then x₂: the joint solution (−0.083, −0.193, 1.575) has two
        # negatives; the step towards it stops where x₁ reaches 0 (α ≈ 0.608); re-solved on {x₀, x₂},
        # [[11, 4], [4, 4]]s = (5, 5) gives s = (0, 5/4): x₀ exactly 0 is blocked too and dropped
        ([[11.0, 2.0, 4.0], [2.0, 14.0, 5.0], [4.0, 5.0, 4.0]], [-5.0, -5.0, -5.0], [0.0, 0.0, 1.25]),
        # x₂ = 1, then x₀: (4/35, 0, 37/35), then x₁: the joint solution (−1/28, 3/16, 117/112) stops where
        # x₀ reaches 0; re-solved on {x₁, x₂}: [[14, −2], [−2, 6]]s = (0, 6), s = (3/20, 21/20)
        ([[19.0, 15.0, -3.0], [15.0, 14.0, -2.0], [-3.0, -2.0, 6.0]], [1.0, 0.0, -6.0], [0.0, 0.15, 1.05]),
        # x₁ = 1/7, then x₂: (0, 1/40, 11/20), then x₀: the joint solution (1/5, −1/20, 7/10) stops where
        # x₁ reaches 0 (α = ⅓); re-solved on {x₀, x₂}: [[7, −3], [−3, 7]]s = (−1, 4), s = (1/8, 5/8)
        ([[7.0, 6.0, -3.0], [6.0, 28.0, 6.0], [-3.0, 6.0, 7.0]], [1.0, -4.0, -4.0], [0.125, 0.0, 0.625]),
    ],
)
def test_nonnegative_quadratic_drops_a_variable_that_an_entering_one_turns_negative(
    gram: list[list[float]], linear: list[float], expected: list[float]
) -> None:
    g, b = torch.tensor(gram, dtype=F64), torch.tensor(linear, dtype=F64)
    x = nonnegative_quadratic(g, b)
    assert x.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # optimality (KKT): ∇ = Gx + b is 0 where x > 0 and ≥ 0 where x = 0
    grad = (g @ x + b).tolist()
    for xi, gi in zip(x.tolist(), grad, strict=True):
        assert gi == pytest.approx(0.0, abs=1e-12) if xi > 0 else gi >= -1e-12


def test_nonnegative_quadratic_leaves_a_gain_equal_to_the_tolerance_at_zero() -> None:
    # G = I: tolerance 1·1e-12 + 1e-12. −∇ at 0 is (tol, 1): only x₁ exceeds it and enters, x₀ stays exactly 0
    tol = 1.0 * 1e-12 + 1e-12
    x = nonnegative_quadratic(torch.eye(2, dtype=F64), torch.tensor([-tol, -1.0], dtype=F64))
    assert x.tolist() == [0.0, 1.0]


def test_projection_gramian_is_float64_with_an_exact_regularisation() -> None:
    # a float32 Gramian with trace 3: G/3 computed in float64, plus 1e-4 (the float64 value) on the diagonal
    p = projection_gramian(torch.tensor([[1.0, -1.0], [-1.0, 2.0]]), 1e-4)
    assert p.dtype == F64
    assert p.tolist() == [[1 / 3 + 1e-4, -1 / 3], [-1 / 3, 2 / 3 + 1e-4]]
    # trace 0 (every gradient 0): nothing to divide by, the regularisation alone
    assert projection_gramian(torch.zeros(2, 2, dtype=F64), 1e-4).tolist() == [[1e-4, 0.0], [0.0, 1e-4]]


def test_upgrad_zero_gradients_give_the_mean_weights() -> None:
    # G = 0 (trace 0): the projection Gramian is reg_eps·I, no constraint is active, w = Σ e_i/2 = (½, ½)
    for reg_eps in (1e-4, 0.0):
        assert upgrad_weights(torch.zeros(2, 2, dtype=F64), reg_eps).tolist() == [0.5, 0.5], reg_eps


def test_upgrad_is_scale_invariant_below_a_unit_trace() -> None:
    # the by-hand pair g1 = (1, 0), g2 = (−1, 1) shrunk tenfold (trace 0.03): the same weights (1, ¾)
    jac = 0.1 * torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=F64)
    assert upgrad_weights(jac @ jac.T, 0.0).tolist() == pytest.approx([1.0, 0.75], rel=1e-12)


# ------------------------------------------------------------------ IMTL-G
def test_imtl_g_zero_gradients_give_zero_weights() -> None:
    assert imtl_g_weights(torch.zeros(2, 2, dtype=F64)).tolist() == [0.0, 0.0]


def test_imtl_g_is_invariant_to_large_and_tiny_gradient_scales() -> None:
    # orthogonal g1 = 2s·e₁, g2 = s·e₂: α ∝ G⁻¹d = (1/2, 1/1) → (⅓, ⅔) whatever s
    for scale in (1e7, 1.0, 1e-7):
        jac = scale * torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
        assert imtl_g_weights(jac @ jac.T).tolist() == pytest.approx([1 / 3, 2 / 3], rel=1e-9), scale
    # nearly opposite g1 = e₁, g2 = −(1 + δ)e₁, δ = 2⁻²⁰: on the trace-normalised Gramian (rank 1, q qᵀ with
    # q = (1, −(1 + δ))/√s, s = 1 + (1 + δ)²) 1ᵀG⁺d = δ²(2 + δ)/s^{3/2} ≈ 6.4e-13 < 1e-12: α = 0, at any scale
    delta = 2.0**-20
    assert delta**2 * (2 + delta) / (1 + (1 + delta) ** 2) ** 1.5 < 1e-12
    for scale in (1.0, 1e-6):
        jac = scale * torch.tensor([[1.0, 0.0], [-(1 + delta), 0.0]], dtype=F64)
        assert imtl_g_weights(jac @ jac.T).tolist() == [0.0, 0.0], scale


def test_imtl_g_opposite_gradients_of_different_norms() -> None:
    # g1 = e₁, g2 = −3e₁: G = q qᵀ, q = (1, −3), G⁺ = q qᵀ/100, d = (1, 3), qᵀd = −8:
    # G⁺d = (−0.08, 0.24), 1ᵀG⁺d = 0.16 (0.506 on the trace-normalised Gramian, below 1 but not 0): α = (−½, 3/2)
    jac = torch.tensor([[1.0, 0.0], [-3.0, 0.0]], dtype=F64)
    assert imtl_g_weights(jac @ jac.T).tolist() == pytest.approx([-0.5, 1.5], rel=1e-12)


# ------------------------------------------------------------------ GradNorm
ADAM_EPS = 1e-8


def first_adam_step(weights: list[float], grads: list[float], lr: float) -> list[float]:
    """Adam's first step (m̂ = g, √v̂ = |g|), then GradNorm's renormalisation to Σw = T."""
    moved = [w - lr * g / (abs(g) + ADAM_EPS) for w, g in zip(weights, grads, strict=True)]
    return [len(moved) * w / sum(moved) for w in moved]


def test_gradnorm_with_three_tasks_takes_the_last_norm_by_subtraction() -> None:
    s = weighting.get("gradnorm", tasks=("a", "b", "c"))
    x = torch.zeros(3, requires_grad=True)

    def losses(ca: float, cb: float, cc: float) -> dict[str, torch.Tensor]:
        return {"a": x[0] + ca, "b": 2 * x[1] + cb, "c": 4 * x[2] + cc}  # ‖∇_W L‖ = (1, 2, 4)

    s.backward(losses(2.0, 1.0, 1.0), [x], [x])
    # step 1: w = 1, G = (1, 2, 4), Ḡ = 7/3, r = 1: L_grad = 4/3 + 1/3 + 5/3; ∂/∂w = sign(G − Ḡ)·n = (−1, −2, 4)
    assert float(s.last_grad_loss) == pytest.approx(10 / 3, rel=1e-6)
    w = first_adam_step([1.0, 1.0, 1.0], [-1.0, -2.0, 4.0], 0.025)
    assert list(s.current_weights().values()) == pytest.approx(w, rel=1e-6)
    x.grad = None
    s.backward(losses(1.0, 1.0, 1.0), [x], [x])
    assert x.grad.tolist() == pytest.approx([w[0], 2 * w[1], 4 * w[2]], rel=1e-6)  # the weights before the step
    # step 2: L/L(0) = (½, 1, 1), r = (0.6, 1.2, 1.2); the last task's norm ‖Σw∇L − w_a∇L_a − w_b∇L_b‖/w_c = 4
    g = [w[0] * 1, w[1] * 2, w[2] * 4]
    target = [sum(g) / 3 * r**1.5 for r in (0.6, 1.2, 1.2)]
    expected = sum(abs(gi - ti) for gi, ti in zip(g, target, strict=True))
    assert float(s.last_grad_loss) == pytest.approx(expected, rel=1e-5)


def test_gradnorm_measures_this_steps_gradient_of_the_layer_only() -> None:
    s = weighting.get("gradnorm")
    x = torch.zeros(2, requires_grad=True)
    x.grad = torch.tensor([5.0, 7.0])  # accumulated from an earlier backward
    unused = torch.zeros(3, requires_grad=True)  # a layer parameter no loss depends on
    s.backward(linear_losses(x), [x], [x, unused])
    # ∇ of this step (1, 2) = w_det(1, 0) + w_seg(0, 2): norms (1, 2), Ḡ = 1.5, L_grad = ½ + ½
    assert float(s.last_grad_loss) == pytest.approx(1.0, rel=1e-6)
    assert x.grad.tolist() == [6.0, 9.0] and unused.grad is None
    assert list(s.current_weights().values()) == pytest.approx(first_adam_step([1, 1], [-1, 2], 0.025), rel=1e-6)


def test_gradnorm_without_a_layer_or_with_a_task_missing_takes_a_plain_weighted_step() -> None:
    s = weighting.get("gradnorm")
    assert s.last_grad_loss is None
    x = torch.zeros(2, requires_grad=True)
    assert numbers(s.backward(linear_losses(x), [x])) == {"det": 1.0, "seg": 1.0}  # no last shared layer given
    assert x.grad.tolist() == [1.0, 2.0] and s.last_grad_loss is None
    assert s.current_weights() == {"det": 1.0, "seg": 1.0}
    s.backward(linear_losses(x), [x], [x])  # a full step moves the weights to w
    w = first_adam_step([1, 1], [-1, 2], 0.025)
    x.grad = None
    used = numbers(s.backward({"det": x[0] + 2.0}, [x], [x]))  # seg missing: w_det·∇L_det, no update
    assert used == pytest.approx({"det": w[0]}, rel=1e-6)
    assert x.grad.tolist() == pytest.approx([w[0], 0.0], rel=1e-6)
    assert list(s.current_weights().values()) == pytest.approx(w, rel=1e-6)


def test_gradnorm_measures_norms_without_the_loss_scale() -> None:
    s = weighting.get("gradnorm")
    s.gradient_scale = 8.0  # fp16 loss scaling: the losses (and their gradients) arrive multiplied by 8
    x = torch.zeros(2, requires_grad=True)
    s.backward({t: 8 * v for t, v in linear_losses(x).items()}, [x], [x])
    assert float(s.last_grad_loss) == pytest.approx(1.0, rel=1e-6)  # the unscaled norms (1, 2), as without scaling


def test_gradnorm_frees_the_graph_of_the_losses_it_differentiated() -> None:
    s = weighting.get("gradnorm")
    x = torch.zeros(2, requires_grad=True)
    losses = {"det": (x[0] + 1) ** 2 + 1, "seg": (2 * x[1] + 1) ** 2}
    s.backward(losses, [x], [x])
    # like a plain backward(): the graph behind L_det is released once GradNorm has taken ∇_W L_det
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(losses["det"], x)


def test_gradnorm_grad_loss_lives_in_the_weights_dtype() -> None:
    s = weighting.get("gradnorm")  # float32 weights
    x = torch.zeros(2, dtype=F64, requires_grad=True)  # a float64 network
    s.backward(linear_losses(x), [x], [x])
    assert s.last_grad_loss.dtype == torch.float32 and float(s.last_grad_loss) == pytest.approx(1.0, rel=1e-6)


def converted_replacing_parameters(name: str) -> weighting.WeightingStrategy:
    """``weighting.get(name).to(float64)`` with torch's switch on that makes ``.to()`` create new Parameter objects."""
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        return weighting.get(name).to(F64)
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)


def test_gradnorm_optimizer_follows_weights_that_a_conversion_replaces() -> None:
    s = converted_replacing_parameters("gradnorm")
    assert s.weights.dtype == F64 and s.weight_optimizer.param_groups[0]["params"][0] is s.weights
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    s.backward(linear_losses(x), [x], [x])
    assert list(s.current_weights().values()) == pytest.approx(first_adam_step([1, 1], [-1, 2], 0.025), rel=1e-12)


# ------------------------------------------------------------------ FAMO
def test_famo_logit_gradient_by_hand() -> None:
    logits = torch.zeros(2, dtype=F64)  # z = (½, ½)
    # δ = log L(prev) − log L(now) = (log 4 − log 2, 0) = (log 2, 0); z·δ = log 2/2; z(δ − z·δ) = (log 2/4, −log 2/4)
    grad = famo_logit_gradient(logits, torch.tensor([4.0, 1.0], dtype=F64), torch.tensor([2.0, 1.0], dtype=F64))
    assert grad.tolist() == pytest.approx([math.log(2) / 4, -math.log(2) / 4], rel=1e-8)


def test_famo_logit_gradient_of_zero_losses_is_finite() -> None:
    logits = torch.zeros(2, dtype=F64)
    one = 1.0 + 1e-8
    # L(prev) = (0, 1) → (1, 1): δ₁ = log 1e-8 − log(1 + 1e-8), gradient (δ₁/4, −δ₁/4)
    grad = famo_logit_gradient(logits, torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64))
    delta = math.log(1e-8) - math.log(one)
    assert grad.tolist() == pytest.approx([delta / 4, -delta / 4], rel=1e-12)
    # L(prev) = (1, 1) → (0, 1): δ₁ = log(1 + 1e-8) − log 1e-8
    grad = famo_logit_gradient(logits, torch.tensor([1.0, 1.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))
    assert grad.tolist() == pytest.approx([-delta / 4, delta / 4], rel=1e-12)


def test_famo_weights_of_a_zero_loss() -> None:
    # z = (½, ½), L = (0, 1): z/(L + 1e-8) = (0.5e8, 0.5/(1 + 1e-8)); w = that over its sum, both positive
    w = famo_weights(torch.zeros(2, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))
    ratio = (0.5 / 1e-8, 0.5 / (1 + 1e-8))
    assert w.tolist() == pytest.approx([ratio[0] / sum(ratio), ratio[1] / sum(ratio)], rel=1e-12)


def test_famo_float32_logits_with_float64_losses() -> None:
    s = weighting.get("famo")  # float32 logits
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = s.backward(linear_losses(x, 2.0, 0.5))
    assert all(w.dtype == F64 for w in used.values())  # the losses' dtype
    assert numbers(used) == pytest.approx({"det": 0.2, "seg": 0.8}, rel=1e-6)  # z/L = (¼, 1) normalised
    s.backward(linear_losses(x.detach().requires_grad_(), 1.0, 0.5))
    # δ = (log 2, 0): the logits (float32) take Adam's first step ∓lr
    assert s.logits.dtype == torch.float32
    assert s.logits.detach().tolist() == pytest.approx([-0.025, 0.025], rel=1e-5)


def test_famo_extra_state_of_a_fresh_strategy_and_an_older_checkpoint() -> None:
    s = weighting.get("famo")
    assert s.get_extra_state()["has_previous"] is False
    x = torch.zeros(2, requires_grad=True)
    s.backward(linear_losses(x, 2.0, 0.5))
    assert s.has_previous is True
    s.set_extra_state({"step_count": 1, "epoch_count": 0})  # a checkpoint without FAMO's keys keeps them
    assert s.has_previous is True
    s.backward(linear_losses(x, 1.0, 0.5))  # so the logits still step on δ = (log 2, 0)
    assert s.logits.detach().tolist() == pytest.approx([-0.025, 0.025], rel=1e-5)


def test_famo_optimizer_follows_logits_that_a_conversion_replaces() -> None:
    s = converted_replacing_parameters("famo")
    assert s.logits.dtype == F64 and s.logit_optimizer.param_groups[0]["params"][0] is s.logits
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    s.backward(linear_losses(x, 2.0, 0.5))
    s.backward(linear_losses(x, 1.0, 0.5))
    assert s.logits.detach().tolist() == pytest.approx([-0.025, 0.025], rel=1e-6)


# ------------------------------------------------------------------ STCH
def test_stch_fresh_state() -> None:
    s = weighting.get("stch")
    assert s.current_weights() == {"det": 1.0, "seg": 1.0}
    state = s.get_extra_state()
    assert state == {"step_count": 0, "epoch_count": 0, "counts": [0, 0], "has_nadir": False}
    assert state["has_nadir"] is False


def test_stch_zero_loss_during_the_warm_up() -> None:
    s = weighting.get("stch")
    # Σ log(L + 1e-20): weight and gradient 1/(0 + 1e-20) = 1e20 for the zero loss, finite
    used, grad = linear_step(s, 0.0, 0.5)
    assert used == pytest.approx({"det": 1e20, "seg": 2.0}, rel=1e-12)
    assert grad == pytest.approx([1e20, 4.0], rel=1e-12)


def test_stch_zero_loss_after_the_warm_up() -> None:
    s = weighting.get("stch")
    linear_step(s, 2.0, 0.5)
    s.on_epoch_end()
    assert s.has_nadir and s.nadir.tolist() == [2.0, 0.5]
    # L = (0, 1), μ = 1: log(L/z + 1e-20) = (log 1e-20, log 2), softmax ≈ (1e-20/2, 1);
    # w = T·softmax/(L + 1e-20·z) = (2·(1e-20/2)/(1e-20·2), 2·1/1) = (½, 2)
    used, grad = linear_step(s, 0.0, 1.0)
    assert used == pytest.approx({"det": 0.5, "seg": 2.0}, rel=1e-9)
    assert grad == pytest.approx([0.5, 4.0], rel=1e-9)


def test_stch_half_precision_losses_keep_their_dtype() -> None:
    s = weighting.get("stch")  # float32 nadir
    half = torch.float16
    s.backward({"det": torch.tensor(2.0, dtype=half, requires_grad=True), "seg": torch.tensor(0.5, dtype=half)})
    s.on_epoch_end()
    losses = {"det": torch.tensor(1.0, dtype=half, requires_grad=True), "seg": torch.tensor(1.0, dtype=half)}
    weights = s.weights(losses)
    # log(L/z) = (log ½, log 2), softmax = (⅕, ⅘), w = 2·softmax/1 = (0.4, 1.6), in float16
    assert all(w.dtype == half for w in weights.values())
    assert numbers(weights) == pytest.approx({"det": 0.4, "seg": 1.6}, rel=2e-3)
    objective = s.objective(losses, weights, ["det", "seg"])
    # 2·1·logsumexp(log ½, log 2) = 2 log 2.5
    assert objective.dtype == half and float(objective.detach()) == pytest.approx(2 * math.log(2.5), rel=2e-3)


def test_stch_an_older_checkpoint_without_stch_keys_keeps_the_nadir_state() -> None:
    s = weighting.get("stch")
    linear_step(s, 2.0, 0.5)
    s.on_epoch_end()
    s.set_extra_state({"step_count": 1, "epoch_count": 1})
    assert s.has_nadir is True and s.counts == [1, 1]
    assert linear_step(s, 1.0, 1.0)[0] == pytest.approx({"det": 0.4, "seg": 1.6}, rel=1e-6)  # still the scalarisation


# ------------------------------------------------------------------ DB-MTL and MoCo
@pytest.mark.parametrize("name", ["db_mtl", "moco"])
def test_update_counters_stay_integers(name: str) -> None:
    s = weighting.get(name).to(F64)  # a float conversion leaves the int64 counters alone
    jac = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64)
    for _ in range(2):
        aggregate(s, jac, torch.tensor([2.0, 0.5], dtype=F64))
    assert s.updates.dtype == torch.int64 and s.updates.tolist() == [2, 2]
    assert s.state_dict()["updates"].dtype == torch.int64
    if name == "moco":
        assert s.lambda_updates.dtype == torch.int64 and int(s.lambda_updates) == 2


@pytest.mark.parametrize("name", ["db_mtl", "moco"])
def test_a_float32_strategy_returns_the_jacobians_dtype(name: str) -> None:
    single, double = weighting.get(name), weighting.get(name).to(F64)
    jac = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64)
    losses = torch.tensor([2.0, 0.5], dtype=F64)
    combined, weights = aggregate(single, jac, losses)
    assert combined.dtype == weights.dtype == F64
    reference, reference_weights = aggregate(double, jac, losses)
    assert combined.tolist() == pytest.approx(reference.tolist(), rel=1e-6)
    assert weights.tolist() == pytest.approx(reference_weights.tolist(), rel=1e-6)


def test_moco_tasks_holding_no_weight_step_from_uniform_on_their_simplex() -> None:
    s = weighting.get("moco", tasks=("a", "b", "c"), beta=1.0, beta_sigma=0.0, gamma=0.1, gamma_sigma=0.0).to(F64)
    # β = 1: y = g. Step 1, g = (0, 100e₁, 100e₂): YYᵀλ = (0, 10⁴/3, 10⁴/3), λ − 0.1·that = (⅓, −333, −333) → (1, 0, 0)
    aggregate(s, torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], dtype=F64), torch.ones(3, dtype=F64))
    assert s.lambdas.tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-15) and float(s.lambdas[1:].sum()) == 0.0
    # step 2, b and c only, g = (e₁, 2e₂): their mass m = 0, so the share starts uniform (½, ½);
    # step (YYᵀ)(½, ½) = (½, 2), (½, ½) − 0.1·(½, 2) = (0.45, 0.3), projected: + 0.125 → (0.575, 0.425)
    combined, weights = aggregate(
        s, torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64), torch.ones(2, dtype=F64), present=("b", "c")
    )
    assert weights.tolist() == pytest.approx([0.575, 0.425], rel=1e-12)  # share·β_t
    assert combined.tolist() == pytest.approx([0.575, 0.85], rel=1e-12)  # share @ Y
    assert s.lambdas[1:].tolist() == [0.0, 0.0]  # m·share = 0: λ stays on the simplex


def test_moco_rho_regularises_in_the_strategys_dtype() -> None:
    rho, gamma = 0.3, 0.1
    s = weighting.get("moco", beta=1.0, beta_sigma=0.0, gamma=gamma, gamma_sigma=0.0, rho=rho).to(F64)
    jac = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64)
    # y = g = (e₁, 2e₂) each step: (YYᵀ + ρI)λ = ((1 + ρ)λ₁, (4 + ρ)λ₂); both components stay positive, so the
    # projection adds (1 − Σv)/2 to each. Step 1 from (½, ½): v = (0.435, 0.285) → (0.575, 0.425), where ρλ is a
    # constant shift; step 2: v = (0.575 − 0.07475, 0.425 − 0.18275) → (0.629, 0.371), where ρ counts
    lam = [0.5, 0.5]
    for _ in range(2):
        v = [lam[0] - gamma * (1 + rho) * lam[0], lam[1] - gamma * (4 + rho) * lam[1]]
        lam = [vi + (1 - sum(v)) / 2 for vi in v]
        combined, weights = aggregate(s, jac, torch.ones(2, dtype=F64))
    assert lam == pytest.approx([0.629, 0.371], rel=1e-12)
    # ρ = 0.3 in float64: a float32 0.3 (1.2e-8 off) would move the weights by ≈ 1e-10
    assert weights.tolist() == pytest.approx(lam, rel=1e-13)
    assert combined.tolist() == pytest.approx([lam[0], 2 * lam[1]], rel=1e-13)


# ------------------------------------------------------------------ lazily shaped buffers
def test_a_state_dict_without_the_tracked_buffer_loads_non_strictly() -> None:
    trained = weighting.get("db_mtl").to(F64)
    aggregate(trained, torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64))
    state = trained.state_dict()
    del state["tracked"]
    fresh = weighting.get("db_mtl")
    result = fresh.load_state_dict(state, strict=False)
    assert result.missing_keys == ["tracked"]
    assert fresh.tracked.shape == (2, 0) and fresh.updates.tolist() == [1, 1]
