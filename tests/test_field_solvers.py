"""The strategies that solve a small problem on the Gramian each step: CAGrad, Nash-MTL and SDMGrad.

Checked for each: values worked out by hand (orthogonal gradients of known norms, where the answer
has a closed form), the option range errors through ``weighting.get``, the state they keep (Nash-MTL
reuses α between updates, SDMGrad warm-starts w; both through ``state_dict``) and agreement with
TorchJD, an independent implementation, on random Jacobians (conflicting, aligned, badly scaled;
T = 2, 3, 5). The tolerances and what limits them:

- CAGrad: scipy's SLSQP (as the authors solve it) is certified on every case by the duality gap of
  the conflict-averse problem (≤ 1e-7 · ‖J‖², measured 2e-8; it agreed with an exact active-set solution to 1.2e-7
  relative on d). TorchJD's Clarabel solve at its default tolerances is looser: its objective value
  is never below ours (up to 1e-9 · ‖J‖²) and its combined gradient differs by up to 1.2e-4 relative
  here (3.3e-4 seen over a wider sample, T up to 8), so the comparison is at 5e-4.
- Nash-MTL: α solves α_i (Gα)_i = 1 to 1e-10 relative, badly scaled Jacobians included. TorchJD's
  sequence of ECOS programs (optim_niter 1000) agrees to 2e-6 (measured 6.2e-7) where it converges;
  it does not on badly scaled Jacobians (α_i (Gα)_i off by up to 1e2) nor on one conflicting pair,
  which are checked against the condition only.
- SDMGrad: the same arithmetic as TorchJD over consecutive steps with the state carried, ≤ 1e-12
  (measured 3e-16) in float64.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from taskweight import weighting
from taskweight.weighting.cagrad import PARETO_EPS, cagrad_direction_weights, cagrad_weights
from taskweight.weighting.nash_mtl import clip_norm, nash_mtl_weights
from taskweight.weighting.sdmgrad import sdmgrad_weights
from taskweight.weighting.simplex import project_onto_simplex

F64 = torch.float64


def _jacobians(scaled: bool = True) -> list[tuple[str, torch.Tensor]]:
    """Random, conflicting (g_2 ≈ −g_1), aligned and badly scaled (norms 1e-2 … 1e2) Jacobians, T = 2, 3, 5."""
    gen = torch.Generator().manual_seed(0)
    cases = []
    for t in (2, 3, 5):
        for repeat in range(3):
            cases.append((f"random T={t} #{repeat}", torch.randn(t, 20, generator=gen, dtype=F64)))
            conflicting = torch.randn(t, 20, generator=gen, dtype=F64)
            conflicting[1] = -conflicting[0] + 0.3 * torch.randn(20, generator=gen, dtype=F64)
            cases.append((f"conflicting T={t} #{repeat}", conflicting))
            base = torch.randn(1, 20, generator=gen, dtype=F64)
            cases.append((f"aligned T={t} #{repeat}", base + 0.1 * torch.randn(t, 20, generator=gen, dtype=F64)))
            scales = torch.logspace(-2, 2, t, dtype=F64)[:, None]
            badly_scaled = scales * torch.randn(t, 20, generator=gen, dtype=F64)
            if scaled:
                cases.append((f"badly scaled T={t} #{repeat}", badly_scaled))
    return cases


def _relative(ours: torch.Tensor, ref: torch.Tensor, jac: torch.Tensor) -> float:
    """‖ours − ref‖ / ‖ref‖ (‖ref‖ floored at 1e-9 · the largest task gradient's norm)."""
    floor = 1e-9 * float(jac.norm(dim=1).max())
    return float((ours - ref).norm()) / max(float(ref.norm()), floor)


def _aggregate(strategy: weighting.GramianAggregation, jac: torch.Tensor, present: tuple[str, ...]) -> torch.Tensor:
    """One aggregation call as ``backward`` makes it: ``present`` names the rows of ``jac``."""
    strategy.present = present
    return strategy.aggregate(jac, torch.ones(len(jac), dtype=jac.dtype))[1]


# ------------------------------------------------------------------ CAGrad
def _cagrad_objective(w: torch.Tensor, jac: torch.Tensor, c: float) -> float:
    """F(w) = g_w·g0 + c‖g0‖‖g_w‖, the dual objective."""
    g0, gw = jac.mean(dim=0), w @ jac
    return float(gw @ g0 + c * g0.norm() * gw.norm())


def test_cagrad_by_hand_two_orthogonal_gradients() -> None:
    # g1 = (2, 0), g2 = (0, 1): g0 = (1, ½), ‖g0‖² = 5/4. d maximises min(2d₁, d₂) over the disc of radius
    # r = c‖g0‖ around g0 (the primal of the dual problem the strategy solves).
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
    gram = jac @ jac.T
    g0 = jac.mean(dim=0)
    # c = 0.4, r = 0.4·√5/2: the line 2d₁ = d₂ misses the disc (its distance to g0, √0.45, exceeds r), so
    # the best is to push the worse-off task 2 alone, d = g0 + r·e₂ (w* = e₂), while 2d₁ = 2 > d₂ still
    c = 0.4
    r = c * math.sqrt(5) / 2
    w = cagrad_weights(gram, c)
    assert w.tolist() == pytest.approx([0.5, 0.5 + r], rel=1e-7)
    assert (w @ jac).tolist() == pytest.approx([1.0, 0.5 + r], rel=1e-7)
    # c = 2, r = √5: the disc reaches the line 2d₁ = d₂, u = (1, 2)/√5, and d is its farthest point in the disc,
    # d = ρu with ρ = u·g0 + √(r² − ‖g0‖² + (u·g0)²); both tasks improve equally
    c = 2.0
    r = c * math.sqrt(5) / 2
    u = torch.tensor([1.0, 2.0], dtype=F64) / math.sqrt(5)
    rho = float(u @ g0) + math.sqrt(r**2 - float(g0 @ g0) + float(u @ g0) ** 2)
    d = rho * u
    w = cagrad_weights(gram, c)
    assert (w @ jac).tolist() == pytest.approx(d.tolist(), rel=1e-7)
    assert w.tolist() == pytest.approx([float(d[0]) / 2, float(d[1])], rel=1e-7)  # d = v₁g1 + v₂g2
    # w* ∝ the coefficients of d − g0 = r·g_w*/‖g_w*‖
    direction = torch.tensor([float(d[0] - g0[0]) / 2, float(d[1] - g0[1])], dtype=F64)
    assert cagrad_direction_weights(gram / gram.trace(), r / math.sqrt(5)).tolist() == pytest.approx(
        (direction / direction.sum()).tolist(), rel=1e-7
    )
    # rescale divides by 1 + c²; c = 0 is gradient descent on the mean
    assert cagrad_weights(gram, c, rescale=True).tolist() == pytest.approx((w / (1 + c**2)).tolist(), rel=1e-15)
    assert cagrad_weights(gram, 0.0).tolist() == [0.5, 0.5]
    # the weights do not depend on the gradients' scale
    assert cagrad_weights(1e-6 * gram, c).tolist() == pytest.approx(w.tolist(), rel=1e-7)


def test_cagrad_on_the_pareto_front_by_hand() -> None:
    # g = (1, 0), (−1, 0), (1, 0): g0 = (⅓, 0), r = c/3 and g_w = (x, 0), x ∈ [−1, 1], so F = x/3 + c|x|/3:
    # c ≥ 1 → x = 0, no direction helps a task without hurting another more: weights 0 (TorchJD's choice)
    jac = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]], dtype=F64)
    assert cagrad_weights(jac @ jac.T, 2.0).tolist() == [0.0, 0.0, 0.0]
    # c < 1 → x = −1 (w* = e₂, ‖g_w*‖ = 1): v = 1/3 + (c/3)·e₂ and d = ((1 − c)/3, 0)
    w = cagrad_weights(jac @ jac.T, 0.4)
    assert w.tolist() == pytest.approx([1 / 3, 1 / 3 + 0.4 / 3, 1 / 3], rel=1e-7)
    assert (w @ jac).tolist() == pytest.approx([0.2, 0.0], abs=1e-9)
    assert cagrad_weights(torch.zeros(2, 2, dtype=F64), 0.4).tolist() == [0.0, 0.0]  # no gradient at all
    assert PARETO_EPS == 1e-4


