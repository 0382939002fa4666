"""Option validation of the gradient aggregations and stateful strategies: every refusal names its option,
boundaries are checked on both sides, and the defaults are observed through the weights they produce.

Each ``raise ValueError`` of aligned_mtl, graddrop, upgrad, gradnorm, famo, stch, db_mtl, moco, pcgrad
(its seed) and lazy_buffer is reached, through ``weighting.get`` (which prefixes ``strategy 'name': ``)
for the constructors.
"""

from __future__ import annotations

import math

import pytest
import torch

from strategy_helpers import F64, linear_step, numbers
from taskweight import weighting
from taskweight.errors import ConfigError
from taskweight.weighting.upgrad import upgrad_weights

ADAM_EPS = 1e-8


def refused(name: str, message: str, **options: object) -> None:
    """``weighting.get(name, **options)`` raises a ConfigError whose whole text is ``strategy 'name': message``."""
    with pytest.raises(ConfigError, match=f"^strategy '{name}': {message}$"):
        weighting.get(name, **options)


# ------------------------------------------------------------------ Aligned-MTL
@pytest.mark.parametrize("mode", ["max", "MEDIAN", ""])
def test_aligned_mtl_unknown_scale_mode_is_refused(mode: str) -> None:
    refused(
        "aligned_mtl", rf"option 'scale_mode' must be one of \('min', 'median', 'rmse'\), got '{mode}'", scale_mode=mode
    )


@pytest.mark.parametrize(
    ("options", "component"),
    [
        ({}, 1 / 3),  # default min: √1 · 1/3 per task
        ({"scale_mode": "min"}, 1 / 3),
        ({"scale_mode": "median"}, 2 / 3),  # √4 · 1/3
        ({"scale_mode": "rmse"}, math.sqrt(14 / 3) / 3),  # √((9 + 4 + 1)/3) · 1/3
    ],
)
def test_aligned_mtl_scale_mode_reaches_the_combination(options: dict, component: float) -> None:
    s = weighting.get("aligned_mtl", tasks=("a", "b", "c"), **options)
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    # J = diag(3, 2, 1), G = diag(9, 4, 1): α = √s/(3·(3, 2, 1)), d = αᵀJ = √s/3 on every coordinate
    s.backward({"a": 3 * x[0] + 1, "b": 2 * x[1] + 1, "c": x[2] + 1}, [x])
    assert x.grad.tolist() == pytest.approx([component] * 3, rel=1e-12)


# ------------------------------------------------------------------ GradDrop
@pytest.mark.parametrize("leak", [-0.01, 1.01, 2.0])
def test_graddrop_leak_outside_the_unit_interval_is_refused(leak: float) -> None:
    refused("graddrop", rf"option 'leak' must lie in \[0, 1\], got {leak}", leak=leak)


def test_graddrop_negative_seed_is_refused() -> None:
    refused("graddrop", "option 'seed' must be an integer >= 0, got -1", seed=-1)


def test_graddrop_leak_one_is_accepted_and_keeps_every_gradient() -> None:
    s = weighting.get("graddrop", leak=1.0)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": 2 * x[0] - x[1], "seg": -3 * x[0] + x[1]}, [x]))
    assert x.grad.tolist() == [-1.0, 0.0]  # the plain sum (2 − 3, −1 + 1)
    assert used == {"det": 1.0, "seg": 1.0}


