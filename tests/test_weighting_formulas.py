"""Each weighting strategy against hand-computed values (paper §IV)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from taskweight import weighting
from taskweight.errors import TrainingError
from taskweight.weighting.geometric import geometric_loss
from taskweight.weighting.gradnorm import gradnorm_loss
from taskweight.weighting.mgda import min_norm_coefficients
from taskweight.weighting.pcgrad import project_conflicting


def numbers(used: dict) -> dict[str, float]:
    """A strategy's weights as Python floats (strategies may return device tensors)."""
    return {t: float(w) for t, w in used.items()}


def linear_losses(x: torch.Tensor, g_det, g_seg, c_det=10.0, c_seg=1.0):
    """L_det = g_det·x + c_det, L_seg = g_seg·x + c_seg (known gradients)."""
    return {"det": torch.dot(torch.tensor(g_det), x) + c_det, "seg": torch.dot(torch.tensor(g_seg), x) + c_seg}


# ------------------------------------------------------------------ registry
def test_registry_lists_every_strategy_and_rejects_unknown_names_and_options():
    assert set(weighting.available()) == {
        "equal",
        "handcrafted",
        "dynamic_scaling",
        "uncertainty",
        "gradnorm",
        "geometric",
        "weight_learning",
        "static",
        "async",
        "pcgrad",
        "mgda",
        "dwa",
        "rlw",
        "imtl_l",
        "famo",
        "upgrad",
        "imtl_g",
        "aligned_mtl",
        "dualproj",
        "config",
        "gradvac",
        "graddrop",
        "fairgrad",
        "cagrad",
        "nash_mtl",
        "sdmgrad",
        "db_mtl",
        "moco",
        "stch",
    }
    with pytest.raises(KeyError, match="available"):
        weighting.get("nope")
    with pytest.raises(ValueError, match="valid options: alpha"):
        weighting.get("gradnorm", alpa=1.0)
    assert weighting.parse_options("async", ["weights=det:1,seg:70", "frequencies=det:1,seg:3", "unit=epoch"]) == {
        "weights": {"det": 1, "seg": 70},
        "frequencies": {"det": 1, "seg": 3},
        "unit": "epoch",
    }
    with pytest.raises(ValueError, match="no option 'freq'"):
        weighting.parse_options("async", ["freq=2"])
    with pytest.raises(ValueError, match="not key=value"):
        weighting.parse_options("static", ["weights"])


def test_equal_and_static_gradients():
    x = torch.zeros(2, requires_grad=True)
    used = numbers(weighting.get("equal").backward(linear_losses(x, [1.0, 2.0], [3.0, -1.0])))
    assert used == {"det": 1.0, "seg": 1.0}
    assert torch.allclose(x.grad, torch.tensor([4.0, 1.0]))

    x = torch.zeros(2, requires_grad=True)
    s = weighting.get("static", weights={"det": 1, "seg": 3})
    assert s.current_weights() == {"det": 0.25, "seg": 0.75}
    s.backward(linear_losses(x, [1.0, 2.0], [3.0, -1.0]))
    assert torch.allclose(x.grad, torch.tensor([0.25 + 2.25, 0.5 - 0.75]))
    with pytest.raises(ValueError, match="no value for task"):
        weighting.get("static", weights={"det": 1})
    with pytest.raises(ValueError, match=">= 0"):
        weighting.get("static", weights={"det": -1, "seg": 1})


# ------------------------------------------------------------------ async (Eq. 10-12)
def test_async_zeroes_the_right_steps_and_leaves_idle_heads_untouched():
    s = weighting.get("async", weights={"det": 1, "seg": 3}, frequencies={"det": 2, "seg": 3})
    seen = []
    for _ in range(7):
        head_det = torch.ones(1, requires_grad=True)
        head_seg = torch.ones(1, requires_grad=True)
        used = numbers(s.backward({"det": 2 * head_det.sum(), "seg": 5 * head_seg.sum()}))
        seen.append((used["det"], used["seg"]))
        assert (head_det.grad is None) == (used["det"] == 0)
        assert (head_seg.grad is None) == (used["seg"] == 0)
        if used["seg"]:
            assert head_seg.grad.item() == pytest.approx(5 * 0.75)
        s.on_step_end()
    assert seen == [(0.25, 0.75), (0, 0), (0.25, 0), (0, 0.75), (0.25, 0), (0, 0), (0.25, 0.75)]