def test_cagrad_options() -> None:
    with pytest.raises(ValueError, match="'c' must be >= 0"):
        weighting.get("cagrad", c=-1.0)
    strategy = weighting.get("cagrad", tasks=("a", "b"), c=2.0, rescale=True)
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
    assert _aggregate(strategy, jac, ("a", "b")).tolist() == pytest.approx(
        (cagrad_weights(jac @ jac.T, 2.0) / 5).tolist(), rel=1e-15
    )


@pytest.mark.parametrize("c", [0.1, 0.4, 1.0, 3.0])
def test_cagrad_is_optimal_on_random_jacobians(c: float) -> None:
    """The certificate: for every w on the simplex and every d in the ball, min_i g_i·d ≤ g_w·d ≤ F(w); our
    d (on the sphere) and w* close that gap to rounding, so both are optimal."""
    for label, jac in _jacobians():
        weights = cagrad_weights(jac @ jac.T, c)
        if not bool(weights.any()):
            continue  # on the Pareto front
        t = len(jac)
        d, g0 = weights @ jac, jac.mean(dim=0)
        w_star = (weights - 1 / t) / (weights - 1 / t).sum()
        scale = float((jac**2).sum())  # ‖J‖²_F
        assert float((d - g0).norm()) == pytest.approx(c * float(g0.norm()), rel=1e-7), label
        gap = _cagrad_objective(w_star, jac, c) - float((jac @ d).min())
        assert abs(gap) <= 1e-7 * scale, (label, gap)


