"""DB-MTL, MoCo and STCH, the strategies that track state across steps, checked four ways.

- Values worked out by hand over two or three steps, on toy losses whose gradients are known
  (L_det = x_0 + c, L_seg = 2x_1 + c': ∇L_det = (1, 0), ∇L_seg = (0, 2)).
- An independent re-computation of LibMTL's published rules (its ``DB_MTL``, ``MoCo`` and ``STCH``
  re-written with plain loops, float64), compared at 1e-12 over several steps on random Jacobians
  and losses; TorchJD implements none of the three. For MoCo the reference is LibMTL's rule with
  its softmax replaced by the paper's simplex projection (computed by Michelot's algorithm, not the
  module's sort-based one), as the module follows the paper there.
- The options' ranges (errors naming the option) and their defaults (LibMTL's).
- The state: a batch missing a task updates only the tasks present, and a ``state_dict`` round trip
  (into a fresh strategy, also one moved to float64, and the lazily shaped T × P buffers) continues
  identically; fp16 loss scaling leaves the tracked state unchanged.
"""

from __future__ import annotations

import math

import pytest
import torch

from strategy_helpers import F64, aggregate, linear_losses, linear_step, numbers
from taskweight import weighting
from taskweight.weighting.simplex import project_onto_simplex


def random_steps(t: int, p: int, steps: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(Jacobian, positive losses) per step, rows of very different scales."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-2, 2, t, dtype=F64)[:, None]
    return [
        (scales * torch.randn(t, p, generator=g, dtype=F64), torch.exp(2 * torch.randn(t, generator=g, dtype=F64)))
        for _ in range(steps)
    ]


def relative(ours: torch.Tensor, reference: list[float]) -> float:
    ref = torch.tensor(reference, dtype=F64)
    return float((ours - ref).norm() / ref.norm())


def fresh(name: str, tasks: tuple[str, ...], **options: object) -> weighting.WeightingStrategy:
    return weighting.get(name, tasks=tasks, **options).to(F64)


# ------------------------------------------------------------------ DB-MTL
def test_db_mtl_two_steps_by_hand() -> None:
    s = weighting.get("db_mtl", beta=0.5, beta_sigma=0.5).to(F64)
    # step 1, β_1 = ½, L = (2, ½): ∇log L = (½, 0) and (0, 4), ĝ = (1 − β_1)∇log L = (¼, 0) and (0, 2);
    # α = max‖ĝ‖/‖ĝ‖ = (8, 1), d = 8(¼, 0) + (0, 2) = (2, 2); w = α(1 − β_1)/L = (2, 1) and d = w·J
    used, grad = linear_step(s, 2.0, 0.5)
    assert used == pytest.approx({"det": 2.0, "seg": 1.0}, rel=1e-6)
    assert grad == pytest.approx([2.0, 2.0], rel=1e-6)
    # step 2, β_2 = ½/√2, L = (1, ½): ∇log L = (1, 0) and (0, 4), ĝ ← ∇log L + β_2(ĝ − ∇log L)
    b = 0.5 / math.sqrt(2)
    g_det, g_seg = 1 - 0.75 * b, 4 - 2 * b
    alpha_det = g_seg / g_det
    used, grad = linear_step(s, 1.0, 0.5)
    assert used == pytest.approx({"det": alpha_det * (1 - b), "seg": (1 - b) / 0.5}, rel=1e-6)
    assert grad == pytest.approx([alpha_det * g_det, g_seg], rel=1e-6)
    # the raw gradients receive w; the rest of d is the tracked part α β_2 ĝ(step 1)
    assert grad[0] - used["det"] * 1 == pytest.approx(alpha_det * b * 0.25, rel=1e-6)
    assert grad[1] - used["seg"] * 2 == pytest.approx(1 * b * 2.0, rel=1e-6)
    assert s.current_weights() == pytest.approx(used)
    assert s.updates.tolist() == [2, 2]


def libmtl_db_mtl(steps: list[tuple[torch.Tensor, torch.Tensor]], beta: float, sigma: float) -> list[list[float]]:
    """LibMTL's DB_MTL.backward, step after step, in plain loops: the combined gradient of each step."""
    rows, cols = steps[0][0].shape
    buffer = [[0.0] * cols for _ in range(rows)]
    out = []
    for count, (jacobian, losses) in enumerate(steps, start=1):
        jac, loss = jacobian.tolist(), losses.tolist()
        batch = [[jac[i][j] / (loss[i] + 1e-8) for j in range(cols)] for i in range(rows)]  # ∇ log(L + 1e-8)
        rate = beta / count**sigma
        buffer = [[batch[i][j] + rate * (buffer[i][j] - batch[i][j]) for j in range(cols)] for i in range(rows)]
        norms = [math.sqrt(sum(v * v for v in row)) for row in buffer]
        alpha = [max(norms) / (n + 1e-8) for n in norms]
        out.append([sum(alpha[i] * buffer[i][j] for i in range(rows)) for j in range(cols)])
    return out


@pytest.mark.parametrize(("beta", "sigma"), [(0.9, 0.0), (0.5, 0.5), (0.0, 0.0)])
def test_db_mtl_against_libmtls_rule_over_steps(beta: float, sigma: float) -> None:
    for t, p in ((2, 5), (3, 7), (5, 4)):
        steps = random_steps(t, p, 6, seed=t)
        s = fresh("db_mtl", tuple(f"t{i}" for i in range(t)), beta=beta, beta_sigma=sigma)
        for k, (expected, (jac, losses)) in enumerate(zip(libmtl_db_mtl(steps, beta, sigma), steps, strict=True)):
            combined, _ = aggregate(s, jac, losses)
            assert relative(combined, expected) <= 1e-12, (beta, sigma, t, p, k)


def test_db_mtl_weights_are_the_raw_gradients_coefficients() -> None:
    """d − Σ w_τ g_τ is exactly the tracked part Σ α_τ β_t ĝ_τ(previous)."""
    s = fresh("db_mtl", ("a", "b", "c"), beta=0.7, beta_sigma=0.5)
    for k, (jac, losses) in enumerate(random_steps(3, 6, 4, seed=9), start=1):
        previous = s.tracked.clone() if s.tracked.numel() else torch.zeros_like(jac)
        combined, weights = aggregate(s, jac, losses)
        norms = s.tracked.norm(dim=1)
        alpha = norms.max() / (norms + 1e-8)
        rate = 0.7 / k**0.5
        assert torch.allclose(combined - weights @ jac, rate * alpha @ previous, rtol=1e-12, atol=1e-12), k


def test_db_mtl_a_batch_missing_a_task_updates_only_the_tasks_present() -> None:
    gen = torch.Generator().manual_seed(4)
    jac, losses = torch.randn(2, 5, generator=gen, dtype=F64), torch.tensor([0.5, 3.0], dtype=F64)
    three = fresh("db_mtl", ("a", "b", "c"), beta=0.6, beta_sigma=0.5)
    two = fresh("db_mtl", ("a", "c"), beta=0.6, beta_sigma=0.5)
    ours, w3 = aggregate(three, jac, losses, ("a", "c"))
    reference, w2 = aggregate(two, jac, losses)
    assert torch.equal(ours, reference) and torch.equal(w3, w2)  # b takes no part
    assert three.updates.tolist() == [1, 0, 1]
    assert three.tracked[1].abs().max() == 0 and torch.equal(three.tracked[[0, 2]], two.tracked)
    with pytest.raises(ValueError, match="shared parameters must stay the same"):
        aggregate(three, torch.randn(2, 6, generator=gen, dtype=F64), losses, ("a", "c"))


def test_db_mtl_options() -> None:
    defaults = {option: default for option, _, default in weighting.registry.option_details("db_mtl")}
    assert defaults == {"beta": 0.9, "beta_sigma": 0.0}  # LibMTL's DB_beta, DB_beta_sigma
    for options, name in (({"beta": 1.0}, "'beta'"), ({"beta": -0.1}, "'beta'"), ({"beta_sigma": -1}, "beta_sigma")):
        with pytest.raises(ValueError, match=name):
            weighting.get("db_mtl", **options)


# ------------------------------------------------------------------ MoCo
def michelot(v: list[float]) -> list[float]:
    """Projection onto the simplex by Michelot's algorithm (1986): drop the entries below the shift until none is."""
    support = list(range(len(v)))
    while True:
        theta = (sum(v[i] for i in support) - 1) / len(support)
        kept = [i for i in support if v[i] - theta > 0]
        if len(kept) == len(support):
            return [max(x - theta, 0.0) for x in v]
        support = kept


def test_simplex_projection() -> None:
    cases = [[0.5, 0.5], [0.45, -4.5], [3.0, 3.0, 3.0], [0.2, 0.3, 0.1, 0.4], [-1.0, -2.0, -1.5], [10.0, 0.0, 9.5]]
    gen = torch.Generator().manual_seed(0)
    cases += [(3 * torch.randn(n, generator=gen, dtype=F64)).tolist() for n in (2, 3, 5, 8) for _ in range(5)]
    for v in cases:
        ours = project_onto_simplex(torch.tensor(v, dtype=F64))
        assert ours.tolist() == pytest.approx(michelot(v), abs=1e-14), v
        assert float(ours.sum()) == pytest.approx(1.0, abs=1e-14) and (ours >= 0).all()
    assert project_onto_simplex(torch.tensor([0.45, -4.5], dtype=F64)).tolist() == [1.0, 0.0]


def test_moco_two_steps_by_hand() -> None:
    s = weighting.get("moco").to(F64)  # β = ½, σ_β = ½, γ = 0.1, σ_γ = ½, ρ = 0
    # step 1: y = ½g = (½, 0) and (0, 1); λ = Π_Δ((½, ½) − 0.1·diag(¼, 1)(½, ½)) = Π_Δ(0.4875, 0.45)
    # = (0.4875, 0.45) + 0.03125 = (0.51875, 0.48125); d = Yᵀλ; w = λβ_1
    used, grad = linear_step(s, 2.0, 0.5)
    assert grad == pytest.approx([0.5 * 0.51875, 0.48125], rel=1e-12)
    assert used == pytest.approx({"det": 0.259375, "seg": 0.240625}, rel=1e-12)
    # step 2 (same gradients): β_2 = ½/√2, γ_2 = 0.1/√2, y ← y − β_2(y − g)
    b, c = 0.5 / math.sqrt(2), 0.1 / math.sqrt(2)
    y_det, y_seg = 0.5 + 0.5 * b, 1 + b
    v = (0.51875 - c * y_det**2 * 0.51875, 0.48125 - c * y_seg**2 * 0.48125)
    shift = (1 - sum(v)) / 2  # both stay positive: the projection shifts them equally
    lam = (v[0] + shift, v[1] + shift)
    used, grad = linear_step(s, 2.0, 0.5)
    assert grad == pytest.approx([y_det * lam[0], y_seg * lam[1]], rel=1e-12)
    assert used == pytest.approx({"det": lam[0] * b, "seg": lam[1] * b}, rel=1e-12)
    assert s.lambdas.tolist() == pytest.approx(list(lam), rel=1e-12)


def test_moco_projects_where_libmtl_takes_a_softmax() -> None:
    # g = (1, 0) and (0, 10), β = 1 (y = g): λ − 0.1·diag(1, 100)λ = (0.45, −4.5), projected to (1, 0):
    # d = g_det exactly (LibMTL's softmax would give (0.993, 0.007))
    s = weighting.get("moco", beta=1.0)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": x[0] + 2.0, "seg": 10 * x[1] + 1.0}, [x]))
    assert used == {"det": 1.0, "seg": 0.0}
    assert x.grad is not None and x.grad.tolist() == [1.0, 0.0]
    # LibMTL's normalisation: g ← L g/‖g‖ = (2, 0) and (0, 1), Π_Δ((½, ½) − 0.1(2, ½)) = (0.425, 0.575);
    # d = (0.85, 0.575), the raw gradients' weights λ β L/‖g‖ = (0.85, 0.0575)
    s = weighting.get("moco", beta=1.0, normalize_gradients=True)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": x[0] + 2.0, "seg": 10 * x[1] + 1.0}, [x]))
    assert used == pytest.approx({"det": 0.85, "seg": 0.0575}, rel=1e-7)
    assert x.grad is not None and x.grad.tolist() == pytest.approx([0.85, 0.575], rel=1e-7)


def libmtl_moco(steps: list[tuple[torch.Tensor, torch.Tensor]], normalize: bool, **o: float) -> list[list[float]]:
    """LibMTL's MoCo.backward in plain loops, its softmax replaced by the paper's projection (Michelot)."""
    rows, cols = steps[0][0].shape
    y = [[0.0] * cols for _ in range(rows)]
    lam = [1.0 / rows] * rows
    out = []
    for count, (jacobian, losses) in enumerate(steps, start=1):
        grads, loss = jacobian.tolist(), losses.tolist()
        if normalize:
            norms = [math.sqrt(sum(v * v for v in row)) for row in grads]
            grads = [[v / (norms[i] + 1e-8) * loss[i] for v in grads[i]] for i in range(rows)]
        beta, gamma = o["beta"] / count ** o["beta_sigma"], o["gamma"] / count ** o["gamma_sigma"]
        y = [[y[i][j] - beta * (y[i][j] - grads[i][j]) for j in range(cols)] for i in range(rows)]
        gram = [
            [sum(y[i][j] * y[k][j] for j in range(cols)) + (o["rho"] if i == k else 0.0) for k in range(rows)]
            for i in range(rows)
        ]
        lam = michelot([lam[i] - gamma * sum(gram[i][k] * lam[k] for k in range(rows)) for i in range(rows)])
        out.append([sum(lam[i] * y[i][j] for i in range(rows)) for j in range(cols)])
    return out


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {"beta": 0.5, "beta_sigma": 0.5, "gamma": 0.1, "gamma_sigma": 0.5, "rho": 0.0},
        {"beta": 0.9, "beta_sigma": 0.0, "gamma": 0.01, "gamma_sigma": 0.3, "rho": 0.5},
    ],
)
def test_moco_against_libmtls_rule_with_the_papers_projection(normalize: bool, options: dict[str, float]) -> None:
    for t, p in ((2, 5), (3, 7), (5, 4)):
        steps = random_steps(t, p, 6, seed=10 + t)
        if not normalize:  # raw gradients of norm up to 100 would send λ to a vertex at once: keep them O(1)
            steps = [(jac / jac.norm(dim=1, keepdim=True), losses) for jac, losses in steps]
        s = fresh("moco", tuple(f"t{i}" for i in range(t)), normalize_gradients=normalize, **options)
        expected = libmtl_moco(steps, normalize, **options)
        for k, (reference, (jac, losses)) in enumerate(zip(expected, steps, strict=True)):
            combined, weights = aggregate(s, jac, losses)
            assert relative(combined, reference) <= 1e-12, (normalize, t, p, k)
            assert float(s.lambdas.sum()) == pytest.approx(1.0, abs=1e-12)


