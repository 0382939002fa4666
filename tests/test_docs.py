"""The documentation site covers what the code has: a page for every strategy, every nav entry exists."""

from __future__ import annotations

from pathlib import Path

import yaml

from taskweight import weighting

ROOT = Path(__file__).resolve().parent.parent


def _nav_pages(entries: list) -> list[str]:
    pages: list[str] = []
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_every_registered_strategy_has_a_page_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert sorted(p for p in pages if p.startswith("strategies/")) == sorted(
        f"strategies/{name}.md" for name in weighting.available()
    )


def test_every_hand_written_page_in_the_nav_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    generated = {"cli.md"} | {p for p in _nav_pages(config["nav"]) if p.startswith("strategies/")}
    missing = [p for p in _nav_pages(config["nav"]) if p not in generated and not (ROOT / "docs" / p).is_file()]
    assert not missing


def test_generated_strategy_page_states_options_and_formula(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_pages", ROOT / "docs" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    caption, rows = module.overhead_rows()
    page = module.strategy_page("gradnorm", caption, rows)
    assert "| `alpha` | a number | `1.5` |" in page and "L_grad" in page
    assert "::: taskweight.weighting.gradnorm.GradNormWeighting" in page
