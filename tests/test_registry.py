"""The strategy registry: registration, option types in words, option parsing and its errors."""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import pytest

from taskweight import weighting
from taskweight.errors import ConfigError
from taskweight.weighting import registry
from taskweight.weighting.equal import EqualWeighting


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (Any, "any value"),
        (float, "a number"),
        (int, "an integer"),
        (str, "a string"),
        (bool, "true or false"),
        (type(None), "nothing (null)"),
        (float | None, "a number or nothing (null)"),
        (Annotated[int, "a note"], "an integer"),
        (Mapping[str, float], "a mapping task: number"),
        (dict[str, int], "a mapping task: integer"),
        (typing.Mapping, "a mapping"),  # the bare alias: no argument types
        (Sequence[float], "a list of numbers"),
        (list[int], "a list of integers"),
        (typing.List, "a list"),  # noqa: UP006  (the bare alias: no argument types)
        (Mapping[str, float] | Sequence[float] | None, "a mapping task: number, a list of numbers or nothing (null)"),
        (complex, "<class 'complex'>"),
    ],
)
def test_option_types_in_words(annotation: Any, words: str) -> None:
    assert registry._type_name(annotation) == words


def test_option_details_name_type_and_default() -> None:
    assert registry.option_details("gradnorm") == [
        ("alpha", "a number", 1.5),
        ("lr", "a number", 0.025),
        ("min_weight", "a number", 0.001),
    ]
    assert registry.option_details("handcrafted")[:2] == [
        ("iterations", "an integer", 10),
        ("reference", "a string or nothing (null)", None),
    ]


def test_a_value_of_the_wrong_type_names_strategy_option_type_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        weighting.get("gradnorm", alpha="steep")
    assert str(info.value) == "strategy 'gradnorm': option 'alpha' expects a number, got 'steep'"
    assert weighting.get("gradnorm", alpha=1).alpha == 1.0  # lax: an integer is a number


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="'equal' is already registered"):
        registry.register("equal", title="Another")(type("Another", (EqualWeighting,), {}))
    assert registry.register("equal", title="No task weighting")(EqualWeighting) is EqualWeighting  # the same class
    assert weighting.strategy_class("equal") is EqualWeighting


def test_unknown_strategy_error_reads_as_its_message() -> None:
    with pytest.raises(registry.UnknownStrategyError) as info:
        weighting.get("nope")
    assert str(info.value).startswith("unknown weighting strategy 'nope'; available: equal, handcrafted, ")
    assert str(registry.UnknownStrategyError()) == ""


@pytest.mark.parametrize(
    ("pair", "value"),
    [
        ("weights=det:1,seg:70", {"det": 1, "seg": 70}),
        ("weights= det : 0.5 , seg : 2 ", {"det": 0.5, "seg": 2}),
        ("weights={det: 1, seg: 3}", {"det": 1, "seg": 3}),  # YAML flow mapping
        ("weights=[1, 3]", [1, 3]),  # YAML list (by the configured task order)
        ("weights=null", None),
    ],
)
def test_method_option_values(pair: str, value: Any) -> None:
    assert weighting.parse_options("static", [pair]) == {"weights": value}


def test_a_value_may_hold_an_equals_sign_and_the_key_is_stripped() -> None:
    assert weighting.parse_options("handcrafted", [" reference =a=b"]) == {"reference": "a=b"}


def test_method_option_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match=r"method option 'weights': expected task:value pairs .* got 'det:1,seg'"):
        weighting.parse_options("static", ["weights=det:1,seg"])
    with pytest.raises(ConfigError, match="cannot parse the value of method option 'weights'"):
        weighting.parse_options("static", ["weights=[1, 2"])
    with pytest.raises(ConfigError, match="strategy 'equal' has no option 'x'; valid options: none"):
        weighting.parse_options("equal", ["x=1"])


def test_per_task_options_as_a_mapping_or_a_list_in_task_order() -> None:
    tasks = ("det", "seg", "depth")
    assert weighting.get("static", tasks=tasks, weights=[1, 3, 4]).current_weights() == {
        "det": 0.125,
        "seg": 0.375,
        "depth": 0.5,
    }
    assert weighting.get("static", tasks=tasks, weights={"depth": 4, "seg": 3, "det": 1}).current_weights() == {
        "det": 0.125,
        "seg": 0.375,
        "depth": 0.5,
    }
    with pytest.raises(ConfigError) as info:
        weighting.get("static", tasks=tasks, weights=[1, 3])
    assert str(info.value) == (
        "strategy 'static': option 'weights': expected 3 values (tasks ['det', 'seg', 'depth']), got [1.0, 3.0]"
    )
    with pytest.raises(ConfigError) as info:
        weighting.get("static", tasks=tasks, weights={"det": 1, "seg": 1, "depth": 1, "normals": 1, "flow": 1})
    assert str(info.value) == (
        "strategy 'static': option 'weights': unknown task(s) ['flow', 'normals']; tasks are ['det', 'seg', 'depth']"
    )
    with pytest.raises(ConfigError, match=r"option 'weights': no value for task\(s\) \['depth'\]"):
        weighting.get("static", tasks=tasks, weights={"det": 1, "seg": 1})