def graddrop_signs(**options: object) -> tuple[list[float], dict[str, float]]:
    """GradDrop on 8 columns (1, −1), purity ½ each: +1 passes where U < ½, −1 where U > ½."""
    s = weighting.get("graddrop", **options)
    x = torch.zeros(8, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": x.sum() + 1, "seg": -x.sum() + 1}, [x]))
    return x.grad.tolist(), used


def test_graddrop_defaults_are_no_leak_and_seed_zero() -> None:
    # seed 0: U = .970 .708 .459 .921 .645 .791 .179 .351 (float64 draws of the strategy's generator)
    expected = torch.rand(8, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert [round(u, 3) for u in expected.tolist()] == [0.97, 0.708, 0.459, 0.921, 0.645, 0.791, 0.179, 0.351]
    grad, used = graddrop_signs()
    assert grad == [-1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0]  # leak 0: the other sign contributes nothing
    assert used == {"det": 3 / 8, "seg": 5 / 8}
    assert graddrop_signs(seed=0, leak=0.0) == (grad, used)
    # seed 1: U = .061 .225 .234 .177 .556 .109 .461 .708
    assert graddrop_signs(seed=1)[0] == [1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0]


# ------------------------------------------------------------------ PCGrad
def test_pcgrad_negative_seed_is_refused() -> None:
    refused("pcgrad", "option 'seed' must be an integer >= 0, got -1", seed=-1)


def test_pcgrad_default_seed_is_zero() -> None:
    # g1 = (1, 0), g2 = (−1, 1), g3 = (0, −1); seed 0 draws the orders (others of each task) [3, 2], [3, 1], [2, 1]:
    # g1: ·g3 = 0, ·g2 = −1 → g1 + ½g2 = (½, ½); g2: ·g3 = −1 → (−1, 0), ·g1 = −1 → (0, 0);
    # g3: ·g2 = −1 → g3 + ½g2 = (−½, −½), ·g1 = −½ → (0, −½). Σ = (½, 0)
    def combined(**options: object) -> list[float]:
        s = weighting.get("pcgrad", tasks=("a", "b", "c"), **options)
        x = torch.zeros(2, dtype=F64, requires_grad=True)
        s.backward({"a": x[0] + 1, "b": -x[0] + x[1] + 1, "c": -x[1] + 1}, [x])
        return x.grad.tolist()

    assert combined() == pytest.approx([0.5, 0.0], abs=1e-15)
    assert combined(seed=0) == combined()
    # seed 1 draws [2, 3], [1, 3], [2, 1]: g1 + ½g2 = (½, ½), ·g3 = −½ → (½, 0); g2 + g1 = (0, 1), ·g3 = −1
    # → (0, 0); g3 as above (0, −½). Σ = (½, −½)
    assert combined(seed=1) == pytest.approx([0.5, -0.5], abs=1e-15)


# ------------------------------------------------------------------ UPGrad
@pytest.mark.parametrize("reg_eps", [-1e-3, 1.0, 1.5])
def test_upgrad_reg_eps_outside_zero_one_is_refused(reg_eps: float) -> None:
    refused("upgrad", rf"option 'reg_eps' must lie in \[0, 1\), got {reg_eps}", reg_eps=reg_eps)


def upgrad_pair(reg_eps: float) -> list[float]:
    """UPGrad's weights of g1 = (1, 0), g2 = (−1, 1): G/tr = [[1, −1], [−1, 2]]/3 + εI.

    e₁/2: the constraint on g2 is active, v = (½, (1/6)/(2/3 + ε)); e₂/2: v = ((1/6)/(1/3 + ε), ½); w = Σ v."""
    return [0.5 + (1 / 6) / (1 / 3 + reg_eps), 0.5 + (1 / 6) / (2 / 3 + reg_eps)]


@pytest.mark.parametrize("reg_eps", [0.0, 0.5, 0.999])
def test_upgrad_reg_eps_inside_zero_one_reaches_the_weights(reg_eps: float) -> None:
    s = weighting.get("upgrad", reg_eps=reg_eps)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": x[0] + 2.0, "seg": -x[0] + x[1] + 1.0}, [x]))  # g1 = (1, 0), g2 = (−1, 1)
    w = upgrad_pair(reg_eps)
    assert used == pytest.approx({"det": w[0], "seg": w[1]}, rel=1e-12)
    assert x.grad.tolist() == pytest.approx([w[0] - w[1], w[1]], rel=1e-12)  # d = wᵀJ


def test_upgrad_default_reg_eps_is_1e_4() -> None:
    jac = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=F64)
    assert upgrad_weights(jac @ jac.T).tolist() == pytest.approx(upgrad_pair(1e-4), rel=1e-12)
    s = weighting.get("upgrad")
    assert s.reg_eps == 1e-4
    weights = s.gramian_weights(jac @ jac.T, torch.ones(2, dtype=F64))
    assert weights.tolist() == pytest.approx(upgrad_pair(1e-4), rel=1e-12)
    assert upgrad_pair(1e-4)[0] == pytest.approx(1 - 1.5e-4, rel=1e-6)  # not the unregularised (1, ¾)


# ------------------------------------------------------------------ GradNorm
def test_gradnorm_negative_alpha_is_refused() -> None:
    refused("gradnorm", "option 'alpha' must be >= 0, got -0.5", alpha=-0.5)


@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_gradnorm_non_positive_lr_is_refused(lr: float) -> None:
    refused("gradnorm", f"option 'lr' must be > 0, got {lr}", lr=lr)


@pytest.mark.parametrize("min_weight", [0.0, 1.0, 1.5, -0.1])
def test_gradnorm_min_weight_outside_the_open_unit_interval_is_refused(min_weight: float) -> None:
    refused("gradnorm", rf"option 'min_weight' must lie in \(0, 1\), got {min_weight}", min_weight=min_weight)


def first_adam_step(weights: list[float], grads: list[float], lr: float) -> list[float]:
    """Adam's first step (m̂ = g, √v̂ = |g|), then GradNorm's renormalisation to Σw = T."""
    moved = [w - lr * g / (abs(g) + ADAM_EPS) for w, g in zip(weights, grads, strict=True)]
    return [len(moved) * w / sum(moved) for w in moved]


def gradnorm_second_loss(w: list[float], alpha: float) -> float:
    """L_grad of the second step below: n = (1, 2), L/L(0) = (½, 1), r = (⅔, 4/3)."""
    g = [w[0] * 1, w[1] * 2]
    target = [sum(g) / 2 * r**alpha for r in (2 / 3, 4 / 3)]
    return sum(abs(gi - ti) for gi, ti in zip(g, target, strict=True))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.5, 3.0])