def test_cagrad_against_torchjd() -> None:
    aggregation = pytest.importorskip("torchjd.aggregation")
    pytest.importorskip("cvxpy")  # TorchJD solves CAGrad's problem with cvxpy and Clarabel
    pytest.importorskip("clarabel")
    worst, where = 0.0, ""
    for c in (0.1, 0.4, 1.0):
        for label, jac in _jacobians():
            t = len(jac)
            weights = cagrad_weights(jac @ jac.T, c)
            reference_weights = aggregation.CAGrad(c=c).gramian_weighting(jac @ jac.T)
            rel = _relative(weights @ jac, reference_weights @ jac, jac)
            if rel >= worst:
                worst, where = rel, f"{label}, c={c}"
            if bool(weights.any()) and bool(reference_weights.any()):  # the difference is TorchJD's precision:
                ours = _cagrad_objective((weights - 1 / t) / (weights - 1 / t).sum(), jac, c)
                w_star = (reference_weights - 1 / t).clamp_min(0)  # Clarabel's w* may be a hair outside the simplex
                theirs = _cagrad_objective(w_star / w_star.sum(), jac, c)
                assert ours <= theirs + 1e-9 * float((jac**2).sum()), (label, c, ours, theirs)  # ours is no worse
    print(f"\nagreement cagrad vs torchjd.aggregation.CAGrad(c): max relative difference {worst:.2e} ({where})")
    assert worst <= 5e-4, (worst, where)


# ------------------------------------------------------------------ Nash-MTL
def test_nash_mtl_by_hand() -> None:
    # orthogonal gradients, G = diag(a, b): α = (1/√a, 1/√b), each task's share α_i g_i·d = 1, ‖αᵀJ‖ = √T
    gram = torch.diag(torch.tensor([4.0, 1.0], dtype=F64))
    alpha = nash_mtl_weights(gram)
    assert alpha.tolist() == pytest.approx([0.5, 1.0], rel=1e-13)
    assert clip_norm(alpha, gram, 0.0).tolist() == alpha.tolist()  # 0 disables the clipping
    assert clip_norm(alpha, gram, 1.0).tolist() == pytest.approx((alpha / math.sqrt(2)).tolist(), rel=1e-13)
    assert clip_norm(alpha, gram, 2.0).tolist() == alpha.tolist()  # √2 ≤ 2: left alone
    # two unit gradients at 120° (cos = −½): by symmetry α₁ = α₂ = α with α²(1 − ½) = 1, α = √2
    jac = torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2]], dtype=F64)
    assert nash_mtl_weights(jac @ jac.T).tolist() == pytest.approx([math.sqrt(2)] * 2, rel=1e-13)
    # a task with a zero gradient cannot bargain: α = 0 for it, the others solve among themselves
    assert nash_mtl_weights(torch.diag(torch.tensor([4.0, 0.0], dtype=F64))).tolist() == pytest.approx([0.5, 0.0])
    assert nash_mtl_weights(torch.zeros(3, 3, dtype=F64)).tolist() == [0.0, 0.0, 0.0]
    # any Jacobian: the bargaining condition α_i (Gα)_i = 1, even badly scaled (where TorchJD does not converge)
    for label, jac in _jacobians():
        gram = jac @ jac.T
        alpha = nash_mtl_weights(gram)
        assert bool((alpha > 0).all()), label
        assert (alpha * (gram @ alpha)).tolist() == pytest.approx([1.0] * len(jac), rel=1e-10), label