def test_async_epoch_unit_counts_epochs():
    s = weighting.get("async", frequencies={"det": 1, "seg": 2}, unit="epoch")
    p = torch.ones(1, requires_grad=True)
    per_epoch = []
    for _ in range(3):
        per_epoch.append(s.backward({"det": p.sum(), "seg": p.sum()}))
        s.on_step_end()
        per_epoch.append(s.backward({"det": p.sum(), "seg": p.sum()}))
        s.on_step_end()
        s.on_epoch_end()
    assert [w["seg"] for w in per_epoch] == [0.5, 0.5, 0, 0, 0.5, 0.5]
    with pytest.raises(ValueError, match="integer >= 1"):
        weighting.get("async", frequencies={"det": 0, "seg": 1})


# ------------------------------------------------------------------ handcrafted (Eq. 3-4)
def test_handcrafted_uses_the_ratio_of_the_first_n_losses_then_holds_it():
    s = weighting.get("handcrafted", iterations=2)
    x = torch.zeros(1, requires_grad=True)
    used = []
    for det, seg in [(10.0, 0.5), (20.0, 0.5), (1.0, 1.0), (1.0, 1.0)]:
        used.append(numbers(s.backward({"det": x.sum() + det, "seg": x.sum() + seg})))
        s.on_step_end()
    assert used[0] == used[1] == {"det": 1.0, "seg": 1.0}
    assert used[2]["seg"] == pytest.approx(15.0 / 0.5) and used[2]["det"] == 1.0
    assert used[3] == used[2]
    # state survives a save/restore
    other = weighting.get("handcrafted", iterations=2)
    other.load_state_dict(s.state_dict())
    assert other.current_weights() == s.current_weights()
    assert weighting.get("handcrafted", weights={"det": 1, "seg": 70}).current_weights() == {"det": 1.0, "seg": 70.0}


# ------------------------------------------------------------------ dynamic scaling (Eq. 5-6)
def test_dynamic_scaling_uses_previous_epoch_means():
    s = weighting.get("dynamic_scaling")
    x = torch.zeros(1, requires_grad=True)
    for det, seg in [(4.0, 0.1), (8.0, 0.3)]:
        assert s.backward({"det": x.sum() + det, "seg": x.sum() + seg}) == {"det": 1.0, "seg": 1.0}
    s.on_epoch_end()
    assert s.current_weights() == {"det": 1.0, "seg": pytest.approx(6.0 / 0.2)}
    s.backward({"det": x.sum() + 3.0})  # a detection-only batch counts for det only
    s.backward({"det": x.sum() + 3.0, "seg": x.sum() + 1.5})
    s.on_epoch_end()
    assert s.current_weights()["seg"] == pytest.approx(3.0 / 1.5)


