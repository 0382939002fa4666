"""Build the wheel and sdist, then prove a user can install and run them (`make wheel-check`).

1. ``python -m build --no-isolation`` writes ``dist/taskweight-VERSION-py3-none-any.whl`` and the sdist;
2. the wheel must hold every packaged data file of the source tree (configs, bench presets,
   class mappings, ``py.typed``) — compared file by file;
3. a fresh virtual environment gets the wheel (``--no-deps``; the dependencies come from the
   build environment through a path entry, so nothing is downloaded) and must, from outside
   the source tree, import taskweight *from the wheel*, report the version in
   ``pyproject.toml``, run ``taskweight --help`` and ``taskweight methods``, and run the
   README's own-loop example (``examples/own_loop.py``).

Prints the wheel's size and file count; exits non-zero with the reason on any failure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "taskweight"
DATA_PATTERNS = ("py.typed", "configs/*.yaml", "configs/bench/*.yaml", "data/mappings/*.yaml")


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def main() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(dist), str(ROOT)])
    wheels = sorted(dist.glob(f"taskweight-{version}-*.whl"))
    sdists = sorted(dist.glob(f"taskweight-{version}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        sys.exit(f"expected one wheel and one sdist of version {version} in {dist}, found {sorted(dist.iterdir())}")
    wheel = wheels[0]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {
        f"taskweight/{p.relative_to(PACKAGE).as_posix()}" for pattern in DATA_PATTERNS for p in PACKAGE.glob(pattern)
    }
    expected |= {f"taskweight/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")}
    missing = sorted(expected - names)
    if missing:
        sys.exit(f"{wheel.name} lacks {len(missing)} file(s) of the source tree: {missing[:10]}")
    print(
        f"{wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB, {len(names)} files, all {len(expected)} "
        f"source and data files present; {sdists[0].name}: {sdists[0].stat().st_size / 1024:.0f} KiB"
    )

    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        python = venv / "bin" / "python"
        site = Path(
            run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        )
        # the dependencies (torch, ...) from this environment, after the fresh site-packages on sys.path
        (site / "_build_env_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
        where = run(
            [str(python), "-c", "import taskweight; print(taskweight.__file__); print(taskweight.__version__)"], cwd=tmp
        ).stdout.split()
        if not where[0].startswith(str(site)) or where[1] != version:
            sys.exit(f"the fresh environment imported {where[0]} version {where[1]}, not the wheel's {version}")
        script = venv / "bin" / "taskweight"
        env = {"OMP_NUM_THREADS": "1", "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "120"}
        if "Usage" not in run([str(script), "--help"], cwd=tmp, env=env).stdout:
            sys.exit("taskweight --help printed no usage")
        if "gradnorm" not in run([str(script), "methods"], cwd=tmp, env=env).stdout:
            sys.exit("taskweight methods does not list gradnorm")
        example = run([str(python), str(ROOT / "examples" / "own_loop.py"), "--steps", "2"], cwd=tmp, env=env).stdout
        if "step 2:" not in example:
            sys.exit(f"the own-loop example did not train 2 steps:\n{example}")
    print(f"installed {wheel.name} into a fresh environment: --help, methods and examples/own_loop.py ran from it")


if __name__ == "__main__":
    main()