def test_nash_mtl_options() -> None:
    with pytest.raises(ValueError, match="'update_weights_every' must be an integer >= 1"):
        weighting.get("nash_mtl", update_weights_every=0)
    with pytest.raises(ValueError, match="update_weights_every"):
        weighting.get("nash_mtl", update_weights_every=1.5)
    with pytest.raises(ValueError, match="'max_norm' must be >= 0"):
        weighting.get("nash_mtl", max_norm=-1.0)


def test_nash_mtl_reuses_alpha_between_updates_and_through_the_state_dict() -> None:
    gen = torch.Generator().manual_seed(4)
    tasks = ("a", "b", "c")
    jacs = [torch.randn(3, 6, generator=gen, dtype=F64) for _ in range(5)]
    strategy = weighting.get("nash_mtl", tasks=tasks, update_weights_every=3, max_norm=0.0).to(F64)
    first = _aggregate(strategy, jacs[0], tasks)
    assert first.tolist() == pytest.approx(nash_mtl_weights(jacs[0] @ jacs[0].T).tolist(), rel=1e-15)
    resumed = weighting.get("nash_mtl", tasks=tasks, update_weights_every=3, max_norm=0.0).to(F64)
    resumed.load_state_dict(copy.deepcopy(strategy.state_dict()))
    for one in (strategy, resumed):  # calls 1 and 2 reuse call 0's α although the gradients changed
        assert _aggregate(one, jacs[1], tasks).tolist() == first.tolist()
        assert _aggregate(one, jacs[2], tasks).tolist() == first.tolist()
        # call 3 solves again
        assert _aggregate(one, jacs[3], tasks).tolist() == nash_mtl_weights(jacs[3] @ jacs[3].T).tolist()
    # the clipping uses each step's Gramian, also when α is reused
    clipped = weighting.get("nash_mtl", tasks=tasks, update_weights_every=2, max_norm=0.5).to(F64)
    _aggregate(clipped, jacs[0], tasks)
    reused = _aggregate(clipped, jacs[1], tasks)
    expected = clip_norm(nash_mtl_weights(jacs[0] @ jacs[0].T), jacs[1] @ jacs[1].T, 0.5)
    assert reused.tolist() == pytest.approx(expected.tolist(), rel=1e-15)
    assert float((reused @ jacs[1]).norm()) == pytest.approx(0.5, rel=1e-12)
    # a batch with other tasks is solved for them at once, and the next full batch again (not reused)
    partial = _aggregate(strategy, jacs[4][[0, 2]], ("a", "c"))
    assert partial.tolist() == nash_mtl_weights(jacs[4][[0, 2]] @ jacs[4][[0, 2]].T).tolist()
    assert _aggregate(strategy, jacs[4], tasks).tolist() == nash_mtl_weights(jacs[4] @ jacs[4].T).tolist()


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate", "ignore:You are solving a parameterized problem")
def test_nash_mtl_against_torchjd() -> None:
    """Compared where TorchJD's solve converged (its α_i (Gα)_i equal to 1e-4; after clipping they are all the
    same s²). Its sequence of ECOS programs does not converge on badly scaled Jacobians (left out here: it
    spends its 1000 iterations on each) and fails on one conflicting pair, where it returns its starting
    α = 1; the bargaining condition holds for ours on all of them (test_nash_mtl_by_hand)."""
    aggregation = pytest.importorskip("torchjd.aggregation")
    pytest.importorskip("cvxpy")  # TorchJD solves Nash-MTL's programs with cvxpy and ECOS
    pytest.importorskip("ecos")

    def converged(weights: torch.Tensor, gram: torch.Tensor) -> bool:
        shares = weights * (gram @ weights)
        return bool((shares > 0).all()) and float(shares.max() / shares.min()) - 1 <= 1e-4

    worst, where, compared, failed = 0.0, "", 0, []
    for max_norm in (0.0, 1.0):
        for label, jac in _jacobians(scaled=False):
            t, gram = len(jac), jac @ jac.T
            ours = clip_norm(nash_mtl_weights(gram), gram, max_norm)
            reference = aggregation.NashMTL(n_tasks=t, max_norm=max_norm, update_weights_every=1, optim_niter=1000)
            expected = reference.weighting(jac)
            if not converged(expected, gram):
                failed.append(f"{label}, max_norm={max_norm}")
                continue
            compared += 1
            rel = _relative(ours @ jac, expected @ jac, jac)
            if rel >= worst:
                worst, where = rel, f"{label}, max_norm={max_norm}"
    # over steps, through the strategy: α solved every second step and reused in between (both count calls)
    gen = torch.Generator().manual_seed(5)
    tasks = ("a", "b", "c")
    strategy = weighting.get("nash_mtl", tasks=tasks, update_weights_every=2, max_norm=1.0).to(F64)
    reference = aggregation.NashMTL(n_tasks=3, max_norm=1.0, update_weights_every=2, optim_niter=1000)
    for step in range(6):
        jac = torch.randn(3, 20, generator=gen, dtype=F64)
        rel = _relative(_aggregate(strategy, jac, tasks) @ jac, reference(jac), jac)
        if rel >= worst:
            worst, where = rel, f"update_weights_every=2, step {step}"
    call = "torchjd.aggregation.NashMTL(n_tasks=T, max_norm, update_weights_every, optim_niter=1000)"
    print(f"\nagreement nash_mtl vs {call}: max relative difference {worst:.2e} ({where}) over {compared} cases;")
    print(f"TorchJD did not converge on {len(failed)}: {', '.join(failed)}")
    assert compared >= 50 and all("conflicting" in f for f in failed), failed
    assert worst <= 2e-6, (worst, where)