# ------------------------------------------------------------------ uncertainty
@pytest.mark.parametrize(
    ("form", "task_type", "optimum"),
    [
        ("kendall", "regression", 3.0),  # σ² = L
        ("kendall", "classification", 6.0),  # σ² = 2L
        ("positive", "regression", (1.5 + math.sqrt(1.5**2 + 4 * 1.5)) / 2),  # σ⁴/(1+σ²) = L/2
    ],
)
def test_uncertainty_optimum(form, task_type, optimum):
    s = weighting.get("uncertainty", form=form, task_types={"det": task_type, "seg": task_type})
    opt = torch.optim.Adam(s.trainable_parameters(), lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        s.backward({"det": torch.tensor(3.0), "seg": torch.tensor(3.0)})
        opt.step()
    assert s.variances()["det"] == pytest.approx(optimum, rel=1e-3)


def test_uncertainty_gradient_and_effective_weight_by_hand():
    s = weighting.get("uncertainty", init=math.log(2.0))  # σ² = 2
    x = torch.zeros(1, requires_grad=True)
    used = numbers(s.backward({"det": x.sum() + 4.0, "seg": 3 * x.sum() + 1.0}))
    assert used == {"det": pytest.approx(0.25), "seg": pytest.approx(0.25)}  # ½ e^{-s}
    assert x.grad.item() == pytest.approx(0.25 * 1 + 0.25 * 3)
    # ∂/∂s (½e^{-s}L + ½s) = −½e^{-s}L + ½
    assert s.log_vars.grad.tolist() == pytest.approx([-0.25 * 4 + 0.5, -0.25 * 1 + 0.5])


# ------------------------------------------------------------------ GradNorm
def test_gradnorm_loss_and_its_gradient_by_hand():
    w = torch.tensor([1.0, 1.0], requires_grad=True)
    norms = torch.tensor([2.0, 0.5])
    ratios = torch.tensor([1.0, 1.0])
    loss = gradnorm_loss(w, norms, ratios, alpha=1.5)
    # G = [2, .5], Ḡ = 1.25, r = 1: |2 − 1.25| + |.5 − 1.25|
    assert loss.item() == pytest.approx(1.5)
    (grad,) = torch.autograd.grad(loss, w)
    assert grad.tolist() == pytest.approx([2.0, -0.5])  # target is a constant
    # unequal training rates: r = [1.2, .8] / 1 → targets Ḡ·r^α
    w2 = torch.tensor([1.0, 1.0], requires_grad=True)
    loss = gradnorm_loss(w2, norms, torch.tensor([0.6, 0.4]), alpha=2.0)
    assert loss.item() == pytest.approx(abs(2 - 1.25 * 1.44) + abs(0.5 - 1.25 * 0.64))


def test_gradnorm_step_on_a_two_parameter_toy():
    W = torch.nn.Parameter(torch.tensor([1.0, 1.0]))  # the "last shared layer"
    s = weighting.get("gradnorm", lr=0.1)
    losses = {"det": 2 * W[0] + 10, "seg": 0.5 * W[1] + 1}
    used = numbers(s.backward(losses, [W], [W]))
    assert used == {"det": 1.0, "seg": 1.0}
    assert W.grad.tolist() == pytest.approx([2.0, 0.5])  # ∇ Σ w L with the weights before the step
    assert s.last_grad_loss == pytest.approx(1.5)
    # Adam's first step moves each weight by lr against sign(∂L_grad/∂w) = [+, −]
    assert list(s.current_weights().values()) == pytest.approx([0.9, 1.1], abs=1e-5)


def test_gradnorm_norms_match_direct_computation_and_keep_sum_T():
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(3))
    a, b = torch.randn(3), torch.randn(3)
    s = weighting.get("gradnorm", lr=0.05, alpha=1.5)
    l0 = None
    for _ in range(30):
        W.grad = None
        losses = {"det": (W @ a) ** 2 + 1, "seg": (W @ b) ** 2 + 0.5}
        w = torch.tensor(list(s.current_weights().values()))
        n = torch.stack([2 * (W @ a).abs() * a.norm(), 2 * (W @ b).abs() * b.norm()]).detach()
        cur = torch.stack([losses["det"], losses["seg"]]).detach()
        l0 = cur if l0 is None else l0
        expected = gradnorm_loss(w, n, cur / l0, 1.5).item()
        s.backward(losses, [W], [W])
        assert s.last_grad_loss == pytest.approx(expected, rel=1e-4)
        weights = s.current_weights()
        assert sum(weights.values()) == pytest.approx(2.0)
        assert min(weights.values()) > 0
        with torch.no_grad():
            W -= 0.05 * W.grad
        s.on_step_end()


# ------------------------------------------------------------------ geometric (Eq. 7)
def test_geometric_effective_weights_by_finite_differences():
    x = torch.tensor([0.3, -0.2], requires_grad=True)
    losses = linear_losses(x, [1.0, 2.0], [3.0, -1.0], c_det=40.0, c_seg=0.7)
    values = [float(v.detach()) for v in losses.values()]
    used = numbers(weighting.get("geometric").backward(losses))
    g = math.sqrt(values[0] * values[1])
    h = 1e-4
    for i, task in enumerate(("det", "seg")):
        up, down = list(values), list(values)
        up[i] += h
        down[i] -= h
        fd = (
            geometric_loss([torch.tensor(v, dtype=torch.float64) for v in up])
            - geometric_loss([torch.tensor(v, dtype=torch.float64) for v in down])
        ).item() / (2 * h)
        assert used[task] == pytest.approx(fd, rel=1e-5)
        assert used[task] == pytest.approx(g / (2 * values[i]))
    assert x.grad.tolist() == pytest.approx([used["det"] * 1 + used["seg"] * 3, used["det"] * 2 - used["seg"]])


