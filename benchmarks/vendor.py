"""forkman vs the vendoring tool, vendoring the same requirements into the same layout.

The project is pip 26.2 as its repository has it (18 pinned packages, its
``[tool.vendoring]`` table and patches; rebuilt by
``tests/support/pip_project.py``, which proves it with the tool itself). Both
sides run as a user runs them, as separate processes, and both write the very
same ``src/pip/_vendor`` (checked after every forkman run with ``git status``):

- vendoring: ``vendoring sync`` (the tool 1.4.0, which pip uses);
- forkman: ``forkman migrate vendoring`` then ``forkman sync --all --yes``
  (every fork made: download, verify, unpack, history, transform, patches,
  lock, all in crash-safe transactions).

Timed:

1. cold: empty download caches (forkman's cache, pip's cache) and a fresh
   project (target: forkman <= 0.5x);
2. warm: the same from a fresh project with the caches filled (target <= 0.1x);
3. one pin moved (warm): idna 3.18 -> 3.20. vendoring: edit vendor.txt, then
   ``vendoring sync``; forkman: ``forkman sync idna --to 3.20 --yes`` on the
   synced project. The two trees are compared afterwards;
4. nothing changed, the CI question "is the vendored tree what the pins and
   patches say?": ``vendoring sync`` plus ``git diff --exit-code`` against
   ``forkman check``.

Both use the registry directly: the machine's pip configuration (local
find-links and extra indexes) is turned off for the tool. Scratch space is
``--workdir`` (default ``.bench/`` in the repository): on some machines here
creating files under /tmp is many times slower than elsewhere.

    python benchmarks/vendor.py [--runs N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.pip_project import DEST, build_pip_project, install_tool, tool_env  # noqa: E402

BUMP = ("idna", "3.18", "3.20")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}) in {cwd}:\n{done.stderr[-3000:]}"
        )
    return took


def _fresh(committed: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(committed, dest, symlinks=True)
    return dest


class Forkman:
    def __init__(self, base: Path) -> None:
        self.cache = base / "forkman-cache"
        self.env = {**os.environ, "FORKMAN_CACHE_DIR": str(self.cache), "PYTHONPATH": str(REPO)}
        self.cmd = [sys.executable, "-m", "forkman"]

    def clear(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    def vendor(self, project: Path) -> float:
        took = _timed([*self.cmd, "migrate", "vendoring"], project, self.env)
        took += _timed([*self.cmd, "sync", "--all", "--yes"], project, self.env)
        changed = _git(project, "status", "--porcelain", "--untracked-files=all", "--", DEST)
        if changed:
            raise SystemExit(f"forkman's tree differs from the committed one:\n{changed}")
        return took

    def bump(self, project: Path) -> float:
        name, _old, new = BUMP
        return _timed([*self.cmd, "sync", name, "--to", new, "--yes"], project, self.env)

    def check(self, project: Path) -> float:
        return _timed([*self.cmd, "check"], project, self.env)


class Vendoring:
    def __init__(self, base: Path, venv: Path) -> None:
        self.venv = venv
        self.cache = base / "pip-cache"
        self.tmp = base / "vendoring-tmp"
        env = tool_env(venv, PIP_CACHE_DIR=str(self.cache), TMPDIR=str(self.tmp))
        env["PIP_CONFIG_FILE"] = os.devnull  # the registry, as forkman uses it
        env.pop("PIP_FIND_LINKS", None)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        self.env = env

    def clear(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def vendor(self, project: Path) -> float:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return _timed([str(self.venv / "bin" / "vendoring"), "sync"], project, self.env)

    def bump(self, project: Path) -> float:
        name, old, new = BUMP
        pins = project / DEST / "vendor.txt"
        pins.write_text(pins.read_text().replace(f"{name}=={old}", f"{name}=={new}"))
        return self.vendor(project)

    def check(self, project: Path) -> float:
        took = self.vendor(project)
        start = time.perf_counter()
        subprocess.run(["git", "diff", "--exit-code", "--", DEST], cwd=project, check=True)
        return took + time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench")
    args = parser.parse_args()
    base = args.workdir.resolve() / "vendor"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    print("setting up: pip 26.2 with its patches, proven with the vendoring tool ...", flush=True)
    venv = base / "tool"
    install_tool(venv)
    committed = build_pip_project(base / "pip", venv)
    forkman, vendoring = Forkman(base), Vendoring(base, venv)
    times: dict[str, dict[str, list[float]]] = {}

    def record(what: str, who: str, seconds: float) -> None:
        times.setdefault(what, {}).setdefault(who, []).append(seconds)
        print(f"  {what:<10} {who:<9} {seconds:7.2f} s", flush=True)

    for _ in range(args.runs):
        for who, tool in (("forkman", forkman), ("vendoring", vendoring)):
            tool.clear()
            record("cold", who, tool.vendor(_fresh(committed, base / who)))
            record("warm", who, tool.vendor(_fresh(committed, base / who)))
            record("one pin", who, tool.bump(base / who))
        if _tree(base / "forkman") != _tree(base / "vendoring"):
            raise SystemExit("after moving idna, forkman's and the tool's trees differ")
    for _ in range(args.runs):
        record("check", "forkman", forkman.check(base / "forkman"))
        record("check", "vendoring", vendoring.check(_fresh(committed, base / "vendoring")))

    targets = {"cold": 0.5, "warm": 0.1, "one pin": None, "check": None}
    print(f"\nmedians of {args.runs} runs (forkman / vendoring):")
    for what, target in targets.items():
        ours, theirs = (statistics.median(times[what][w]) for w in ("forkman", "vendoring"))
        ratio = ours / theirs
        verdict = "" if target is None else (" meets" if ratio <= target else " misses")
        goal = "" if target is None else f" (target <= {target}x:{verdict})"
        print(f"  {what:<10} {ours:7.2f} s / {theirs:7.2f} s = {ratio:.3f}x{goal}")
    shutil.rmtree(base, ignore_errors=True)


def _tree(project: Path) -> dict[str, bytes]:
    """The vendored files (not the project's own: the tool rewrites its pins and SBOM)."""
    root = project / DEST
    own = {"vendor.txt", "bom.cdx.json"}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name not in own
    }


if __name__ == "__main__":
    main()
