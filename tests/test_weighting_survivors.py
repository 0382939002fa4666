"""Epoch statistics, older checkpoints and devices: behaviour the older strategy tests left open (surviving
mutants of ``weighting.dwa``, ``dynamic_scaling``, ``handcrafted``, ``graddrop``, ``aligned_mtl``, ``rlw``,
``stch`` and ``moco``).

- DWA and dynamic scaling keep the running *sums* and *counts* of the epoch's losses in their state
  (positive sums, one count per labelled step), so a checkpoint written by hand or by another run
  resumes the epoch's means; DWA's ``history`` buffer holds the mean losses of the last two epochs.
- A checkpoint that lacks a strategy's own keys (an older one: only ``step_count``/``epoch_count``)
  leaves the running sums, counts, epoch counter and weights as they were (DWA, dynamic scaling,
  handcrafted).
- GradDrop, Aligned-MTL, RLW, DWA, STCH and MoCo keep every tensor on the device of their inputs (or of
  the strategy): checked on the ``meta`` device, which refuses any operation that mixes in a CPU tensor.
"""

from __future__ import annotations

import math

import pytest
import torch

from strategy_helpers import F64, aggregate, constant_step
from taskweight import weighting
from taskweight.weighting.aligned_mtl import SCALE_MODES, aligned_mtl_weights
from taskweight.weighting.graddrop import graddrop_combine

META = torch.device("meta")
OLDER_CHECKPOINT = {"step_count": 3, "epoch_count": 1}  # the base's counters only, no strategy keys


# ------------------------------------------------------------------ DWA
def test_dwa_state_holds_the_running_sums_and_counts_and_history_the_epoch_means() -> None:
    s = weighting.get("dwa")
    constant_step(s, det=2.0, seg=1.0)
    constant_step(s, det=4.0, seg=3.0)
    # sums 2 + 4 = 6 and 1 + 3 = 4 over two labelled steps each
    assert s.state_dict()["loss_sums"].tolist() == [6.0, 4.0]
    assert s.get_extra_state()["counts"] == [2, 2]
    s.on_epoch_end()
    # epoch means (6/2, 4/2) = (3, 2) become the newest history row; the older one is still unknown
    assert s.history[1].tolist() == [3.0, 2.0]
    assert all(math.isnan(v) for v in s.history[0].tolist())
    assert s.get_extra_state()["epochs_seen"] == 1
    assert s.state_dict()["loss_sums"].tolist() == [0.0, 0.0] and s.counts == [0, 0]


def test_dwa_resumes_an_epoch_from_saved_sums_and_counts() -> None:
    s = weighting.get("dwa")
    state = s.state_dict()
    state["loss_sums"] = torch.tensor([4.0, 2.0])  # two steps already seen this epoch: (1 + 3, 0.5 + 1.5)
    state["history"] = torch.tensor([[math.nan, math.nan], [2.0, 1.0]])  # epoch e−1's means
    state["_extra_state"] = {"step_count": 2, "epoch_count": 1, "counts": [2, 2], "epochs_seen": 1}
    s.load_state_dict(state)
    constant_step(s, det=2.0, seg=2.5)
    s.on_epoch_end()
    # means (4 + 2)/3 = 2 and (2 + 2.5)/3 = 1.5 → r = (2/2, 1.5/1) = (1, 1.5); w = 2·softmax(r/2)
    w_det = 2 * math.exp(0.5) / (math.exp(0.5) + math.exp(0.75))
    assert s.history.tolist() == [[2.0, 1.0], [2.0, 1.5]]
    assert s.current_weights() == pytest.approx({"det": w_det, "seg": 2 - w_det}, rel=1e-6)


def test_dwa_older_checkpoint_keeps_counts_and_epochs_seen() -> None:
    s = weighting.get("dwa")
    constant_step(s, det=2.0, seg=1.0)
    s.on_epoch_end()  # epoch 1: means (2, 1)
    constant_step(s, det=3.0, seg=2.0)
    s.set_extra_state(dict(OLDER_CHECKPOINT))
    assert s.counts == [1, 1] and s.epochs_seen == 1 and s.step_count == 3
    s.on_epoch_end()  # epoch 2: means (3, 2), the second epoch seen → r = (3/2, 2/1), w = 2·softmax(r/2)
    w_det = 2 * math.exp(0.75) / (math.exp(0.75) + math.exp(1.0))
    assert s.current_weights() == pytest.approx({"det": w_det, "seg": 2 - w_det}, rel=1e-6)


# ------------------------------------------------------------------ dynamic scaling
def test_dynamic_scaling_state_holds_the_running_sums_and_counts() -> None:
    s = weighting.get("dynamic_scaling")
    constant_step(s, det=2.0, seg=1.0)
    constant_step(s, det=4.0, seg=3.0)
    state = s.get_extra_state()
    assert state["sums"] == {"det": 6.0, "seg": 4.0} and state["counts"] == {"det": 2, "seg": 2}
    s.on_epoch_end()
    assert s.current_weights() == {"det": 1.0, "seg": 1.5}  # means 3 and 2 → w_seg = 3/2


def test_dynamic_scaling_resumes_an_epoch_from_saved_sums_and_counts() -> None:
    s = weighting.get("dynamic_scaling")
    s.set_extra_state(
        {
            "step_count": 2,
            "epoch_count": 0,
            "weights": {"det": 1.0, "seg": 1.0},
            "sums": {"det": 6.0, "seg": 4.0},
            "counts": {"det": 2, "seg": 2},
        }
    )
    assert constant_step(s, det=1.0, seg=2.0) == {"det": 1.0, "seg": 1.0}
    s.on_epoch_end()
    # means over the three steps: det (6 + 1)/3 = 7/3, seg (4 + 2)/3 = 2 → w_seg = 7/6
    assert s.current_weights() == pytest.approx({"det": 1.0, "seg": 7 / 6}, rel=1e-12)