def test_moco_a_batch_missing_a_task_steps_on_the_present_tasks_simplex() -> None:
    gen = torch.Generator().manual_seed(5)
    jac, losses = torch.randn(2, 5, generator=gen, dtype=F64), torch.tensor([0.5, 3.0], dtype=F64)
    three = fresh("moco", ("a", "b", "c"))
    two = fresh("moco", ("a", "c"))
    ours, w3 = aggregate(three, jac, losses, ("a", "c"))
    reference, w2 = aggregate(two, jac, losses)
    # λ_P / m = (⅓, ⅓)/(⅔) = the 2-task strategy's (½, ½): the same step, given back times m = ⅔
    assert torch.allclose(ours, reference, rtol=1e-14) and torch.allclose(w3, w2, rtol=1e-14)
    assert three.lambdas.tolist() == pytest.approx(
        [2 / 3 * float(two.lambdas[0]), 1 / 3, 2 / 3 * float(two.lambdas[1])]
    )
    assert three.updates.tolist() == [1, 0, 1] and three.tracked[1].abs().max() == 0
    # then with every task: λ on the simplex, b's tracker starts from 0 with its own t = 1
    full = torch.randn(3, 5, generator=gen, dtype=F64)
    aggregate(three, full, torch.ones(3, dtype=F64))
    assert three.updates.tolist() == [2, 1, 2]
    assert torch.allclose(three.tracked[1], 0.5 * full[1], rtol=1e-14)  # β_1 = ½: y_b = ½ g_b
    assert float(three.lambdas.sum()) == pytest.approx(1.0, abs=1e-14)