def test_gradnorm_alpha_at_and_above_zero_is_accepted_and_sets_the_targets(alpha: float) -> None:
    s = weighting.get("gradnorm", alpha=alpha, lr=0.025)
    linear_step(s, 2.0, 0.5)  # step 1: r = 1, L_grad = |1 − 1.5| + |2 − 1.5| whatever α
    assert float(s.last_grad_loss) == pytest.approx(1.0, rel=1e-6)
    w = first_adam_step([1.0, 1.0], [-1.0, 2.0], 0.025)
    linear_step(s, 1.0, 0.5)
    assert float(s.last_grad_loss) == pytest.approx(gradnorm_second_loss(w, alpha), rel=1e-5)


def test_gradnorm_defaults_alpha_1_5_and_lr_0_025() -> None:
    s = weighting.get("gradnorm")
    used, grad = linear_step(s, 2.0, 0.5)
    assert used == {"det": 1.0, "seg": 1.0} and grad == [1.0, 2.0]
    # ∂L_grad/∂w = sign(G − Ḡ)·n = (−1, 2): Adam moves w by ∓lr, then Σw = 2
    w = first_adam_step([1.0, 1.0], [-1.0, 2.0], 0.025)
    assert list(s.current_weights().values()) == pytest.approx(w, rel=1e-6)
    used, grad = linear_step(s, 1.0, 0.5)
    assert used == pytest.approx({"det": w[0], "seg": w[1]}, rel=1e-6)
    assert float(s.last_grad_loss) == pytest.approx(gradnorm_second_loss(w, 1.5), rel=1e-5)
    assert gradnorm_second_loss(w, 1.5) == pytest.approx(0.5554, abs=1e-3)  # 2.5 would give ≈ 1.59


@pytest.mark.parametrize("options", [{"lr": 1e-6}, {"min_weight": 1e-9}, {"min_weight": 0.999}])
def test_gradnorm_small_positive_lr_and_min_weight_inside_zero_one_are_accepted(options: dict) -> None:
    s = weighting.get("gradnorm", **options)
    linear_step(s, 2.0, 0.5)
    assert float(s.last_grad_loss) == pytest.approx(1.0, rel=1e-6)


def test_gradnorm_min_weight_clamps_before_the_renormalisation() -> None:
    s = weighting.get("gradnorm", lr=5.0, min_weight=0.25)
    linear_step(s, 2.0, 0.5)
    # Adam moves w by ∓5: (6, −4) → clamped (6, 0.25) → ·2/6.25 = (1.92, 0.08)
    assert list(s.current_weights().values()) == pytest.approx([1.92, 0.08], rel=1e-6)


