"""The field's strategies (DWA, RLW, IMTL-L, FAMO, UPGrad, DualProj, ConFIG, IMTL-G, Aligned-MTL)
against values worked out by hand, and every gradient aggregation against TorchJD's (an independent
implementation) on random Jacobians: conflicting, aligned and badly scaled."""

from __future__ import annotations

import math

import pytest
import torch

from strategy_helpers import linear_losses, numbers
from taskweight import weighting
from taskweight.weighting.aligned_mtl import aligned_mtl_weights
from taskweight.weighting.config import config_weights
from taskweight.weighting.dualproj import dualproj_weights
from taskweight.weighting.fairgrad import fairgrad_weights
from taskweight.weighting.graddrop import graddrop_combine
from taskweight.weighting.gradvac import gradvac_weights
from taskweight.weighting.imtl_g import imtl_g_weights
from taskweight.weighting.mgda import min_norm_coefficients
from taskweight.weighting.pcgrad import project_conflicting
from taskweight.weighting.upgrad import nonnegative_quadratic, upgrad_weights


# ------------------------------------------------------------------ DWA
def test_dwa_by_hand() -> None:
    s = weighting.get("dwa")
    x = torch.zeros(2, requires_grad=True)
    for det, seg in [(2.0, 1.0), (2.0, 1.0)]:  # epoch 1: means 2, 1
        assert numbers(s.backward(linear_losses(x, det, seg))) == {"det": 1.0, "seg": 1.0}
    s.on_epoch_end()
    s.backward(linear_losses(x, 1.0, 1.0))  # epoch 2: means 1, 1
    s.on_epoch_end()
    # r = (1/2, 1/1), w = 2·softmax(r/2) = 2·(e^.25, e^.5)/(e^.25 + e^.5)
    w_det = 2 * math.exp(0.25) / (math.exp(0.25) + math.exp(0.5))
    assert s.current_weights() == pytest.approx({"det": w_det, "seg": 2 - w_det})
    assert w_det == pytest.approx(0.875647, abs=1e-6)
    x.grad = None
    used = numbers(s.backward(linear_losses(x, 1.0, 1.0)))
    assert used == pytest.approx({"det": w_det, "seg": 2 - w_det})
    assert x.grad.tolist() == pytest.approx([w_det, 2 * (2 - w_det)])
    s.backward(linear_losses(x, 3.0, 1.0))  # epoch 3: means (1+3)/2 = 2 and 1 over epoch 2 means 1, 1 → r = (2, 1)
    s.on_epoch_end()
    w_det = 2 * math.exp(1.0) / (math.exp(1.0) + math.exp(0.5))
    assert s.current_weights() == pytest.approx({"det": w_det, "seg": 2 - w_det})
    s.backward({"det": x[0] + 1.0})  # an epoch in which seg is never labelled keeps the weights
    s.on_epoch_end()
    assert s.current_weights() == pytest.approx({"det": w_det, "seg": 2 - w_det})
    with pytest.raises(ValueError, match="temperature"):
        weighting.get("dwa", temperature=0.0)


# ------------------------------------------------------------------ RLW
def test_rlw_draws_softmax_of_normals_from_its_seeded_generator() -> None:
    s = weighting.get("rlw", seed=7)
    g = torch.Generator().manual_seed(7)
    x = torch.zeros(2, requires_grad=True)
    for _ in range(3):
        expected = torch.softmax(torch.randn(2, generator=g, dtype=torch.float64), dim=0).tolist()
        x.grad = None
        used = numbers(s.backward(linear_losses(x)))
        assert [used["det"], used["seg"]] == pytest.approx(expected, rel=1e-6)
        assert sum(used.values()) == pytest.approx(1.0)
        assert x.grad.tolist() == pytest.approx([used["det"], 2 * used["seg"]])
    resumed = weighting.get("rlw", seed=0)
    resumed.load_state_dict(s.state_dict())
    assert numbers(resumed.backward(linear_losses(x))) == numbers(s.backward(linear_losses(x)))
    with pytest.raises(ValueError, match="seed"):
        weighting.get("rlw", seed=-1)