def test_moco_options() -> None:
    defaults = {option: default for option, _, default in weighting.registry.option_details("moco")}
    assert defaults == {  # LibMTL's MoCo_* defaults; the paper's raw gradients
        "beta": 0.5,
        "beta_sigma": 0.5,
        "gamma": 0.1,
        "gamma_sigma": 0.5,
        "rho": 0.0,
        "normalize_gradients": False,
    }
    bad = [("beta", 0.0), ("beta", 1.5), ("gamma", 0.0), ("beta_sigma", -1), ("gamma_sigma", -1), ("rho", -0.1)]
    for option, value in bad:
        with pytest.raises(ValueError, match=f"'{option}'"):
            weighting.get("moco", **{option: value})


# ------------------------------------------------------------------ DB-MTL and MoCo: state
@pytest.mark.parametrize("name", ["db_mtl", "moco"])
def test_tracked_state_round_trip(name: str) -> None:
    tasks = ("a", "b", "c")
    steps = random_steps(3, 6, 5, seed=21)
    trained = fresh(name, tasks)
    for jac, losses in steps[:3]:
        aggregate(trained, jac, losses)
    state = trained.state_dict()
    assert state["tracked"].shape == (3, 6)
    resumed = weighting.get(name, tasks=tasks)  # fresh: a 3 × 0 placeholder, float32
    resumed.load_state_dict(state)
    assert resumed.tracked.dtype == torch.float32  # the values, in the strategy's dtype
    resumed.to(F64)
    assert resumed.tracked.dtype == F64 and torch.equal(resumed.tracked, trained.tracked.float().double())
    resumed.load_state_dict(state)  # float64 now: exact
    for jac, losses in steps[3:]:
        first, second = aggregate(trained, jac, losses), aggregate(resumed, jac, losses)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    # a fresh strategy's state (3 × 0) resets a trained one: its next step is a first step
    trained.load_state_dict(weighting.get(name, tasks=tasks).to(F64).state_dict())
    assert trained.tracked.shape == (3, 0)
    again = fresh(name, tasks)
    assert torch.equal(aggregate(trained, *steps[0])[0], aggregate(again, *steps[0])[0])


