"""Loss weightings and the simplex projection: behaviour the older strategy tests left open (surviving
mutants of ``weighting.equal``, ``weighting.imtl_l``, ``weighting.uncertainty`` and ``weighting.simplex``).

- Equal weighting reports w_τ = 1 (§IV-A1).
- IMTL-L starts from s_τ = 0 (w_τ = e⁰ = 1), accepts an initial log-scale in the closed interval [-20, 20]
  its error names, and returns weights in the losses' dtype.
- Uncertainty weighting starts from s_τ = log σ_τ² = 0, names the bad option in its errors, uses L/(2σ²)
  for every task type in the ``positive`` form, evaluates ½e^{−s}L + ½s with its own weights or with
  weights it is given, and returns weights in the losses' dtype.
- Π_Δ(v) stays on ``v``'s device (checked on the ``meta`` device, which refuses any CPU operand).
"""

from __future__ import annotations

import math

import pytest
import torch

from strategy_helpers import F64, constant_step, numbers
from taskweight import weighting
from taskweight.weighting.simplex import project_onto_simplex


def float64_losses(**values: float) -> dict[str, torch.Tensor]:
    return {t: torch.tensor(v, dtype=F64, requires_grad=True) for t, v in values.items()}


# ------------------------------------------------------------------ equal
def test_equal_weighting_reports_and_uses_weight_one_for_every_task() -> None:
    s = weighting.get("equal", tasks=("det", "seg", "depth"))
    assert s.current_weights() == {"det": 1.0, "seg": 1.0, "depth": 1.0}
    assert constant_step(s, det=3.0, seg=0.5) == {"det": 1.0, "seg": 1.0}
    assert s.current_weights() == {"det": 1.0, "seg": 1.0, "depth": 1.0}


# ------------------------------------------------------------------ IMTL-L
def test_imtl_l_starts_from_zero_log_scales_so_every_weight_is_one() -> None:
    s = weighting.get("imtl_l")
    assert s.current_weights() == {"det": 1.0, "seg": 1.0}  # e^0
    x = torch.zeros(1, dtype=F64, requires_grad=True)
    used = numbers(s.backward({"det": x.sum() + 4.0, "seg": 3 * x.sum() + 0.5}))
    assert used == {"det": 1.0, "seg": 1.0}
    # ∂/∂s (e^s L − s) at s = 0: L − 1
    assert s.scales.grad.tolist() == pytest.approx([4.0 - 1.0, 0.5 - 1.0])


@pytest.mark.parametrize("init", [-20.0, 20.0, 19.5, -19.5])
def test_imtl_l_accepts_an_initial_log_scale_on_the_closed_interval(init: float) -> None:
    weights = weighting.get("imtl_l", init=init).current_weights()
    assert weights == pytest.approx({"det": math.exp(init), "seg": math.exp(init)}, rel=1e-6)


@pytest.mark.parametrize("init", [-20.5, 20.5, -21.0, 21.0])
def test_imtl_l_rejects_an_initial_log_scale_outside_minus_20_to_20(init: float) -> None:
    with pytest.raises(ValueError, match=r"must lie in \[-20, 20\]"):
        weighting.get("imtl_l", init=init)


# ------------------------------------------------------------------ uncertainty
def test_uncertainty_starts_from_unit_variances() -> None:
    s = weighting.get("uncertainty")
    assert s.variances() == {"det": 1.0, "seg": 1.0}  # σ² = e^0
    assert s.current_weights() == {"det": 0.5, "seg": 0.5}  # regression form ½e^{−0}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"form": "nope"}, r"option 'form' must be one of .*'nope'"),
        ({"task_types": {"depth": "regression"}}, r"option 'task_types': unknown task\(s\) \['depth'\]"),
        ({"task_types": {"det": "regression", "lane": "x"}}, r"unknown task\(s\) \['lane'\]"),
        ({"task_types": {"seg": "ordinal"}}, r"option 'task_types': 'seg' must be one of .*'ordinal'"),
    ],
)
def test_uncertainty_errors_name_the_bad_option_and_value(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        weighting.get("uncertainty", **options)


def test_uncertainty_positive_form_halves_the_weight_of_classification_tasks_too() -> None:
    """form="positive": L/(2σ²) whatever the task type; σ² = 2 → w = ¼ (Kendall's classification form
    would give e^{−s} = ½)."""
    types = {"det": "classification", "seg": "regression"}
    positive = weighting.get("uncertainty", form="positive", task_types=types, init=math.log(2.0))
    kendall = weighting.get("uncertainty", form="kendall", task_types=types, init=math.log(2.0))
    assert positive.current_weights() == pytest.approx({"det": 0.25, "seg": 0.25})
    assert kendall.current_weights() == pytest.approx({"det": 0.5, "seg": 0.25})


def test_uncertainty_objective_uses_its_own_weights_or_the_weights_given() -> None:
    """σ² = 2 (s = log 2), L = (4, 1): own weights ½e^{−s} = ¼ → ¼·4 + ¼·1 + 2·½ log 2;
    given weights (1, 2) → 1·4 + 2·1 + 2·½ log 2."""
    s = weighting.get("uncertainty", init=math.log(2.0))
    losses = {"det": torch.tensor(4.0), "seg": torch.tensor(1.0)}
    assert s.objective(losses).item() == pytest.approx(1.25 + math.log(2.0), rel=1e-6)
    given = {"det": torch.tensor(1.0), "seg": torch.tensor(2.0)}
    assert s.objective(losses, given).item() == pytest.approx(6.0 + math.log(2.0), rel=1e-6)


@pytest.mark.parametrize(("name", "expected"), [("uncertainty", 0.5), ("imtl_l", 1.0)])
def test_learned_weights_take_the_dtype_of_float64_losses(name: str, expected: float) -> None:
    """Parameters stay float32; the weights follow the losses (½e^0 for uncertainty, e^0 for IMTL-L)."""
    used = weighting.get(name).backward(float64_losses(det=2.0, seg=1.0))
    assert {t: w.dtype for t, w in used.items()} == {"det": F64, "seg": F64}
    assert numbers(used) == {"det": expected, "seg": expected}


# ------------------------------------------------------------------ simplex
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_simplex_projection_stays_on_the_device_of_its_input(dtype: torch.dtype) -> None:
    """The meta device fails any operation that mixes in a CPU tensor, so this checks every intermediate."""
    v = torch.tensor([0.3, 0.2, -1.0], dtype=dtype).to("meta")
    projected = project_onto_simplex(v)
    assert (projected.device.type, projected.dtype, projected.shape) == ("meta", dtype, v.shape)
