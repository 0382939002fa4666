"""Edge cases of the loss weightings and two Gramian aggregations, against hand-computed values.

Averaging windows when a batch misses a task, state round trips inside a window or an epoch,
initial weights before the first step, the dtype of the returned weights, and the degenerate
Gramians of ConFIG and DualProj.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from strategy_helpers import constant_step, numbers
from taskweight import weighting
from taskweight.weighting.config import config_weights
from taskweight.weighting.dualproj import dualproj_weights


def leaves(dtype: torch.dtype = torch.float32, **values: float) -> dict[str, torch.Tensor]:
    """Losses ``task=value`` as leaf tensors of ``dtype`` that require grad."""
    return {t: torch.tensor(v, dtype=dtype, requires_grad=True) for t, v in values.items()}


def reloaded(strategy, name: str, **options):
    """A fresh strategy of the same kind given ``strategy``'s state_dict."""
    other = weighting.get(name, tasks=strategy.tasks, **options)
    other.load_state_dict(copy.deepcopy(strategy.state_dict()))
    return other


# ------------------------------------------------------------------ handcrafted
def test_handcrafted_window_counts_each_task_separately_when_a_batch_misses_one():
    s = weighting.get("handcrafted", iterations=2)
    assert constant_step(s, det=10.0) == {"det": 1.0}  # det 1 of 2
    assert constant_step(s, det=20.0, seg=1.0) == {"det": 1.0, "seg": 1.0}  # det 2 of 2 (full), seg 1 of 2
    assert constant_step(s, det=100.0, seg=3.0) == {"det": 1.0, "seg": 1.0}  # det is full: its 100 is not counted
    # L(0): det (10 + 20)/2 = 15, seg (1 + 3)/2 = 2 → w_seg = 15/2 = 7.5
    assert s.initial_losses == {"det": 15.0, "seg": 2.0}
    assert s.current_weights() == {"det": 1.0, "seg": 7.5}
    assert constant_step(s, det=1.0, seg=1.0) == {"det": 1.0, "seg": 7.5}


def test_handcrafted_initial_losses_are_the_running_means():
    s = weighting.get("handcrafted", iterations=3)
    constant_step(s, det=2.0, seg=0.25)
    constant_step(s, det=4.0)
    assert s.initial_losses == {"det": 3.0, "seg": 0.25}  # (2 + 4)/2, 0.25/1


def test_handcrafted_state_round_trip_inside_the_window():
    s = weighting.get("handcrafted", iterations=2)
    constant_step(s, det=10.0, seg=0.5)
    other = reloaded(s, "handcrafted", iterations=2)
    assert other.initial_losses == {"det": 10.0, "seg": 0.5}
    assert other.current_weights() == {"det": 1.0, "seg": 1.0}
    constant_step(other, det=20.0, seg=0.5)
    # the restored sums and counts finish the window: L(0) = (15, 0.5) → w_seg = 30
    assert other.initial_losses == {"det": 15.0, "seg": 0.5}
    assert other.current_weights() == {"det": 1.0, "seg": 30.0}


def test_handcrafted_state_round_trip_after_the_window_keeps_the_weights():
    s = weighting.get("handcrafted", iterations=1, reference="seg")
    constant_step(s, det=2.0, seg=1.0)
    other = reloaded(s, "handcrafted", iterations=1, reference="seg")
    # w_det = L_seg / L_det = 1/2; nothing more is measured after the window
    assert constant_step(other, det=50.0, seg=1.0) == {"det": 0.5, "seg": 1.0}
    assert other.initial_losses == {"det": 2.0, "seg": 1.0}


# ------------------------------------------------------------------ dynamic scaling
def test_dynamic_scaling_counts_each_task_separately_in_the_first_epoch():
    s = weighting.get("dynamic_scaling")
    constant_step(s, det=4.0, seg=1.0)
    constant_step(s, det=8.0)
    s.on_epoch_end()
    # means: det (4 + 8)/2 = 6, seg 1/1 = 1 → w_seg = 6
    assert s.current_weights() == {"det": 1.0, "seg": 6.0}


def test_dynamic_scaling_first_epoch_without_a_task_keeps_equal_weights():
    s = weighting.get("dynamic_scaling")
    constant_step(s, det=4.0)
    s.on_epoch_end()
    assert s.current_weights() == {"det": 1.0, "seg": 1.0}
    constant_step(s, det=3.0, seg=1.5)
    s.on_epoch_end()
    assert s.current_weights() == {"det": 1.0, "seg": 2.0}  # 3 / 1.5, epoch 1 forgotten