def test_geometric_rejects_non_positive_losses():
    x = torch.zeros(1, requires_grad=True)
    with pytest.raises(TrainingError, match="seg loss is 0"):
        weighting.get("geometric").backward({"det": x.sum() + 1, "seg": x.sum()})


# ------------------------------------------------------------------ weight learning (Eq. 8-9)
def test_weight_learning_gradient_and_collapse_onto_the_smaller_loss():
    s = weighting.get("weight_learning")
    used = numbers(s.backward({"det": torch.tensor(2.0), "seg": torch.tensor(1.0)}))
    assert used == {"det": 0.5, "seg": 0.5}
    # ∂L/∂w = α(1−α)(L_seg − L_det)
    assert s.logits.grad.item() == pytest.approx(0.25 * (1.0 - 2.0))
    opt = torch.optim.SGD(s.trainable_parameters(), lr=1.0)
    for _ in range(300):
        opt.zero_grad()
        s.backward({"det": torch.tensor(2.0), "seg": torch.tensor(1.0)})
        opt.step()
    assert s.current_weights()["seg"] > 0.95  # all weight drifts to the easier task
    three = weighting.get("weight_learning", tasks=("a", "b", "c"))
    assert sum(three.current_weights().values()) == pytest.approx(1.0)


# ------------------------------------------------------------------ PCGrad and MGDA
def test_pcgrad_projection_by_hand():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    out = project_conflicting(grads, [[1], [0]])
    assert out.tolist() == [[0.5, 0.5], [0.0, 1.0]]
    x = torch.zeros(2, requires_grad=True)
    h = torch.zeros(1, requires_grad=True)  # a detection-head parameter
    losses = {"det": x[0] + 3 * h.sum(), "seg": -x[0] + x[1]}
    s = weighting.get("pcgrad")
    assert s.backward(losses, [x]) == {"det": 1.0, "seg": 1.0}
    assert x.grad.tolist() == pytest.approx([0.5, 1.5])
    assert h.grad.item() == 3.0
    # no conflict: plain sum
    x2 = torch.zeros(2, requires_grad=True)
    weighting.get("pcgrad").backward({"det": x2[0], "seg": x2[0] + x2[1]}, [x2])
    assert x2.grad.tolist() == [2.0, 1.0]


def test_mgda_two_task_closed_form_by_hand():
    x = torch.zeros(2, requires_grad=True)
    s = weighting.get("mgda", normalization="none")
    used = numbers(s.backward({"det": 2 * x[0] + 5, "seg": x[1] + 1}, [x]))
    assert used == {"det": pytest.approx(0.2), "seg": pytest.approx(0.8)}
    assert x.grad.tolist() == pytest.approx([0.4, 0.8])
    # 'loss+' divides by L·‖g‖: equal unit vectors → α = ½ whatever the scales
    x = torch.zeros(2, requires_grad=True)
    used = numbers(weighting.get("mgda").backward({"det": 2 * x[0] + 5, "seg": x[1] + 1}, [x]))
    # ĝ_det = (2,0)/(5·2) = (.2, 0), ĝ_seg = (0, 1): α_det = ((ĝ_seg − ĝ_det)·ĝ_seg)/‖ĝ_det − ĝ_seg‖² = 1/1.04
    assert used["det"] == pytest.approx(1 / 1.04)


def test_mgda_frank_wolfe_matches_brute_force_for_three_tasks():
    torch.manual_seed(3)
    g = torch.randn(3, 5, dtype=torch.float64)
    gram = g @ g.T
    alpha = min_norm_coefficients(gram, max_iter=2000, tol=1e-12)
    assert alpha.min() >= 0 and alpha.sum().item() == pytest.approx(1.0)
    best = min(
        (
            float(
                torch.tensor([a, b, 1 - a - b], dtype=torch.float64)
                @ gram
                @ torch.tensor([a, b, 1 - a - b], dtype=torch.float64)
            )
        )
        for a, b in itertools.product([i / 200 for i in range(201)], repeat=2)
        if a + b <= 1
    )
    assert float(alpha @ gram @ alpha) <= best + 1e-6


def test_every_strategy_copes_with_a_batch_labelled_for_one_task():
    for name in weighting.available():
        x = torch.ones(2, requires_grad=True)
        used = numbers(weighting.get(name).backward({"seg": (x**2).sum()}, [x], [x]))
        assert set(used) == {"seg"}
        assert x.grad is not None and x.grad.tolist() != [0.0, 0.0], name
