"""`forkman check` vs `git status` on a synthetic repository with 100 forks and 20,000 files.

Builds a consumer repository whose vendor directory holds 100 forks of 200
files each (recorded in a real forkman.lock with real tree hashes), commits
it, then times, warm (caches populated by a first run), the median of
several runs of:

- ``git status --porcelain`` (the baseline: what a developer already pays), and
- ``forkman check`` (a fresh process each time, as a pre-commit hook runs it).

Prints both medians and the ratio (target: at most 1.5x).

    python benchmarks/check.py [--forks 100] [--files-per-fork 200] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forkman._check import save_manifest  # noqa: E402
from forkman._lock import IndexSource, Lock, LockEntry, write_lock  # noqa: E402
from forkman._treehash import hash_manifest, scan_tree  # noqa: E402


def build(root: Path, forks: int, files: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\n\n[tool.forkman]\n')
    lock = Lock()
    for f in range(forks):
        name = f"pkg{f:03d}"
        tree = root / "vendor" / name
        for i in range(files):
            sub = tree / "src" / name / f"sub{i % 10}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"mod{i}.py").write_text(f"# {name} module {i}\nVALUE = {i}\n" * 5)
        manifest, _ = scan_tree(tree)
        digest = hash_manifest(manifest.values())
        save_manifest(root / ".forkman", name, manifest)
        lock = lock.with_entry(
            LockEntry(
                name=name,
                version="1.0",
                path=f"vendor/{name}",
                source=IndexSource(
                    "https://pypi.org/simple/",
                    f"https://files.example/{name}-1.0.tar.gz",
                    f"{name}-1.0.tar.gz",
                    "0" * 64,
                    f"{name}==1.0",
                ),
                upstream_tree=digest,
                vendored_tree=digest,
                fetched="2026-01-01T00:00:00Z",
            )
        )
    write_lock(root / "forkman.lock", lock)
    (root / ".gitignore").write_text(".forkman/\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    subprocess.run(["git", "commit", "-qm", "bench"], cwd=root, check=True, env=env)


def paired_medians(
    a: list[str], b: list[str], cwd: Path, runs: int, env: dict[str, str]
) -> tuple[float, float]:
    """Median wall time of `a` and of `b`, run alternately so machine load hits both alike."""
    for cmd in (a, b, a, b):  # warm up caches (git's index, forkman's state)
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(runs):
        for i, cmd in enumerate((a, b)):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def forkman_command() -> list[str]:
    """The installed `forkman` script beside this interpreter (what a hook runs), else -m."""
    script = Path(sys.executable).with_name("forkman")
    return [str(script)] if script.exists() else [sys.executable, "-m", "forkman"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--files-per-fork", type=int, default=200)
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forkman-bench-check-") as tmp:
        root = Path(tmp) / "repo"
        t0 = time.perf_counter()
        build(root, args.forks, args.files_per_fork)
        total = args.forks * args.files_per_fork
        print(f"built {args.forks} forks, {total} files in {time.perf_counter() - t0:.1f} s")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        fm = [*forkman_command(), "check"]
        start = time.perf_counter()
        subprocess.run(fm, cwd=root, check=True, stdout=subprocess.DEVNULL, env=env)
        cold = time.perf_counter() - start
        # let the racy-clean window pass so the stat cache may trust every file
        time.sleep(2.5)
        git_t, fm_t = paired_medians(["git", "status", "--porcelain"], fm, root, args.runs, env)
        print(f"forkman check, first run (hashes every file): {cold * 1000:.0f} ms")
        print(f"git status --porcelain (warm, median of {args.runs}): {git_t * 1000:.1f} ms")
        print(f"forkman check          (warm, median of {args.runs}): {fm_t * 1000:.1f} ms")
        print(f"  ({' '.join(fm[:-1])})")
        print(f"ratio forkman/git: {fm_t / git_t:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