@pytest.mark.parametrize("name", ["db_mtl", "moco"])
def test_fp16_loss_scaling_keeps_the_tracked_state_unscaled(name: str) -> None:
    plain, scaled = fresh(name, ("a", "b")), fresh(name, ("a", "b"))
    for k, (jac, losses) in enumerate(random_steps(2, 5, 3, seed=2)):
        scale = 2.0 ** (10 - k)  # the scale changes between steps, as GradScaler's does
        scaled.gradient_scale = scale
        d, w = aggregate(plain, jac, losses)
        d_scaled, w_scaled = aggregate(scaled, scale * jac, losses)
        assert torch.allclose(d_scaled, scale * d, rtol=1e-13) and torch.allclose(w_scaled, w, rtol=1e-13)
        assert torch.allclose(scaled.tracked, plain.tracked, rtol=1e-13)


# ------------------------------------------------------------------ STCH
def test_stch_warm_up_then_the_scalarisation_by_hand() -> None:
    s = weighting.get("stch", mu=0.5, warmup_epochs=1)
    # epoch 0 (warm-up): Σ log L, weights 1/L; the nadir accumulates, seg present in one batch only
    used, grad = linear_step(s, 2.0, 0.5)
    assert used == pytest.approx({"det": 0.5, "seg": 2.0}, rel=1e-15)
    assert grad == pytest.approx([0.5, 4.0], rel=1e-15)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    assert numbers(s.backward({"det": x[0] + 4.0})) == pytest.approx({"det": 0.25})
    s.on_epoch_end()
    assert s.nadir.tolist() == [3.0, 0.5]  # mean over the batches where each task was present
    # epoch 1, L = (1.5, 1): log(L/z)/μ = (2 log ½, 2 log 2), softmax = (¼, 4)/(17/4) = (1/17, 16/17);
    # w = T·softmax/L = (2/17/1.5, 32/17): the task furthest above its nadir takes the weight
    used, grad = linear_step(s, 1.5, 1.0)
    assert used == pytest.approx({"det": 4 / 51, "seg": 32 / 17}, rel=1e-12)
    assert grad == pytest.approx([4 / 51, 64 / 17], rel=1e-12)  # backward differentiates the scalarisation
    assert s.current_weights() == pytest.approx(used)
    s.on_epoch_end()
    assert s.nadir.tolist() == [3.0, 0.5]  # set once
    # a zero loss stays finite (1e-20 inside the logarithm, as LibMTL): log(L/z)/μ = (2 log 1e-20, 2 log 4),
    # softmax_det = 1e-40/16, w_det = 2 softmax_det/(1e-20 · z_det)
    used, grad = linear_step(s, 0.0, 2.0)
    assert used["det"] == pytest.approx(2 * (1e-40 / 16) / (1e-20 * 3.0), rel=1e-9)
    assert all(math.isfinite(g) for g in grad)