# ------------------------------------------------------------------ SDMGrad
def test_project_onto_simplex_by_hand() -> None:
    assert project_onto_simplex(torch.tensor([0.5, 0.5], dtype=F64)).tolist() == [0.5, 0.5]
    assert project_onto_simplex(torch.tensor([2.0, 0.0], dtype=F64)).tolist() == [1.0, 0.0]
    # (0.3, 0.2, −1): θ = (0.3 + 0.2 − 1)/2 = −¼ (the third stays out) → (0.55, 0.45, 0)
    assert project_onto_simplex(torch.tensor([0.3, 0.2, -1.0], dtype=F64)).tolist() == pytest.approx([0.55, 0.45, 0])
    # all equal: θ = (Σy − 1)/T shifts them onto the simplex
    assert project_onto_simplex(torch.tensor([4.0, 4.0, 4.0, 4.0], dtype=F64)).tolist() == [0.25] * 4
    # the projection is the nearest simplex point: no random simplex point is nearer
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        y = 3 * torch.randn(5, generator=gen, dtype=F64)
        p = project_onto_simplex(y)
        assert float(p.sum()) == pytest.approx(1.0, rel=1e-15) and bool((p >= 0).all())
        others = torch.distributions.Dirichlet(torch.ones(5, dtype=F64)).sample((200,))
        assert float((y - p).norm()) <= float((y - others).norm(dim=1).min())


def test_sdmgrad_by_hand() -> None:
    # orthogonal gradients of norms 2 and 1: G = diag(4, 1), A = G/(1.5² + 1e-8); from w = (½, ½), λ = 0.3:
    # w + λw̃ = (0.65, 0.65), v = A(0.65, 0.65), w − lr·v = (½ − 0.26k, ½ − 0.065k) with k = lr/(2.25 + 1e-8)
    gram = torch.diag(torch.tensor([4.0, 1.0], dtype=F64))
    half = torch.full((2,), 0.5, dtype=F64)
    k = 0.1 / (2.25 + 1e-8)
    step = torch.tensor([0.5 - 2.6 * k, 0.5 - 0.65 * k], dtype=F64)
    w1 = step - (step.sum() - 1) / 2  # both stay positive: the projection shifts them equally
    weights, w = sdmgrad_weights(gram, half, lam=0.3, lr=0.1, momentum=0.5, n_iter=1)
    assert w.tolist() == pytest.approx(w1.tolist(), rel=1e-15)
    assert weights.tolist() == pytest.approx(((w1 + 0.15) / 1.3).tolist(), rel=1e-15)
    # a second iteration carries the momentum: v₂ = ½v₁ + A(w₁ + λw̃)
    a = gram / (2.25 + 1e-8)
    v1 = a @ (half + 0.15)
    v2 = 0.5 * v1 + a @ (w1 + 0.15)
    step = w1 - 0.1 * v2
    w2 = step - (step.sum() - 1) / 2
    assert sdmgrad_weights(gram, half, 0.3, 0.1, 0.5, 2)[1].tolist() == pytest.approx(w2.tolist(), rel=1e-14)
    # many small steps reach the minimiser of ‖(w + λw̃)ᵀJ‖² on the simplex: 4(w₁ + λ/2) = w₂ + λ/2,
    # w₁ = (1 + (1 − 4)λ/2)/5 = 0.11
    weights, w = sdmgrad_weights(gram, half, 0.3, 0.05, 0.5, 2000)
    assert w.tolist() == pytest.approx([0.11, 0.89], rel=1e-9)
    assert weights.tolist() == pytest.approx([(0.11 + 0.15) / 1.3, (0.89 + 0.15) / 1.3], rel=1e-9)


