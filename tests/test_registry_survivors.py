"""The strategy registry's observable behaviour that the older registry tests left open.

The order :func:`available` lists the strategies in (the documented one: the paper's Table II first,
then the rest, as the docs site's navigation shows them), what :func:`register` records on a class,
options a constructor leaves unannotated or constrains through ``Annotated``, the parts of the
unknown-option errors a user acts on (the bad option, the valid ones), and ``task:value`` parsing
of values that hold a colon. Probe strategies are registered into a copy of the registry only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import pydantic
import pytest
import torch
import yaml

from taskweight import weighting
from taskweight.bench.methods import BASELINES, method_title
from taskweight.errors import ConfigError
from taskweight.weighting import LossWeighting, registry

ROOT = Path(__file__).resolve().parent.parent


class _Probe(LossWeighting):
    """A loss weighting whose options exercise the registry: unannotated, constrained, plain."""

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        anything=None,  # deliberately unannotated
        bound: Annotated[float, pydantic.Field(gt=0)] = 1.0,
        flag: bool = False,
    ) -> None:
        super().__init__(tasks)
        self.anything, self.bound, self.flag = anything, bound, flag

    def weights(self, losses: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t: self.constant(losses[t], 1.0) for t in losses}

    def current_weights(self) -> dict[str, float]:
        return dict.fromkeys(self.tasks, 1.0)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> type[_Probe]:
    """``_Probe`` registered as ``probe`` (title "Probe weighting") in a copy of the registry."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    cls = type("Probe", (_Probe,), {})
    return registry.register("probe", title="Probe weighting")(cls)


def _strategy_pages_in_nav() -> list[str]:
    """The strategy names of the docs site's navigation, in its order."""
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    section = next(entry["Strategies"] for entry in nav if isinstance(entry, dict) and "Strategies" in entry)
    return [next(iter(entry)) for entry in section]


# ------------------------------------------------------------------ available(): the documented order
def test_available_starts_with_the_papers_table_ii_baselines_in_its_order() -> None:
    # the seven single-network columns of Table II, as bench.methods records them for the report
    assert tuple(weighting.available()[: len(BASELINES)]) == BASELINES


def test_available_lists_the_strategies_in_the_order_the_docs_site_shows_them() -> None:
    # mkdocs.yml's "Strategies" section is the hand-kept reading order: Table II, static, async,
    # PCGrad and MGDA, then the field's methods. Every registered strategy must keep that place.
    assert weighting.available() == _strategy_pages_in_nav()


def test_strategies_outside_the_documented_order_come_last_sorted_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    documented = weighting.available()
    registry.register("zz_probe", title="Z")(type("ZProbe", (_Probe,), {}))
    registry.register("aa_probe", title="A")(type("AProbe", (_Probe,), {}))
    assert weighting.available() == [*documented, "aa_probe", "zz_probe"]


# ------------------------------------------------------------------ register(): name and title on the class
def test_register_records_the_name_and_the_title_on_the_class(probe: type[_Probe]) -> None:
    assert (probe.name, probe.title) == ("probe", "Probe weighting")
    built = weighting.get("probe", tasks=("det", "seg"))
    assert type(built) is probe and built.name == "probe"
    assert method_title("probe") == "Probe weighting"  # the benchmark tables' column title


def test_every_registered_class_carries_its_registry_name() -> None:
    assert all(weighting.strategy_class(n).name == n for n in weighting.available())


# ------------------------------------------------------------------ option types
def test_an_unannotated_option_accepts_any_value(probe: type[_Probe]) -> None:
    assert registry.option_details("probe")[0] == ("anything", "any value", None)
    value = [1, "two", {"three": 3}]
    assert registry.validate_options("probe", {"anything": value}) == {"anything": value}
    assert weighting.get("probe", anything=value).anything == value


def test_a_constraint_in_an_annotated_option_type_is_enforced(probe: type[_Probe]) -> None:
    # bound: Annotated[float, Field(gt=0)]: described by its base type, refused at 0 and -1, 0.5 passes
    assert registry.option_details("probe")[1] == ("bound", "a number", 1.0)
    for bad in (0, -1):
        with pytest.raises(ConfigError) as info:
            registry.validate_options("probe", {"bound": bad})
        message = str(info.value)
        assert "'probe'" in message and "'bound'" in message and f"got {bad}" in message
    assert weighting.get("probe", bound=0.5).bound == 0.5


# ------------------------------------------------------------------ unknown options: what the error names
def _listed(message: str, after: str, before: str | None = None) -> list[str]:
    """The comma-separated names in ``message`` between ``after`` and ``before`` (or the end)."""
    text = message.split(after, 1)[1]
    return (text.split(before, 1)[0] if before else text).split(", ")


def test_validate_options_names_every_unknown_option_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        registry.validate_options("gradnorm", {"zeta": 1, "beta": 2, "alpha": 1.0})
    message = str(info.value)
    assert "'gradnorm'" in message
    assert _listed(message, "no option(s) ", ";") == ["beta", "zeta"]  # both unknown, sorted
    assert _listed(message, "valid options: ") == ["alpha", "lr", "min_weight"]


def test_an_option_given_to_a_strategy_without_options_says_there_are_none() -> None:
    with pytest.raises(ConfigError) as info:
        registry.validate_options("equal", {"alpha": 1})
    assert str(info.value).endswith("valid options: none")


def test_parse_options_names_the_unknown_option_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        weighting.parse_options("gradnorm", ["alpha=1", "beta=2"])
    message = str(info.value)
    assert "'beta'" in message
    assert _listed(message, "valid options: ") == registry.option_names("gradnorm") == ["alpha", "lr", "min_weight"]


# ------------------------------------------------------------------ values holding a colon
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("det:a:b", {"det": "a:b"}),  # the first colon separates task and value; the value keeps its own
        ("det:x:1,seg:y", {"det": "x:1", "seg": "y"}),
        ("[a:b, c]", ["a:b", "c"]),  # a YAML list stays a list though its items hold colons
        ("[{det: 1}, {seg: 2}]", [{"det": 1}, {"seg": 2}]),
        ("{det: 1, seg: 2}", {"det": 1, "seg": 2}),
    ],
)
def test_values_with_colons(text: str, value: object) -> None:
    assert registry._parse_value(text) == value
