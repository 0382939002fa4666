"""Generate the documentation pages that come from the code (run by `make docs` before `mkdocs build`).

- ``docs/cli.md``: every command and option, from the typer app (``typer ... utils docs``);
- ``docs/strategies/<name>.md``: one page per registered weighting strategy — its rule and
  source (the module docstring), its options with types and defaults (the constructor's
  signature, the same one ``--method-opt`` is validated against), its measured step overhead
  (``benchmarks/results/step_overhead_cpu.md``) and its API reference (mkdocstrings).

The generated files are not committed (``.gitignore``); ``tests/test_docs.py`` checks that
``mkdocs.yml`` lists a page for every registered strategy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OVERHEAD = ROOT / "benchmarks" / "results" / "step_overhead_cpu.md"


def overhead_rows() -> tuple[str, dict[str, str]]:
    """The caption and the table rows of the measured step overhead, by strategy name."""
    if not OVERHEAD.is_file():
        return "", {}
    lines = OVERHEAD.read_text().splitlines()
    caption = lines[0] if lines else ""
    header = next((line for line in lines if line.startswith("| method")), "")
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ") and line != header}
    return caption + "\n\n" + header + "\n" + "|---|---:|---:|---:|---:|", rows


def strategy_page(name: str, caption: str, rows: dict[str, str]) -> str:
    from taskweight import weighting

    cls = weighting.strategy_class(name)
    module = sys.modules[cls.__module__]
    summary = (cls.__doc__ or "").strip().splitlines()[0]
    lines = [f"# `{name}`", "", summary, "", (module.__doc__ or "").strip(), "", "## Options", ""]
    details = weighting.registry.option_details(name)
    options = [option for option, _, _ in details]
    if options:
        lines += ["| option | type | default |", "|---|---|---|"]
        lines += [f"| `{option}` | {kind} | `{default!r}` |" for option, kind, default in details]
        lines += [
            "",
            f"On the command line: `taskweight train --method {name} --method-opt {options[0]}=...`; "
            f'in Python: `weighting.get("{name}", tasks=("det", "seg"), {options[0]}=...)`. '
            "Options are checked by type and range before any data is read.",
        ]
    else:
        lines.append(f'None: `weighting.get("{name}", tasks=("det", "seg"))`.')
    lines += ["", "## Measured step overhead", ""]
    measured = [rows[key] for key in (name, f"{name}@representation") if key in rows]
    if measured:
        lines += [caption, *measured]
        if len(measured) > 1:
            lines += [
                "",
                "`@representation`: per-task gradients on the encoder's feature maps (`--gradients representation`).",
            ]
    else:
        lines.append("Not measured yet (`benchmarks/step_overhead.py`).")
    lines += ["", "## API", "", f"::: {cls.__module__}.{cls.__name__}", ""]
    return "\n".join(lines)


def main() -> None:
    from taskweight import weighting

    (DOCS / "strategies").mkdir(parents=True, exist_ok=True)
    caption, rows = overhead_rows()
    for name in weighting.available():
        (DOCS / "strategies" / f"{name}.md").write_text(strategy_page(name, caption, rows))
    typer = Path(sys.executable).with_name("typer")
    subprocess.run(
        [
            str(typer),
            "taskweight.cli",
            "utils",
            "docs",
            "--name",
            "taskweight",
            "--title",
            "Command line",
            "--output",
            str(DOCS / "cli.md"),
        ],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main()
