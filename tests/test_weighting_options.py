"""Option validation of the loss weightings: every refusal names its option, boundaries and defaults.

Each ``raise ValueError`` of handcrafted, dynamic_scaling, async, static, dwa and weight_learning is
reached through ``weighting.get`` (which prefixes ``strategy 'name': ``); each range is checked on
both sides of its boundary, and the defaults are observed through the weights they produce.
"""

from __future__ import annotations

import math

import pytest

from strategy_helpers import constant_step
from taskweight import weighting
from taskweight.errors import ConfigError
from taskweight.weighting.asynchronous import AsyncWeighting
from taskweight.weighting.static import normalised_weights


# ------------------------------------------------------------------ handcrafted
def test_handcrafted_iterations_below_one_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match=r"^strategy 'handcrafted': option 'iterations' must be >= 1, got 0$"):
        weighting.get("handcrafted", iterations=0)


def test_handcrafted_iterations_one_is_accepted_and_measures_a_single_step():
    s = weighting.get("handcrafted", iterations=1)
    # step 1 is measured with equal weights; L(0) = (det 6, seg 0.5) → w_seg = 6 / 0.5 = 12 from step 2 on
    assert constant_step(s, det=6.0, seg=0.5) == {"det": 1.0, "seg": 1.0}
    assert s.current_weights() == {"det": 1.0, "seg": 12.0}
    assert constant_step(s, det=100.0, seg=100.0) == {"det": 1.0, "seg": 12.0}


def test_handcrafted_default_window_is_ten_steps():
    s = weighting.get("handcrafted")
    for _ in range(9):
        assert constant_step(s, det=4.0, seg=0.5) == {"det": 1.0, "seg": 1.0}
    assert s.current_weights() == {"det": 1.0, "seg": 1.0}  # 9 < 10 steps measured
    constant_step(s, det=4.0, seg=0.5)
    assert s.current_weights() == {"det": 1.0, "seg": 8.0}  # the 10th step closes the window: 4 / 0.5
    assert constant_step(s, det=1.0, seg=1.0) == {"det": 1.0, "seg": 8.0}


def test_handcrafted_reference_option_picks_the_task_of_weight_one():
    s = weighting.get("handcrafted", iterations=1, reference="seg")
    constant_step(s, det=4.0, seg=0.5)
    # w_τ = L_seg(0) / L_τ(0): det 0.5 / 4 = 0.125, seg 1
    assert s.current_weights() == {"det": 0.125, "seg": 1.0}


def test_handcrafted_unknown_reference_is_refused_naming_the_tasks():
    with pytest.raises(
        ValueError,
        match=r"^strategy 'handcrafted': option 'reference': unknown task 'depth'; tasks are \['det', 'seg'\]$",
    ):
        weighting.get("handcrafted", reference="depth")


def test_handcrafted_given_weights_are_checked_under_the_option_name():
    with pytest.raises(ValueError, match=r"option 'weights': no value for task\(s\) \['seg'\]"):
        weighting.get("handcrafted", weights={"det": 1.0})
    with pytest.raises(ValueError, match=r"option 'weights': expected 2 values"):
        weighting.get("handcrafted", weights=[1.0])


# ------------------------------------------------------------------ dynamic scaling
def test_dynamic_scaling_reference_option_picks_the_task_of_weight_one():
    s = weighting.get("dynamic_scaling", reference="seg")
    constant_step(s, det=4.0, seg=0.5)
    s.on_epoch_end()
    # w_τ = mean L_seg / mean L_τ: det 0.5 / 4 = 0.125
    assert s.current_weights() == {"det": 0.125, "seg": 1.0}


def test_dynamic_scaling_unknown_reference_is_refused_naming_the_tasks():
    with pytest.raises(
        ValueError,
        match=r"^strategy 'dynamic_scaling': option 'reference': unknown task 'depth'; tasks are \['det', 'seg'\]$",
    ):
        weighting.get("dynamic_scaling", reference="depth")


# ------------------------------------------------------------------ async
def test_async_unknown_unit_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match=r"^strategy 'async': option 'unit' must be 'step' or 'epoch', got 'batch'$"):
        weighting.get("async", unit="batch")


def test_async_negative_offset_is_refused_and_zero_accepted():
    with pytest.raises(ConfigError, match=r"^strategy 'async': option 'offset' must be an integer >= 0, got -1$"):
        weighting.get("async", offset=-1)
    s = weighting.get("async", offset=0, frequencies={"det": 1, "seg": 2})
    assert s.clock == 0
    assert constant_step(s, det=1.0, seg=1.0) == {"det": 0.5, "seg": 0.5}  # t = 0: 0 mod 2 = 0


def test_async_fractional_offset_is_refused_by_the_constructor():
    with pytest.raises(ValueError, match=r"^option 'offset' must be an integer >= 0, got 1\.5$"):
        AsyncWeighting(("det", "seg"), offset=1.5)


def test_async_offset_one_starts_the_clock_at_one():
    s = weighting.get("async", offset=1, frequencies={"det": 1, "seg": 2})
    # t = 1, 2, 3: seg is due when t mod 2 = 0 only
    assert [constant_step(s, det=1.0, seg=1.0)["seg"] for _ in range(3)] == [0.0, 0.5, 0.0]


def test_async_frequency_boundaries():
    with pytest.raises(ConfigError, match=r"option 'frequencies': 'seg' must be an integer >= 1, got 0"):
        weighting.get("async", frequencies={"det": 1, "seg": 0})
    with pytest.raises(ValueError, match=r"^option 'frequencies': 'det' must be an integer >= 1, got 1\.5$"):
        AsyncWeighting(("det", "seg"), frequencies={"det": 1.5, "seg": 1})
    with pytest.raises(ValueError, match=r"option 'frequencies': expected 2 values"):
        weighting.get("async", frequencies=[1])
    with pytest.raises(ValueError, match=r"option 'frequencies': unknown task\(s\) \['depth'\]"):
        weighting.get("async", frequencies={"det": 1, "seg": 1, "depth": 1})