def test_dynamic_scaling_state_round_trip_inside_an_epoch():
    s = weighting.get("dynamic_scaling")
    constant_step(s, det=4.0, seg=1.0)
    constant_step(s, det=8.0)
    other = reloaded(s, "dynamic_scaling")
    constant_step(other, det=6.0, seg=3.0)
    other.on_epoch_end()
    # means over the whole epoch: det (4 + 8 + 6)/3 = 6, seg (1 + 3)/2 = 2 → w_seg = 3
    assert other.current_weights() == {"det": 1.0, "seg": 3.0}


# ------------------------------------------------------------------ geometric
def test_geometric_weights_before_the_first_step_are_one_over_t():
    assert weighting.get("geometric").current_weights() == {"det": 0.5, "seg": 0.5}
    assert weighting.get("geometric", tasks=("a", "b", "c", "d")).current_weights() == {t: 0.25 for t in "abcd"}


def test_geometric_a_task_missing_keeps_its_last_weight():
    s = weighting.get("geometric")
    assert constant_step(s, det=4.0) == {"det": 1.0}  # T = 1 present: L/(1·L) = 1
    assert s.current_weights() == {"det": 1.0, "seg": 0.5}  # seg never seen: 1/T


# ------------------------------------------------------------------ RLW
def test_rlw_weights_before_the_first_step_are_one_over_t():
    assert weighting.get("rlw").current_weights() == {"det": 0.5, "seg": 0.5}
    assert weighting.get("rlw", tasks=("a", "b", "c", "d")).current_weights() == {t: 0.25 for t in "abcd"}


def test_rlw_default_seed_draws_float64_normals_from_generator_zero():
    s = weighting.get("rlw")
    used = s.backward(leaves(torch.float64, det=1.0, seg=2.0))
    lam = torch.randn(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).tolist()
    # w = softmax(λ) computed by hand in float64
    z = math.exp(lam[0]) + math.exp(lam[1])
    assert used["det"].dtype == torch.float64
    assert float(used["det"]) == pytest.approx(math.exp(lam[0]) / z, rel=1e-13)
    assert float(used["seg"]) == pytest.approx(math.exp(lam[1]) / z, rel=1e-13)
    assert s.current_weights() == pytest.approx({"det": math.exp(lam[0]) / z, "seg": math.exp(lam[1]) / z}, rel=1e-13)


def test_rlw_weights_take_the_dtype_of_float32_losses():
    used = weighting.get("rlw", seed=3).backward(leaves(det=1.0, seg=2.0))
    assert {t: w.dtype for t, w in used.items()} == {"det": torch.float32, "seg": torch.float32}
    assert float(used["det"] + used["seg"]) == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ weights follow the losses' dtype
@pytest.mark.parametrize("name", ["dwa", "weight_learning"])
def test_weights_take_the_dtype_of_float64_losses_with_float32_state(name):
    s = weighting.get(name)  # buffers / parameters stay float32
    used = s.backward(leaves(torch.float64, det=2.0, seg=1.0))
    assert {t: w.dtype for t, w in used.items()} == {"det": torch.float64, "seg": torch.float64}
    # DWA: w = 1 in the first two epochs; weight learning: α = sigmoid(0) = ½
    expected = {"det": 1.0, "seg": 1.0} if name == "dwa" else {"det": 0.5, "seg": 0.5}
    assert numbers(used) == expected


# ------------------------------------------------------------------ DWA
def test_dwa_means_are_per_task_when_a_batch_misses_one():
    s = weighting.get("dwa")
    constant_step(s, det=2.0, seg=4.0)
    s.on_epoch_end()
    constant_step(s, det=1.0, seg=4.0)
    constant_step(s, det=3.0)
    s.on_epoch_end()
    # epoch 2 means: det (1 + 3)/2 = 2, seg 4/1 = 4; r = (2/2, 4/4) = (1, 1) → w = 2·softmax(½, ½) = (1, 1)
    assert s.current_weights() == pytest.approx({"det": 1.0, "seg": 1.0})
    constant_step(s, det=1.0, seg=8.0)
    s.on_epoch_end()
    # r = (1/2, 8/4) = (½, 2); w = 2·softmax(¼, 1) = (2/(1+e^¾), 2e^¾/(1+e^¾))
    q = math.exp(0.75)
    assert s.current_weights() == pytest.approx({"det": 2 / (1 + q), "seg": 2 * q / (1 + q)})