def test_stch_nadir_from_the_last_warm_up_epoch_and_a_task_never_seen() -> None:
    s = weighting.get("stch", warmup_epochs=2)
    linear_step(s, 100.0, 100.0)  # epoch 0: not in the nadir
    s.on_epoch_end()
    linear_step(s, 2.0, 1.0)
    linear_step(s, 4.0, 3.0)
    s.on_epoch_end()
    assert s.has_nadir and s.nadir.tolist() == [3.0, 2.0]
    # seg never labelled in the last warm-up epoch: the warm-up goes on until it has been
    s = weighting.get("stch", warmup_epochs=1)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    s.backward({"det": x[0] + 2.0})
    s.on_epoch_end()
    assert not s.has_nadir
    assert numbers(s.backward(linear_losses(x, 4.0, 5.0))) == pytest.approx({"det": 0.25, "seg": 0.2})  # 1/L
    s.on_epoch_end()
    assert s.has_nadir and s.nadir.tolist() == [3.0, 5.0]


def libmtl_stch(epochs: list[list[list[float]]], mu: float, warmup_epoch: int) -> list[list[float]]:
    """LibMTL's STCH.backward as written there (epochs counted from 0, its max subtracted, ·T), differentiated
    by autograd: ∂loss/∂L_τ for every step."""
    rows = len(epochs[0][0])
    total, count, nadir = [0.0] * rows, 0, None
    out = []
    for epoch, batches in enumerate(epochs):
        for values in batches:
            losses = torch.tensor(values, dtype=F64, requires_grad=True)
            if epoch <= warmup_epoch:
                loss = torch.log(losses + 1e-20).sum()
                if epoch == warmup_epoch:
                    total, count = [a + b for a, b in zip(total, values, strict=True)], count + 1
            else:
                if nadir is None:
                    nadir = torch.tensor([a / count for a in total], dtype=F64)
                logs = torch.log(losses / nadir + 1e-20)
                loss = mu * torch.log(torch.sum(torch.exp((logs - logs.detach().max()) / mu))) * rows
            (grad,) = torch.autograd.grad(loss, losses)
            out.append(grad.tolist())
    return out


