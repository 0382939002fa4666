"""Run the mutants that only a CUDA device can tell apart (issue 18's "needs a CUDA device" survivors)
against the device tests, in one process: mutmut's trampolines read ``MUTANT_UNDER_TEST`` at every
call, so one pytest session per mutant needs no new interpreter.

    PYTHONPATH=mutants/src TASKWEIGHT_TEST_DEVICE=cuda python benchmarks/cuda_mutants.py OUT.json NAME...

Each mutant runs ``tests/test_solver_survivors.py``, ``tests/test_strategy_contract.py`` and
``tests/test_cuda_device_survivors.py`` filtered to its strategy's name (``-k``); exit status 0 means it
survived, 1 that a test failed (killed). mutmut's trampolines import ``mutmut``: on a machine without it,
put a copy of its package directory on PYTHONPATH (it needs nothing beyond the standard library there).
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

TESTS = [
    test
    for test in (
        "tests/test_solver_survivors.py",
        "tests/test_strategy_contract.py",
        "tests/test_cuda_device_survivors.py",
    )
    if os.path.exists(test)
]


def strategy_of(name: str) -> str:
    """``taskweight.weighting.cagrad.x_cagrad_weights__mutmut_5`` → ``cagrad``."""
    return name.split(".")[2]


def main(out: str, names: list[str]) -> int:
    if os.environ.get("TASKWEIGHT_TEST_DEVICE") != "cuda":
        raise SystemExit("set TASKWEIGHT_TEST_DEVICE=cuda: these mutants differ only on a CUDA device")
    results: dict[str, int] = {}
    for name in names:
        os.environ["MUTANT_UNDER_TEST"] = name
        started = time.time()
        args = ["-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", "-W", "ignore", "--no-header", "--tb=no"]
        code = int(pytest.main([*args, "-k", strategy_of(name), *TESTS]))
        results[name] = code
        print(
            f"RESULT {name} {'killed' if code == 1 else 'survived' if code == 0 else f'exit {code}'} "
            f"{time.time() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )
        with open(out, "w") as handle:
            json.dump(results, handle, indent=0)
    killed = sum(code == 1 for code in results.values())
    print(f"killed {killed} of {len(results)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
