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

from forkman.gate.manifest import save_manifest  # noqa: E402
from forkman.model.lock import IndexSource, Lock, LockEntry, write_lock  # noqa: E402
from forkman.store.treehash import hash_manifest, scan_tree  # noqa: E402


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


def installed_forkman(tmp: Path) -> list[str] | None:
    """`forkman` from a regular (non-editable) install in a scratch venv, built offline.

    What a user's pre-commit hook runs. An editable development install adds an
    import finder to every interpreter start, which is not forkman's cost.
    """
    wheels = tmp / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        capture_output=True,
        check=False,
    )
    if built.returncode != 0:
        return None
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = next(wheels.glob("forkman-*.whl"))
    # forkman's quick check needs no third-party package: install the wheel's files only
    import zipfile

    site = next((venv / "lib").glob("python3*/site-packages"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    script = venv / "bin" / "forkman"
    script.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom forkman.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return [str(script)]


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
        from_source = [sys.executable, "-m", "forkman", "check"]
        start = time.perf_counter()
        subprocess.run(from_source, cwd=root, check=True, stdout=subprocess.DEVNULL, env=env)
        cold = time.perf_counter() - start
        # let the racy-clean windows pass so the caches may trust every file
        time.sleep(2.5)
        print(f"forkman check, first run (hashes every file): {cold * 1000:.0f} ms")
        installed = installed_forkman(Path(tmp))
        plain_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if installed is not None:
            git_t, fm_t = paired_medians(
                ["git", "status", "--porcelain"],
                [*installed, "check"],
                root,
                args.runs,
                plain_env,
            )
            print(f"git status --porcelain (warm, median of {args.runs}): {git_t * 1000:.1f} ms")
            print(f"forkman check, installed (warm, median of {args.runs}): {fm_t * 1000:.1f} ms")
            print(f"ratio forkman/git: {fm_t / git_t:.2f}x (target <= 1.5x)")
        else:
            print("(could not build a wheel: the installed measurement is skipped)")
        git_t, src_t = paired_medians(
            ["git", "status", "--porcelain"], from_source, root, args.runs, env
        )
        print(
            f"for reference, `python -m forkman check` from this interpreter and source tree: "
            f"{src_t * 1000:.1f} ms, {src_t / git_t:.2f}x"
        )


if __name__ == "__main__":
    main()