# ------------------------------------------------------------------ FAMO
@pytest.mark.parametrize("lr", [0.0, -0.01, float("nan")])
def test_famo_non_positive_lr_is_refused(lr: float) -> None:
    refused("famo", f"option 'lr' must be > 0, got {lr}", lr=lr)


@pytest.mark.parametrize("gamma", [-0.01, float("nan")])
def test_famo_negative_gamma_is_refused(gamma: float) -> None:
    refused("famo", rf"option 'gamma' \(weight decay of the logits\) must be >= 0, got {gamma}", gamma=gamma)


def adam_path(raw: list[float], lr: float, decay: float) -> float:
    """A scalar parameter from 0 after torch's Adam (L2 weight decay ``decay``) on the raw gradients ``raw``."""
    p, m, v = 0.0, 0.0, 0.0
    for t, r in enumerate(raw, start=1):
        g = r + decay * p
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        p -= lr / (1 - 0.9**t) * m / (math.sqrt(v) / math.sqrt(1 - 0.999**t) + ADAM_EPS)
    return p


def famo_three_steps(**options: object) -> list[float]:
    """The logits after the losses (2, ½), (1, ½), (1, ½): the first step sets L(prev); δ = (log 2, 0), then 0."""
    s = weighting.get("famo", **options)
    for c_det, c_seg in ((2.0, 0.5), (1.0, 0.5), (1.0, 0.5)):
        linear_step(s, c_det, c_seg)
    return s.logits.detach().tolist()


@pytest.mark.parametrize(("lr", "gamma"), [(0.025, 0.0), (1e-3, 0.5), (0.1, 0.01)])
def test_famo_lr_and_gamma_reach_the_logit_optimiser(lr: float, gamma: float) -> None:
    delta = math.log(2 + 1e-8) - math.log(1 + 1e-8)
    xi = adam_path([delta / 4, 0.0], lr, gamma)  # ∇ξ_det = z(δ − z·δ)_det = δ/4, then 0 (+ γξ); ξ_seg = −ξ_det
    assert famo_three_steps(lr=lr, gamma=gamma) == pytest.approx([xi, -xi], rel=1e-5)


def test_famo_defaults_lr_0_025_and_gamma_0_01() -> None:
    delta = math.log(2 + 1e-8) - math.log(1 + 1e-8)
    xi = adam_path([delta / 4, 0.0], 0.025, 0.01)
    assert xi == pytest.approx(-0.041724, abs=1e-6)  # −0.025 after the first step, then γξ drives the second
    assert adam_path([delta / 4, 0.0], 0.025, 0.0) == pytest.approx(-0.041752, abs=1e-6)  # without decay
    assert famo_three_steps() == pytest.approx([xi, -xi], rel=1e-5)


# ------------------------------------------------------------------ STCH
@pytest.mark.parametrize("mu", [0.0, -1.0, float("nan")])
def test_stch_non_positive_mu_is_refused(mu: float) -> None:
    refused("stch", f"option 'mu' must be > 0, got {mu}", mu=mu)


@pytest.mark.parametrize("epochs", [0, -1])
def test_stch_warmup_below_one_epoch_is_refused(epochs: int) -> None:
    refused("stch", f"option 'warmup_epochs' must be >= 1, got {epochs}", warmup_epochs=epochs)


def stch_after_one_epoch(**options: object) -> dict[str, float]:
    """STCH's weights at L = (1, 1) after one epoch at L = (2, ½)."""
    s = weighting.get("stch", **options)
    linear_step(s, 2.0, 0.5)
    s.on_epoch_end()
    return linear_step(s, 1.0, 1.0)[0]


def test_stch_defaults_mu_one_and_a_one_epoch_warm_up() -> None:
    # z = (2, ½) from epoch 1; log(L/z)/μ = (log ½, log 2), softmax = (⅕, ⅘), w = 2·softmax/L = (0.4, 1.6)
    assert stch_after_one_epoch() == pytest.approx({"det": 0.4, "seg": 1.6}, rel=1e-6)
    assert stch_after_one_epoch(mu=1.0, warmup_epochs=1) == stch_after_one_epoch()


