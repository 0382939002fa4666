"""Per-module mutation score and surviving mutants of a `make mutate` run, as Markdown.

mutmut keeps one ``mutants/<path>.py.meta`` JSON file per mutated source file; its
``exit_code_by_key`` maps each mutant's name to the exit code of the tests run against it
(``None`` = not run yet). This script groups those results by module and writes

* a table: module, mutants, killed (a test failed), timeout (the tests ran past mutmut's
  limit: an endless loop, or a loaded machine), survived, no tests (no selected test reaches the
  mutated function), not yet run, and the score ``(killed + timeout) / run`` over the mutants
  that were run;
* the survivors, each with its one-line diff (the line before and after), so a reviewer
  can judge whether it is equivalent or a missing test.

Usage: ``python tools/mutation_report.py [--mutants mutants] [--out FILE] [--survivors N]``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import functools
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# mutmut's exit-code meanings (mutmut/stats.py): 1 and 3 are test failures, the SIGXCPU codes timeouts.
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {-24, 24, 152, 255, 36}
SURVIVED_CODES = {0}
NO_TEST_CODES = {5, 33}


@dataclass
class ModuleScore:
    """Counts of one module's mutants by outcome."""

    module: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def run(self) -> int:
        return sum(self.counts[k] for k in ("killed", "timeout", "survived", "no tests"))

    @property
    def score(self) -> float | None:
        return (self.counts["killed"] + self.counts["timeout"]) / self.run if self.run else None


def outcome(exit_code: int | None) -> str:
    """The outcome of one mutant from its exit code (a timeout is counted apart, and scored as killed)."""
    if exit_code is None:
        return "not run"
    if exit_code in KILLED_CODES:
        return "killed"
    if exit_code in TIMEOUT_CODES:
        return "timeout"
    if exit_code in SURVIVED_CODES:
        return "survived"
    if exit_code in NO_TEST_CODES:
        return "no tests"
    return "other"


def module_name(meta: Path, mutants_dir: Path) -> str:
    relative = meta.relative_to(mutants_dir / "src").with_suffix("").with_suffix("")
    return ".".join(relative.parts)


def read_scores(mutants_dir: Path) -> tuple[list[ModuleScore], list[tuple[str, Path]]]:
    """Scores per module and the (mutant name, meta path) of every survivor."""
    scores: list[ModuleScore] = []
    survivors: list[tuple[str, Path]] = []
    for meta in sorted((mutants_dir / "src").rglob("*.py.meta")):
        try:
            data = json.loads(meta.read_text())
        except json.JSONDecodeError as error:
            raise SystemExit(f"{meta}:{error.lineno}: not valid JSON ({error.msg})") from error
        exit_codes: dict[str, int | None] = data.get("exit_code_by_key", {})
        if not exit_codes:
            continue
        score = ModuleScore(module_name(meta, mutants_dir))
        for name, code in exit_codes.items():
            result = outcome(code)
            score.counts[result] += 1
            if result == "survived":
                survivors.append((name, meta))
        scores.append(score)
    return scores, survivors


def mutant_diff(name: str, meta: Path) -> str:
    """The changed lines of one mutant: its function in mutmut's copy against the original function."""
    functions = _functions(meta.with_suffix(""))
    function = name.split(".")[-1]
    original_name, _, _ = function.rpartition("__mutmut_")
    original = [
        line.replace(f"{original_name}__mutmut_orig", "f")
        for line in functions.get(f"{original_name}__mutmut_orig", [])
    ]
    mutated = [line.replace(function, "f") for line in functions.get(function, [])]
    changed = [
        line
        for line in difflib.unified_diff(original, mutated, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return " / ".join(line[0] + " " + line[1:].strip() for line in changed) or "(no textual change found)"


@functools.cache
def _functions(mutated_source: Path) -> dict[str, list[str]]:
    """Source lines of every function in mutmut's trampolined copy of a module, by name."""
    text = mutated_source.read_text()
    lines = text.splitlines()
    return {
        node.name: lines[node.lineno - 1 : node.end_lineno]
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def render(scores: list[ModuleScore], survivors: list[tuple[str, Path]], limit: int) -> str:
    lines = [
        "| module | mutants | killed | timeout | survived | no tests | not run | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = ModuleScore("**all**")
    for score in scores:
        total.counts.update(score.counts)
    for score in [*scores, total]:
        c = score.counts
        shown = f"{score.score:.1%}" if score.score is not None else "—"
        lines.append(
            f"| {score.module} | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived']} "
            f"| {c['no tests']} | {c['not run']} | {shown} |"
        )
    if survivors:
        lines += ["", f"## Survivors ({len(survivors)}{', first ' + str(limit) if len(survivors) > limit else ''})", ""]
        for name, meta in survivors[:limit]:
            lines.append(f"- `{name}`: {mutant_diff(name, meta)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's working folder")
    parser.add_argument("--out", type=Path, help="write the Markdown here instead of printing it")
    parser.add_argument("--survivors", type=int, default=1000, help="list at most this many survivors")
    args = parser.parse_args(argv)
    if not (args.mutants / "src").is_dir():
        print(f"{args.mutants}: no mutmut results here (run `make mutate` first)", file=sys.stderr)
        return 1
    scores, survivors = read_scores(args.mutants)
    text = render(scores, survivors, args.survivors)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