def test_async_default_frequency_is_every_step():
    s = weighting.get("async")
    # ν = 1 for both tasks: w̄ = (½, ½) on every step t = 0, 1, 2
    assert [constant_step(s, det=1.0, seg=2.0) for _ in range(3)] == [{"det": 0.5, "seg": 0.5}] * 3


def test_async_weights_are_checked_under_the_option_name():
    with pytest.raises(ValueError, match=r"option 'weights': no value for task\(s\) \['seg'\]"):
        weighting.get("async", weights={"det": 1.0})
    with pytest.raises(ValueError, match=r"option 'weights': task weights must not all be 0"):
        weighting.get("async", weights={"det": 0.0, "seg": 0.0})


# ------------------------------------------------------------------ static (normalised weights)
def test_static_zero_weight_is_accepted():
    s = weighting.get("static", weights={"det": 0.0, "seg": 2.0})
    assert s.current_weights() == {"det": 0.0, "seg": 1.0}  # 0/2, 2/2


def test_static_fractional_weights_and_a_total_below_one_are_accepted():
    # w' = (0.25, 0.5), Σ = 0.75: w̄ = (1/3, 2/3)
    assert weighting.get("static", weights={"det": 0.25, "seg": 0.5}).current_weights() == pytest.approx(
        {"det": 1 / 3, "seg": 2 / 3}
    )
    # Σ = 1 exactly: unchanged
    assert weighting.get("static", weights=[0.5, 0.5]).current_weights() == {"det": 0.5, "seg": 0.5}
    assert normalised_weights({"a": 0.1, "b": 0.3}) == pytest.approx({"a": 0.25, "b": 0.75})


def test_static_default_is_equal_weights():
    assert weighting.get("static", tasks=("a", "b", "c", "d")).current_weights() == {t: 0.25 for t in "abcd"}


@pytest.mark.parametrize("bad", [-1.0, -1e-9, math.nan, math.inf])
def test_static_negative_nan_or_infinite_weight_is_refused_naming_the_task(bad):
    message = r"^strategy 'static': option 'weights': task weight for 'det' must be a finite number >= 0"
    with pytest.raises(ConfigError, match=message):
        weighting.get("static", weights={"det": bad, "seg": 1.0})


def test_static_all_zero_weights_are_refused():
    with pytest.raises(
        ConfigError,
        match=r"^strategy 'static': option 'weights': task weights must not all be 0: \{'det': 0\.0, 'seg': 0\.0\}$",
    ):
        weighting.get("static", weights={"det": 0, "seg": 0})
    with pytest.raises(ValueError, match=r"^option 'weights': task weights must not all be 0: \{'a': 0\.0\}$"):
        normalised_weights({"a": 0.0})


def test_static_weights_are_checked_under_the_option_name():
    with pytest.raises(ValueError, match=r"^strategy 'static': option 'weights': no value for task\(s\) \['seg'\]$"):
        weighting.get("static", weights={"det": 1.0})
    with pytest.raises(ValueError, match=r"^strategy 'static': option 'weights': unknown task\(s\) \['depth'\]"):
        weighting.get("static", weights={"det": 1.0, "seg": 1.0, "depth": 1.0})
    with pytest.raises(ValueError, match=r"^strategy 'static': option 'weights': expected 2 values"):
        weighting.get("static", weights=[1.0, 2.0, 3.0])


# ------------------------------------------------------------------ DWA
def test_dwa_temperature_must_be_positive():
    with pytest.raises(ConfigError, match=r"^strategy 'dwa': option 'temperature' must be > 0, got 0"):
        weighting.get("dwa", temperature=0)
    with pytest.raises(ConfigError, match=r"option 'temperature' must be > 0, got -1"):
        weighting.get("dwa", temperature=-1.0)


def test_dwa_temperature_below_one_is_accepted_and_used():
    s = weighting.get("dwa", temperature=0.5)
    constant_step(s, det=2.0, seg=4.0)
    s.on_epoch_end()
    constant_step(s, det=1.0, seg=4.0)
    s.on_epoch_end()
    # r = (1/2, 4/4) = (0.5, 1); w = 2·softmax(r / 0.5) = 2·softmax(1, 2) = (2/(1+e), 2e/(1+e))
    e = math.e
    assert s.current_weights() == pytest.approx({"det": 2 / (1 + e), "seg": 2 * e / (1 + e)})


# ------------------------------------------------------------------ weight learning
def test_weight_learning_needs_two_tasks():
    with pytest.raises(ConfigError, match=r"^strategy 'weight_learning': weight_learning needs at least two tasks$"):
        weighting.get("weight_learning", tasks=("det",))


@pytest.mark.parametrize("init", [0.0, 1.0, 1.5, -0.5])
def test_weight_learning_init_outside_the_open_unit_interval_is_refused(init):
    with pytest.raises(
        ConfigError, match=r"^strategy 'weight_learning': option 'init' \(initial α\) must lie in \(0, 1\), got "
    ):
        weighting.get("weight_learning", init=init)


@pytest.mark.parametrize("init", [0.25, 0.75, 1e-3])
def test_weight_learning_init_inside_the_interval_sets_alpha(init):
    # α = sigmoid(log(init / (1 − init))) = init goes to the second task, 1 − α to the first
    w = weighting.get("weight_learning", init=init).current_weights()
    assert w == pytest.approx({"det": 1 - init, "seg": init})