def test_stch_mu_and_warmup_epochs_reach_the_weights() -> None:
    # μ = 2: softmax(log ½/2, log 2/2) = (√½, √2)/(√½ + √2) = (⅓, ⅔), w = (⅔, 4/3)
    assert stch_after_one_epoch(mu=2.0) == pytest.approx({"det": 2 / 3, "seg": 4 / 3}, rel=1e-6)
    # two warm-up epochs: still Σ log L after one, weights 1/L
    assert stch_after_one_epoch(warmup_epochs=2) == pytest.approx({"det": 1.0, "seg": 1.0}, rel=1e-12)


# ------------------------------------------------------------------ DB-MTL
@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_db_mtl_beta_outside_zero_one_is_refused(beta: float) -> None:
    refused("db_mtl", rf"option 'beta' must lie in \[0, 1\), got {beta}", beta=beta)


@pytest.mark.parametrize("sigma", [-0.5, float("nan")])
def test_db_mtl_negative_beta_sigma_is_refused(sigma: float) -> None:
    refused("db_mtl", f"option 'beta_sigma' must be >= 0, got {sigma}", beta_sigma=sigma)


def test_db_mtl_beta_zero_is_accepted_and_tracks_nothing() -> None:
    s = weighting.get("db_mtl", beta=0.0, beta_sigma=0.0).to(F64)
    linear_step(s, 2.0, 0.5)
    # β = 0: ĝ = ∇log L = (½, 0), (0, 4); α = (8, 1); d = (4, 4); w = α/L = (4, 2)
    used, grad = linear_step(s, 2.0, 0.5)
    assert used == pytest.approx({"det": 4.0, "seg": 2.0}, rel=1e-6)
    assert grad == pytest.approx([4.0, 4.0], rel=1e-6)


def test_db_mtl_defaults_beta_0_9_and_no_decay_of_beta() -> None:
    s = weighting.get("db_mtl").to(F64)
    # step 1, β₁ = 0.9: ĝ = 0.1·∇log L = (0.05, 0), (0, 0.4); α = (8, 1); d = (0.4, 0.4); w = α·0.1/L = (0.4, 0.2)
    used, grad = linear_step(s, 2.0, 0.5)
    assert used == pytest.approx({"det": 0.4, "seg": 0.2}, rel=1e-6)
    assert grad == pytest.approx([0.4, 0.4], rel=1e-6)
    # step 2, σ = 0 so β₂ = 0.9: ĝ_det = 1 + 0.9(0.05 − 1) = 0.145, ĝ_seg = 4 + 0.9(0.4 − 4) = 0.76;
    # d = 0.76 on both, w = (0.76/0.145 · 0.1/1, 0.1/0.5)
    used, grad = linear_step(s, 1.0, 0.5)
    assert used == pytest.approx({"det": 0.76 / 1.45, "seg": 0.2}, rel=1e-6)
    assert grad == pytest.approx([0.76, 0.76], rel=1e-6)


def test_db_mtl_beta_sigma_decays_beta() -> None:
    s = weighting.get("db_mtl", beta_sigma=1.0).to(F64)
    linear_step(s, 2.0, 0.5)
    # β₂ = 0.9/2: ĝ_det = 1 + 0.45(0.05 − 1) = 0.5725, ĝ_seg = 4 + 0.45(0.4 − 4) = 2.38
    used, grad = linear_step(s, 1.0, 0.5)
    assert grad == pytest.approx([2.38, 2.38], rel=1e-6)
    assert used == pytest.approx({"det": 2.38 / 0.5725 * 0.55, "seg": 0.55 / 0.5}, rel=1e-6)


# ------------------------------------------------------------------ MoCo
@pytest.mark.parametrize("beta", [0.0, -0.5, 1.5])
def test_moco_beta_outside_zero_one_is_refused(beta: float) -> None:
    refused("moco", rf"option 'beta' must lie in \(0, 1\], got {beta}", beta=beta)


@pytest.mark.parametrize("gamma", [0.0, -1.0])
def test_moco_non_positive_gamma_is_refused(gamma: float) -> None:
    refused("moco", f"option 'gamma' must be > 0, got {gamma}", gamma=gamma)


@pytest.mark.parametrize("option", ["beta_sigma", "gamma_sigma", "rho"])
def test_moco_negative_exponents_and_rho_are_refused(option: str) -> None:
    refused("moco", f"option '{option}' must be >= 0, got -0.1", **{option: -0.1})