def test_dynamic_scaling_older_checkpoint_keeps_weights_sums_and_counts() -> None:
    s = weighting.get("dynamic_scaling")
    constant_step(s, det=3.0, seg=2.0)
    s.on_epoch_end()  # w_seg = 3/2
    constant_step(s, det=5.0, seg=1.0)
    s.set_extra_state(dict(OLDER_CHECKPOINT))
    assert s.current_weights() == {"det": 1.0, "seg": 1.5}
    assert s.get_extra_state()["sums"] == {"det": 5.0, "seg": 1.0} and s.counts == {"det": 1, "seg": 1}
    s.on_epoch_end()
    assert s.current_weights() == {"det": 1.0, "seg": 5.0}  # means 5 and 1


# ------------------------------------------------------------------ handcrafted
def test_handcrafted_older_checkpoint_keeps_the_window_being_measured() -> None:
    s = weighting.get("handcrafted", iterations=2)
    constant_step(s, det=4.0, seg=1.0)
    s.set_extra_state(dict(OLDER_CHECKPOINT))
    assert s.initial_losses == {"det": 4.0, "seg": 1.0} and s.current_weights() == {"det": 1.0, "seg": 1.0}
    constant_step(s, det=2.0, seg=0.5)
    # L(0) = ((4 + 2)/2, (1 + 0.5)/2) = (3, 0.75) → w_seg = 3/0.75 = 4
    assert s.current_weights() == {"det": 1.0, "seg": 4.0}


def test_handcrafted_older_checkpoint_keeps_given_weights() -> None:
    s = weighting.get("handcrafted", weights={"det": 1.0, "seg": 40.0})
    s.set_extra_state(dict(OLDER_CHECKPOINT))
    assert s.current_weights() == {"det": 1.0, "seg": 40.0}
    assert constant_step(s, det=2.0, seg=0.5) == {"det": 1.0, "seg": 40.0}


# ------------------------------------------------------------------ devices (meta)
def on_meta(*shape: int) -> torch.Tensor:
    return torch.ones(shape, dtype=F64).to(META)


def test_graddrop_combine_stays_on_the_jacobians_device() -> None:
    direction, shares = graddrop_combine(on_meta(2, 3), on_meta(3))  # the default leak (0) too
    assert (direction.device, direction.shape, shares.device, shares.shape) == (META, (3,), META, (2,))


def test_graddrop_aggregation_draws_on_the_host_and_combines_on_the_jacobians_device() -> None:
    s = weighting.get("graddrop", leak=0.25)
    direction, shares = aggregate(s, on_meta(2, 3), on_meta(2))
    assert (direction.device, direction.dtype, shares.device) == (META, F64, META)


@pytest.mark.parametrize("scale_mode", SCALE_MODES)
def test_aligned_mtl_weights_stay_on_the_gramians_device(scale_mode: str) -> None:
    w = aligned_mtl_weights(on_meta(3, 3), scale_mode)
    assert (w.device, w.dtype, w.shape) == (META, F64, (3,))


def test_rlw_weights_are_on_the_losses_device() -> None:
    s = weighting.get("rlw")
    used = s.weights({"det": on_meta(), "seg": on_meta()})
    assert {t: (w.device, w.dtype) for t, w in used.items()} == {"det": (META, F64), "seg": (META, F64)}


@pytest.mark.parametrize("name", ["dwa", "stch"])
def test_epoch_means_stay_on_the_strategys_device(name: str) -> None:
    s = weighting.get(name).to(META)
    s.weights({"det": on_meta(), "seg": on_meta()})
    s.on_epoch_end()
    assert s.epoch_count == 1
    means = s.history[1] if name == "dwa" else s.nadir
    assert means.device == META


def test_moco_step_stays_on_the_strategys_device() -> None:
    s = weighting.get("moco").to(META)
    direction, weights = aggregate(s, on_meta(2, 3), on_meta(2))
    assert (direction.device, weights.device) == (META, META)


# ------------------------------------------------------------------ GradNorm
def test_gradnorm_first_step_ratios_are_exactly_one_for_float64_losses() -> None:
    """L_τ(0) is the loss of the first step, so there r_τ = L_τ(t)/L_τ(0) = 1 exactly: with equal gradient
    norms every G_τ equals its target Ḡ·1^α, ∂L_grad/∂w = 0 and Adam leaves the weights at 1. The det loss
    1 + 1.1·2⁻²⁴ (float64) is stored as 1 + 2⁻²³ in the float32 buffer; the ratio must use that same value."""
    s = weighting.get("gradnorm")  # float32 weights and L(0)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    c_det = 1 + 1.1 * 2.0**-24
    used = s.backward({"det": x[0] + c_det, "seg": x[1] + 1.0}, [x], [x])  # ∇_x L_det = (1, 0), ∇_x L_seg = (0, 1)
    assert s.initial_losses.tolist() == [1 + 2.0**-23, 1.0]
    assert {t: float(w) for t, w in used.items()} == {"det": 1.0, "seg": 1.0}
    assert float(s.last_grad_loss) == 0.0
    assert s.current_weights() == {"det": 1.0, "seg": 1.0}