# ------------------------------------------------------------------ DualProj
# g1 = (3, 0), g2 = (−2, 1): G = [[9, −6], [−6, 5]], trace 14, Ĝ = G/14 + εI, u = (½, ½).
# Ĝu = (3/28 + ε/2, −1/28 + ε/2): the mean conflicts with g2 unless ε/2 ≥ 1/28. Then only v2 rises:
# v2 = ½ + x, x = (1/28 − ε/2)/(5/14 + ε) (and ∂/∂x1 = 3/28 − 6x/14 + ε/2 > 0 keeps v1 = ½).
JAC = torch.tensor([[3.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)


def dualproj_expected(eps: float) -> list[float]:
    x = max(0.0, (1 / 28 - eps / 2) / (5 / 14 + eps))
    return [0.5, 0.5 + x]


def test_dualproj_default_regularisation_is_1e_minus_4():
    w = dualproj_weights(JAC @ JAC.T)
    assert w.tolist() == pytest.approx(dualproj_expected(1e-4), rel=1e-9)  # (0.5, 0.59983...)
    assert w.tolist() != pytest.approx([0.5, 0.6], rel=1e-6)


@pytest.mark.parametrize(("reg_eps", "expected"), [(0.0, [0.5, 0.6]), (0.1, [0.5, 0.5])])
def test_dualproj_strategy_passes_its_reg_eps(reg_eps, expected):
    # ε = 0: x = (1/28)/(5/14) = 0.1; ε = 0.1: ε/2 = 0.05 ≥ 1/28, no conflict left, v = u
    assert expected == pytest.approx(dualproj_expected(reg_eps))
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    s = weighting.get("dualproj", reg_eps=reg_eps)
    used = numbers(s.backward({"det": JAC[0] @ x + 1.0, "seg": JAC[1] @ x + 1.0}, [x]))
    assert [used["det"], used["seg"]] == pytest.approx(expected, rel=1e-9)
    # d = wᵀJ: (3·w1 − 2·w2, w2)
    assert x.grad.tolist() == pytest.approx([3 * expected[0] - 2 * expected[1], expected[1]], rel=1e-9)


# ------------------------------------------------------------------ ConFIG
def test_config_all_zero_gradients_give_zero_weights():
    # every unit vector is zero (1/0 read as 0): a = 0, aᵀGa = 0, w = 0 (not 0/0)
    w = config_weights(torch.zeros(3, 3, dtype=torch.float64))
    assert w.tolist() == [0.0, 0.0, 0.0]


def test_config_task_whose_squared_norm_underflows_gets_weight_exactly_zero():
    # g2 = (1e-200, 0): ‖g2‖² underflows to 0 but g1·g2 = 1e-200 does not. Its unit vector is read as 0,
    # so ConFIG sees g1 alone: a = (1, 0), w = (1ᵀGa / aᵀGa)·a = (1 + 1e-200)/1·(1, 0) = (1, 0).
    jac = torch.tensor([[1.0, 0.0], [1e-200, 0.0]], dtype=torch.float64)
    gram = jac @ jac.T
    assert gram[1, 1].item() == 0.0 and gram[0, 1].item() == 1e-200
    assert config_weights(gram).tolist() == [1.0, 0.0]
    # three tasks, g3 = (1, 3)·1e-200 underflowing the same way: ConFIG of g1 = (1, 0), g2 = (1, 1) alone.
    # Û = [[1, 0], [1/√2, 1/√2]], v = Û⁻¹1 = (1, √2 − 1), Σg·v = 1 + √2, ‖v‖² = 4 − 2√2,
    # d = (1 + √2)/(4 − 2√2)·v = w1·g1 + w2·g2 → w1 = (1 + √2)/2, w2 = 1/(4 − 2√2), w3 = 0 exactly
    jac = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1e-200, 3e-200]], dtype=torch.float64)
    w = config_weights(jac @ jac.T).tolist()
    r2 = math.sqrt(2)
    assert w[:2] == pytest.approx([(1 + r2) / 2, 1 / (4 - 2 * r2)], rel=1e-12)
    assert w[2] == 0.0


def test_config_float32_gramian_is_solved_in_float64():
    # J = [[1, 0, 0], [0, 1, 0], [1, 1, ε]], ε = 2⁻¹⁰: G = [[1, 0, 1], [0, 1, 1], [1, 1, 2 + ε²]] exactly in float32.
    # Û is invertible, v = Û⁻¹1: v1 = v2 = 1, (v1 + v2 + ε v3)/s = 1 with s = √(2 + ε²) → v3 = (s − 2)/ε.
    # d = ((Σg)·v / ‖v‖²) v = c·v, c = (2 + s)/(2 + v3²); wᵀJ = d → w3 = c·v3/ε, w1 = w2 = c − w3.
    # The unit Gramian's smallest eigenvalue (~ε²/3 ≈ 3e-7) lies below float32's pinv cutoff, not float64's.
    eps = 2.0**-10
    gram = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 2.0 + eps**2]], dtype=torch.float32)
    assert gram[2, 2].item() == 2.0 + eps**2
    s = math.sqrt(2 + eps**2)
    v3 = (s - 2) / eps
    c = (2 + s) / (2 + v3**2)
    w3 = c * v3 / eps
    w = config_weights(gram)
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx([c - w3, c - w3, w3], rel=1e-5)