def test_moco_boundary_values_are_accepted() -> None:
    s = weighting.get("moco", beta=1.0, beta_sigma=0.0, gamma_sigma=0.0, rho=0.0).to(F64)
    # β = 1: y = g = (1, 0), (0, 2); λ = (½, ½) − 0.1·(½, 2) = (0.45, 0.3) → (0.575, 0.425)
    used, grad = linear_step(s, 2.0, 0.5)
    assert used == pytest.approx({"det": 0.575, "seg": 0.425}, rel=1e-12)
    assert grad == pytest.approx([0.575, 0.85], rel=1e-12)


# ------------------------------------------------------------------ lazily shaped buffers
@pytest.mark.parametrize(("name", "title"), [("db_mtl", "DBMTLWeighting"), ("moco", "MoCoWeighting")])
def test_a_change_of_the_shared_width_is_refused_naming_the_strategy(name: str, title: str) -> None:
    s = weighting.get(name).to(F64)
    linear_step(s, 2.0, 0.5)  # two shared coordinates
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    message = (
        f"^{title} tracks 2 shared coordinates per task, got a Jacobian with 3: "
        "the shared parameters must stay the same across steps$"
    )
    with pytest.raises(ValueError, match=message):
        s.backward({"det": x[0] + x[2] + 2.0, "seg": 2 * x[1] + 0.5}, [x])


# ------------------------------------------------------------------ MGDA
@pytest.mark.parametrize(
    ("normalization", "expected"),
    [
        # G = diag(4, 1) (g1 = (2, 0), g2 = (0, 1)), losses (2, 0.5); two tasks: α_1 = (b·b − a·b)/(a·a + b·b − 2a·b)
        ("none", (0.2, 0.8)),  # 1/(4 + 1)
        ("l2", (0.5, 0.5)),  # norms (2, 1): Ĝ = I
        ("loss", (0.8, 0.2)),  # scale (2, 0.5): Ĝ = diag(1, 4) → 4/5
        ("loss+", (16 / 17, 1 / 17)),  # scale (2·2, 0.5·1): Ĝ = diag(1/4, 4) → 4/4.25
    ],
)
def test_mgda_normalizations_by_hand(normalization: str, expected: tuple[float, float]) -> None:
    mgda = weighting.get("mgda", normalization=normalization)
    alpha = mgda.gramian_weights(torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)), torch.tensor([2.0, 0.5]))
    assert alpha.tolist() == pytest.approx(expected, abs=1e-12)


def test_mgda_l2_normalization_of_gradients_shorter_than_one() -> None:
    # g1 = (0.5, 0), g2 = (0, 0.2): norms 0.5 and 0.2 (no clamping at 1), Ĝ = I → α = (1/2, 1/2)
    gramian = torch.diag(torch.tensor([0.25, 0.04], dtype=torch.float64))
    alpha = weighting.get("mgda", normalization="l2").gramian_weights(gramian, torch.ones(2, dtype=torch.float64))
    assert alpha.tolist() == pytest.approx([0.5, 0.5], abs=1e-12)


def test_mgda_max_iter_bounds_frank_wolfe() -> None:
    # three gradients whose hull holds the origin: g1 = (1, 0), g2 = (0, 1), g3 = (−1, −2); Frank-Wolfe
    # needs many steps to approach the min-norm point (the origin), one step stays far from it
    jac = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -2.0]], dtype=torch.float64)
    gramian, ones = jac @ jac.T, torch.ones(3, dtype=torch.float64)

    def norm(max_iter: int) -> float:
        alpha = weighting.get("mgda", tasks=("a", "b", "c"), normalization="none", max_iter=max_iter)
        return float((alpha.gramian_weights(gramian, ones) @ jac).norm())

    assert norm(1) > 10 * norm(250)
    assert norm(250) < 1e-2


def test_mgda_options_are_checked_naming_the_option() -> None:
    with pytest.raises(ConfigError, match=r"option 'normalization' must be one of \('none', 'l2', 'loss', 'loss\+'\)"):
        weighting.get("mgda", normalization="L2")
    with pytest.raises(ConfigError, match="option 'max_iter' must be an integer >= 1, got 0"):
        weighting.get("mgda", max_iter=0)
    assert weighting.get("mgda", max_iter=1).max_iter == 1
    assert weighting.get("mgda", tasks=("a", "b", "c")).current_weights() == pytest.approx(
        {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    )