# ------------------------------------------------------------------ IMTL-L
def test_imtl_l_gradient_and_optimum_by_hand() -> None:
    s = weighting.get("imtl_l", init=math.log(2.0))
    x = torch.zeros(2, requires_grad=True)
    used = numbers(s.backward(linear_losses(x, 4.0, 0.5)))
    assert used == pytest.approx({"det": 2.0, "seg": 2.0})  # e^s
    assert x.grad.tolist() == pytest.approx([2.0, 4.0])
    assert s.scales.grad.tolist() == pytest.approx([2 * 4.0 - 1, 2 * 0.5 - 1])  # e^s L − 1
    opt = torch.optim.Adam(s.trainable_parameters(), lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        s.backward({"det": torch.tensor(4.0), "seg": torch.tensor(0.5)})
        opt.step()
    assert s.current_weights() == pytest.approx({"det": 0.25, "seg": 2.0}, rel=1e-3)  # e^s = 1/L
    with pytest.raises(ValueError, match="init"):
        weighting.get("imtl_l", init=50.0)


# ------------------------------------------------------------------ FAMO
def test_famo_two_steps_by_hand() -> None:
    s = weighting.get("famo", lr=0.025, gamma=0.0)
    x = torch.zeros(2, requires_grad=True)
    used = numbers(s.backward(linear_losses(x, 2.0, 0.5)))
    # z = (½, ½), w ∝ z/L = (.25, 1) → (.2, .8)
    assert used == pytest.approx({"det": 0.2, "seg": 0.8})
    assert x.grad.tolist() == pytest.approx([0.2, 1.6])
    # next step: δ = log L(prev) − log L(now) = (log 2, 0); ∇ξ = z(δ − z·δ) = (+, −) → Adam moves ξ by ∓lr
    used = numbers(s.backward(linear_losses(x.detach().requires_grad_(), 1.0, 0.5)))
    z_det = 1 / (1 + math.exp(0.05))
    ratio = (z_det / 1.0, (1 - z_det) / 0.5)
    assert used["det"] == pytest.approx(ratio[0] / sum(ratio), rel=1e-6)
    assert s.logits.detach().tolist() == pytest.approx([-0.025, 0.025], rel=1e-5)
    with pytest.raises(ValueError, match="'lr'"):
        weighting.get("famo", lr=0.0)
    with pytest.raises(ValueError, match="'gamma'"):
        weighting.get("famo", gamma=-1.0)


# ------------------------------------------------------------------ UPGrad
def test_upgrad_by_hand() -> None:
    # g1 = (1, 0), g2 = (−1, 1) conflict: π(g1) = g1 + ½g2 = (.5, .5), π(g2) = g2 + g1 = (0, 1)
    jac = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    w = upgrad_weights(jac @ jac.T, reg_eps=0.0)
    assert (w @ jac).tolist() == pytest.approx([0.25, 0.75])
    assert w.tolist() == pytest.approx([1.0, 0.75])  # (e_1 + ½e_2 + e_1 + e_2)/2
    # orthogonal (no conflict): the mean
    eye = torch.eye(2, dtype=torch.float64) * torch.tensor([[3.0], [0.5]], dtype=torch.float64)
    assert (upgrad_weights(eye @ eye.T, 0.0) @ eye).tolist() == pytest.approx([1.5, 0.25])
    # the NNLS solver: min ½xᵀGx + bᵀx, x ≥ 0, against the unconstrained solution where it is feasible
    gram = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    assert nonnegative_quadratic(gram, torch.tensor([-1.0, 3.0], dtype=torch.float64)).tolist() == pytest.approx(
        [0.5, 0.0]
    )
    with pytest.raises(ValueError, match="reg_eps"):
        weighting.get("upgrad", reg_eps=2.0)


def test_upgrad_never_conflicts() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        jac = torch.randn(4, 6, generator=g, dtype=torch.float64)
        d = upgrad_weights(jac @ jac.T, reg_eps=0.0) @ jac
        assert (jac @ d).min() >= -1e-10


# ------------------------------------------------------------------ IMTL-G
def test_dualproj_by_hand() -> None:
    # g1 = (1, 0), g2 = (−1, 1): the mean (0, ½) conflicts with neither, so it is kept
    jac = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    assert (dualproj_weights(jac @ jac.T, 0.0) @ jac).tolist() == pytest.approx([0.0, 0.5])
    # g1 = (1, 0), g2 = (−2, 1): the mean (−½, ½) conflicts with g1; its projection on g1·x ≥ 0 is
    # (0, ½), which g2 accepts: d = (0, ½) = 1·g1 + ½·g2
    jac = torch.tensor([[1.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)
    w = dualproj_weights(jac @ jac.T, 0.0)
    assert w.tolist() == pytest.approx([1.0, 0.5])
    assert (w @ jac).tolist() == pytest.approx([0.0, 0.5])
    with pytest.raises(ValueError, match="reg_eps"):
        weighting.get("dualproj", reg_eps=-0.1)


def test_config_by_hand() -> None:
    # g1 = (2, 0), g2 = (0, 1): unit vectors e1, e2, equal-angle direction (1, 1)/√2, summed
    # projections 2/√2 + 1/√2: d = (3/2)(1, 1) = 0.75·g1 + 1.5·g2
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    w = config_weights(jac @ jac.T)
    assert w.tolist() == pytest.approx([0.75, 1.5])
    # a zero task gradient: its unit vector is zero and it adds nothing
    jac = torch.tensor([[0.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    assert (config_weights(jac @ jac.T) @ jac).tolist() == pytest.approx([0.0, 3.0])
    # ConFIG's d has the same cosine with every task gradient
    g = torch.Generator().manual_seed(3)
    jac = torch.randn(3, 8, generator=g, dtype=torch.float64)
    d = config_weights(jac @ jac.T) @ jac
    cosines = (jac @ d) / (jac.norm(dim=1) * d.norm())
    assert cosines.tolist() == pytest.approx([float(cosines[0])] * 3)


def test_gradvac_by_hand() -> None:
    # g1 = (1, 0), g2 = (−1, 1), targets 0: each is lifted until orthogonal to the other (as PCGrad),
    # g1 + ½g2 = (½, ½) and g2 + g1 = (0, 1): w = (2, 3/2); the targets move to β·cos = −½/√2
    jac = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    w, targets = gradvac_weights(jac @ jac.T, torch.zeros(2, 2, dtype=torch.float64), [[1], [0]], beta=0.5)
    assert w.tolist() == pytest.approx([2.0, 1.5])
    assert targets.flatten().tolist() == pytest.approx([0.0, -0.5 / math.sqrt(2), -0.5 / math.sqrt(2), 0.0])
    # with those targets the next step lifts each gradient only up to the target cosine −½/√2, not
    # to 0: w = (1 + s1, 1 + s0) for g1^PC = g1 + s0·g2 and g2^PC = g2 + s1·g1
    w, _ = gradvac_weights(jac @ jac.T, targets, [[1], [0]], beta=0.5)
    g1_pc, g2_pc = jac[0] + (w[1] - 1) * jac[1], jac[1] + (w[0] - 1) * jac[0]
    for lifted, other in ((g1_pc, jac[1]), (g2_pc, jac[0])):
        assert float(lifted @ other / (lifted.norm() * other.norm())) == pytest.approx(-0.5 / math.sqrt(2))
    with pytest.raises(ValueError, match="beta"):
        weighting.get("gradvac", beta=1.5)


def test_gradvac_against_torchjd_over_steps() -> None:
    """GradVac is stateful: six steps on each of three sizes, the same visiting orders on both sides."""
    aggregation = pytest.importorskip("torchjd.aggregation")
    g = torch.Generator().manual_seed(0)
    for t, p in ((2, 5), (3, 7), (5, 4)):
        reference = aggregation.GradVac(beta=0.5)
        targets = torch.zeros(t, t, dtype=torch.float64)
        for step in range(6):
            jac = torch.randn(t, p, generator=g, dtype=torch.float64)
            torch.manual_seed(100 + step)  # TorchJD draws each task's order with torch.randperm
            orders = []
            for i in range(t):
                others = [j for j in range(t) if j != i]
                orders.append([others[k] for k in torch.randperm(len(others)).tolist()])
            w, targets = gradvac_weights(jac @ jac.T, targets, orders, beta=0.5)
            torch.manual_seed(100 + step)
            expected = reference(jac)
            assert float((w @ jac - expected).norm() / expected.norm()) <= 1e-12, (t, p, step)


def test_graddrop_by_hand() -> None:
    # three elements: g1 = (1, 2, −1), g2 = (−3, 2, −1); purity P = ½(1 + Σg/Σ|g|) = (¼, 1, 0)
    jac = torch.tensor([[1.0, 2.0, -1.0], [-3.0, 2.0, -1.0]], dtype=torch.float64)
    # U = ½ everywhere: element 1 keeps the negative sign (P < U: g2's −3), element 2 the positive
    # (both), element 3 the negative (both)
    d, shares = graddrop_combine(jac, torch.full((3,), 0.5, dtype=torch.float64))
    assert d.tolist() == [-3.0, 4.0, -2.0]
    assert shares.tolist() == pytest.approx([(4 + 1) / 6, 1.0])  # g1 lost its first element
    # U = 0.2 < P_1: element 1 keeps the positive sign instead
    d, _ = graddrop_combine(jac, torch.full((3,), 0.2, dtype=torch.float64))
    assert d.tolist() == [1.0, 4.0, -2.0]
    # a leak of 1 keeps everything: the plain sum
    d, _ = graddrop_combine(jac, torch.full((3,), 0.5, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    assert d.tolist() == jac.sum(dim=0).tolist()
    with pytest.raises(ValueError, match="leak"):
        weighting.get("graddrop", leak=2.0)


def test_graddrop_against_torchjd_with_the_same_draws() -> None:
    aggregation = pytest.importorskip("torchjd.aggregation")
    g = torch.Generator().manual_seed(0)
    for t, p in ((2, 50), (3, 70), (5, 40)):
        jac = torch.randn(t, p, generator=g, dtype=torch.float64)
        for leak in (None, torch.full((t,), 0.3, dtype=torch.float64)):
            torch.manual_seed(t)  # TorchJD draws U with torch.rand from the global generator
            ours, _ = graddrop_combine(jac, torch.rand(p, dtype=torch.float64), leak)
            torch.manual_seed(t)
            expected = aggregation.GradDrop() if leak is None else aggregation.GradDrop(leak=leak)
            assert torch.allclose(ours, expected(jac), rtol=1e-12, atol=0), (t, p, leak)


def test_fairgrad_by_hand() -> None:
    # orthogonal gradients, G = diag(a, b): a·w₁ = w₁^{−1/α}, so w₁ = a^{−α/(α+1)}
    gram = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    assert fairgrad_weights(gram, 1.0).tolist() == pytest.approx([0.5, 1.0])  # α = 1: w = 1/√a
    assert fairgrad_weights(gram, 2.0).tolist() == pytest.approx([4.0 ** (-2 / 3), 1.0])
    assert fairgrad_weights(gram, 0.0).tolist() == [0.5, 0.5]  # α = 0: linear scalarisation
    # a conflicting pair: the optimality condition G w = w^{−1/α} holds, with w > 0
    jac = torch.tensor([[1.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)
    w = fairgrad_weights(jac @ jac.T, 1.5)
    assert (w > 0).all() and ((jac @ jac.T) @ w).tolist() == pytest.approx((w ** (-1 / 1.5)).tolist(), rel=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        weighting.get("fairgrad", alpha=-1.0)


def test_fairgrad_against_torchjd() -> None:
    aggregation = pytest.importorskip("torchjd.aggregation")
    pytest.importorskip("scipy")  # TorchJD solves FairGrad's equations with scipy's least_squares
    g = torch.Generator().manual_seed(0)
    for alpha in (0.5, 1.0, 2.0):
        for t, p in ((2, 5), (3, 7), (5, 9)):
            jac = torch.randn(t, p, generator=g, dtype=torch.float64)
            ours = fairgrad_weights(jac @ jac.T, alpha) @ jac
            expected = aggregation.FairGrad(alpha=alpha)(jac)
            assert float((ours - expected).norm() / expected.norm()) <= 1e-8, (alpha, t, p)


def test_imtl_g_by_hand_and_against_the_papers_closed_form() -> None:
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    alpha = imtl_g_weights(jac @ jac.T)
    assert alpha.tolist() == pytest.approx([1 / 3, 2 / 3])  # ∝ G⁻¹d = (2/4, 1/1)
    g = alpha @ jac
    assert (g @ jac[0] / 2).item() == pytest.approx((g @ jac[1] / 1).item())  # equal projections
    # the paper's form: α_{2..T} = g_1 Uᵀ (D Uᵀ)⁻¹, D rows g_1 − g_τ, U rows u_1 − u_τ
    gen = torch.Generator().manual_seed(2)
    jac = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    unit = jac / jac.norm(dim=1, keepdim=True)
    d, u = jac[0] - jac[1:], unit[0] - unit[1:]
    rest = jac[0] @ u.T @ torch.linalg.inv(d @ u.T)
    paper = torch.cat([1 - rest.sum().reshape(1), rest])
    assert imtl_g_weights(jac @ jac.T).tolist() == pytest.approx(paper.tolist(), rel=1e-9)


# ------------------------------------------------------------------ Aligned-MTL
def test_aligned_mtl_by_hand() -> None:
    # orthogonal gradients of norms 2 and 1: G = diag(4, 1), B = √1·diag(1/2, 1), α = B(½, ½)
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    alpha = aligned_mtl_weights(jac @ jac.T)
    assert alpha.tolist() == pytest.approx([0.25, 0.5])
    assert (alpha @ jac).tolist() == pytest.approx([0.5, 0.5])  # equal components
    assert aligned_mtl_weights(jac @ jac.T, "rmse").tolist() == pytest.approx([math.sqrt(2.5) / 4, math.sqrt(2.5) / 2])
    with pytest.raises(ValueError, match="scale_mode"):
        weighting.get("aligned_mtl", scale_mode="max")


# ------------------------------------------------------------------ agreement with TorchJD
def _jacobians() -> list[tuple[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    cases = []
    for t in (2, 3, 5):
        base = torch.randn(1, 20, generator=gen, dtype=torch.float64)
        cases.append((f"random T={t}", torch.randn(t, 20, generator=gen, dtype=torch.float64)))
        conflicting = torch.randn(t, 20, generator=gen, dtype=torch.float64)
        conflicting[1] = -conflicting[0] + 0.3 * torch.randn(20, generator=gen, dtype=torch.float64)
        cases.append((f"conflicting T={t}", conflicting))
        cases.append((f"aligned T={t}", base + 0.1 * torch.randn(t, 20, generator=gen, dtype=torch.float64)))
        scales = torch.logspace(-2, 2, t, dtype=torch.float64)[:, None]
        cases.append((f"badly scaled T={t}", scales * torch.randn(t, 20, generator=gen, dtype=torch.float64)))
    return cases


def _relative(ours: torch.Tensor, ref: torch.Tensor, jac: torch.Tensor) -> float:
    """‖ours − ref‖ / ‖ref‖ (‖ref‖ floored at 1e-9 · the largest task gradient's norm)."""
    floor = 1e-9 * float(jac.norm(dim=1).max())
    return float((ours - ref).norm()) / max(float(ref.norm()), floor)


def _ours(name: str, jac: torch.Tensor) -> torch.Tensor:
    tasks = tuple(f"t{i}" for i in range(len(jac)))
    options = {"mgda": {"normalization": "none", "max_iter": 100_000}}.get(name, {})
    strategy = weighting.get(name, tasks=tasks, **options)
    return strategy.aggregate(jac, torch.ones(len(jac), dtype=jac.dtype))[0]


AGREEMENT = [  # (strategy, TorchJD aggregator, its arguments, tolerance on the max relative difference)
    ("upgrad", "UPGrad", {}, 1e-8),
    ("dualproj", "DualProj", {}, 1e-8),
    ("config", "ConFIG", {}, 1e-8),
    ("imtl_g", "IMTLG", {}, 1e-8),
    ("aligned_mtl", "AlignedMTL", {}, 1e-8),
    ("pcgrad", "PCGrad", {}, 1e-12),
    ("mgda", "MGDA", {"epsilon": 1e-12, "max_iters": 20000}, 1e-4),
]


@pytest.mark.parametrize(("name", "reference", "arguments", "tolerance"), AGREEMENT)
def test_agreement_with_torchjd(name: str, reference: str, arguments: dict, tolerance: float) -> None:
    aggregation = pytest.importorskip("torchjd.aggregation")
    pytest.importorskip("quadprog")  # TorchJD's UPGrad projector
    worst, where = 0.0, ""
    for label, jac in _jacobians():
        if name == "mgda" and len(jac) > 3:
            continue  # Frank-Wolfe (both sides) converges too slowly for a tight comparison at T = 5
        if name == "pcgrad":  # the same task orders on both sides: TorchJD draws them from the global RNG
            torch.manual_seed(11)
            orders = [torch.randperm(len(jac)).tolist() for _ in range(len(jac))]
            ours = project_conflicting(jac, orders).sum(dim=0)
            torch.manual_seed(11)
        elif name == "mgda":
            ours = min_norm_coefficients(jac @ jac.T, max_iter=100_000, tol=1e-15) @ jac
        else:
            ours = _ours(name, jac)
        ref = getattr(aggregation, reference)(**arguments)(jac)
        rel = _relative(ours, ref, jac)
        if rel >= worst:
            worst, where = rel, label
    reference_call = f"torchjd.aggregation.{reference}({arguments})"
    print(f"\nagreement {name} vs {reference_call}: max relative difference {worst:.2e} ({where})")
    assert worst <= tolerance, (name, worst, where)