def test_sdmgrad_options() -> None:
    for option, value, message in (
        ("lam", -0.1, "'lam' must be >= 0"),
        ("lr", 0.0, "'lr' must be > 0"),
        ("momentum", 1.0, r"'momentum' must lie in \[0, 1\)"),
        ("n_iter", 0, "'n_iter' must be an integer >= 1"),
    ):
        with pytest.raises(ValueError, match=message):
            weighting.get("sdmgrad", **{option: value})


def test_sdmgrad_w_persists_through_the_state_dict_and_restarts_for_other_tasks() -> None:
    gen = torch.Generator().manual_seed(6)
    tasks = ("a", "b", "c")
    jacs = [torch.randn(3, 8, generator=gen, dtype=F64) for _ in range(4)]
    options = {"lr": 0.5, "n_iter": 3}  # few, small steps: w is far from converged, so the start matters
    strategy = weighting.get("sdmgrad", tasks=tasks, **options).to(F64)
    uniform = torch.full((3,), 1 / 3, dtype=F64)
    _, w = sdmgrad_weights(jacs[0] @ jacs[0].T, uniform, 0.3, 0.5, 0.5, 3)
    assert (
        _aggregate(strategy, jacs[0], tasks).tolist()
        == sdmgrad_weights(jacs[0] @ jacs[0].T, uniform, 0.3, 0.5, 0.5, 3)[0].tolist()
    )
    warm, w_next = sdmgrad_weights(jacs[1] @ jacs[1].T, w, 0.3, 0.5, 0.5, 3)
    cold, _ = sdmgrad_weights(jacs[1] @ jacs[1].T, uniform, 0.3, 0.5, 0.5, 3)
    assert not torch.allclose(warm, cold)  # the warm start makes a difference here
    resumed = weighting.get("sdmgrad", tasks=tasks, **options).to(F64)
    resumed.load_state_dict(copy.deepcopy(strategy.state_dict()))
    assert _aggregate(strategy, jacs[1], tasks).tolist() == warm.tolist()
    assert _aggregate(resumed, jacs[1], tasks).tolist() == warm.tolist()
    assert strategy.w.tolist() == w_next.tolist()
    # a batch without task b starts from the uniform ½ over a and c; the next full batch from uniform again
    sub = jacs[2][[0, 2]]
    half = torch.full((2,), 0.5, dtype=F64)
    assert (
        _aggregate(strategy, sub, ("a", "c")).tolist()
        == sdmgrad_weights(sub @ sub.T, half, 0.3, 0.5, 0.5, 3)[0].tolist()
    )
    assert float(strategy.w[1]) == 0.0 and strategy.computed_for.tolist() == [True, False, True]
    expected = sdmgrad_weights(jacs[3] @ jacs[3].T, uniform, 0.3, 0.5, 0.5, 3)[0]
    assert _aggregate(strategy, jacs[3], tasks).tolist() == expected.tolist()


def test_sdmgrad_against_torchjd_over_steps() -> None:
    """SDMGrad is stateful: eight consecutive steps on each size, w carried on both sides; TorchJD's weighting
    takes the matrix A, here the Gramian of the one batch."""
    aggregation = pytest.importorskip("torchjd.aggregation")
    worst = 0.0
    cases = _jacobians()
    for t in (2, 3, 5):
        sequence = [jac for label, jac in cases if f"T={t} " in label]
        for options in ({}, {"lam": 0.0, "lr": 2.0, "momentum": 0.0, "n_iter": 5}):
            strategy = weighting.get("sdmgrad", tasks=tuple(f"t{i}" for i in range(t)), **options).to(F64)
            lam, lr, momentum, n_iter = strategy.lam, strategy.lr, strategy.momentum, strategy.n_iter
            reference = aggregation.SDMGradWeighting(lr=lr, momentum=momentum, n_iter=n_iter, lambda_=lam)
            for jac in sequence:
                ours = _aggregate(strategy, jac, strategy.tasks)
                expected = reference(jac @ jac.T)
                worst = max(worst, float((ours - expected).abs().max() / expected.abs().max()))
    print(
        f"\nagreement sdmgrad vs torchjd.aggregation.SDMGradWeighting over steps: max relative difference {worst:.2e}"
    )
    assert worst <= 1e-12
