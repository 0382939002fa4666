"""tools/mutation_report.py: the per-module score and the survivors' diffs, on a hand-made mutmut folder."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "mutation_report.py"

MUTATED_SOURCE = """
def x_f__mutmut_orig(a, b=1):
    return a + b


def x_f__mutmut_1(a, b=1):
    return a - b


def x_f__mutmut_2(a, b=2):
    return a + b
"""


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("mutation_report", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _meta(root: Path, module: str, codes: dict[str, int | None], source: str = "") -> None:
    path = root / "src" / Path(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    Path(f"{path}.meta").write_text(json.dumps({"exit_code_by_key": codes}))


def test_scores_count_each_outcome_per_module(tool, tmp_path: Path) -> None:
    _meta(
        tmp_path,
        "pkg.alpha",
        {"pkg.alpha.x_f__mutmut_1": 0, "pkg.alpha.x_f__mutmut_2": 1, "pkg.alpha.x_g__mutmut_1": 3,
         "pkg.alpha.x_g__mutmut_2": -24, "pkg.alpha.x_h__mutmut_1": 33, "pkg.alpha.x_h__mutmut_2": None},
        MUTATED_SOURCE,
    )  # fmt: skip
    _meta(tmp_path, "pkg.beta", {"pkg.beta.x_k__mutmut_1": 1})
    scores, survivors = tool.read_scores(tmp_path)
    alpha, beta = scores
    assert alpha.module == "pkg.alpha" and beta.module == "pkg.beta"
    assert dict(alpha.counts) == {"survived": 1, "killed": 2, "timeout": 1, "no tests": 1, "not run": 1}
    assert alpha.run == 5 and alpha.score == pytest.approx(3 / 5)  # (2 killed + 1 timeout) / 5 run
    assert beta.score == 1.0
    assert [name for name, _ in survivors] == ["pkg.alpha.x_f__mutmut_1"]
    table = tool.render(scores, survivors, limit=10)
    assert "| pkg.alpha | 6 | 2 | 1 | 1 | 1 | 1 | 60.0% |" in table
    assert "| **all** | 7 | 3 | 1 | 1 | 1 | 1 | 66.7% |" in table  # 4 of 6 run


def test_a_survivor_is_shown_as_its_changed_lines(tool, tmp_path: Path) -> None:
    _meta(tmp_path, "pkg.alpha", {"pkg.alpha.x_f__mutmut_1": 0, "pkg.alpha.x_f__mutmut_2": 0}, MUTATED_SOURCE)
    meta = tmp_path / "src" / "pkg" / "alpha.py.meta"
    assert tool.mutant_diff("pkg.alpha.x_f__mutmut_1", meta) == "- return a + b / + return a - b"
    assert tool.mutant_diff("pkg.alpha.x_f__mutmut_2", meta) == "- def f(a, b=1): / + def f(a, b=2):"


def test_no_mutmut_folder_is_an_error_naming_it(tool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["--mutants", str(tmp_path / "none")]) == 1
    assert f"{tmp_path / 'none'}: no mutmut results here" in capsys.readouterr().err