@pytest.mark.parametrize("mu", [1.0, 0.2])
def test_stch_against_libmtls_rule(mu: float) -> None:
    gen = torch.Generator().manual_seed(3)
    tasks = ("a", "b", "c")
    epochs = [[torch.exp(torch.randn(3, generator=gen, dtype=F64)).tolist() for _ in range(3)] for _ in range(5)]
    expected = iter(libmtl_stch(epochs, mu, warmup_epoch=1))  # LibMTL's STCH_warmup_epoch = 1: two epochs here
    s = fresh("stch", tasks, mu=mu, warmup_epochs=2)
    for batches in epochs:
        for values in batches:
            losses = {t: torch.tensor(v, dtype=F64, requires_grad=True) for t, v in zip(tasks, values, strict=True)}
            used = s.backward(losses)
            reference = next(expected)
            grads = torch.stack([losses[t].grad for t in tasks])
            assert relative(grads, reference) <= 1e-12, (s.epoch_count, values)
            assert relative(torch.stack([used[t] for t in tasks]), reference) <= 1e-12
        s.on_epoch_end()


def test_stch_round_trip_mid_warm_up() -> None:
    gen = torch.Generator().manual_seed(8)
    values = [torch.exp(torch.randn(2, generator=gen, dtype=F64)).tolist() for _ in range(7)]
    first = weighting.get("stch", warmup_epochs=2)
    for k, (det, seg) in enumerate(values[:4]):
        linear_step(first, det, seg)
        if k % 3 == 2:
            first.on_epoch_end()
    second = weighting.get("stch", warmup_epochs=2)
    second.load_state_dict(first.state_dict())  # in the last warm-up epoch, the sums half accumulated
    assert second.counts == [1, 1] and second.epoch_count == 1
    for k, (det, seg) in enumerate(values[4:], start=4):
        assert linear_step(first, det, seg) == linear_step(second, det, seg), k
        if k % 3 == 2:
            first.on_epoch_end()
            second.on_epoch_end()
    assert first.has_nadir and second.has_nadir and torch.equal(first.nadir, second.nadir)
    assert linear_step(first, 1.0, 1.0) == linear_step(second, 1.0, 1.0)


def test_stch_options() -> None:
    defaults = {option: default for option, _, default in weighting.registry.option_details("stch")}
    assert defaults == {"mu": 1.0, "warmup_epochs": 1}
    with pytest.raises(ValueError, match="'mu'"):
        weighting.get("stch", mu=0.0)
    with pytest.raises(ValueError, match="'warmup_epochs'"):
        weighting.get("stch", warmup_epochs=0)
