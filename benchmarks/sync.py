"""`forkman sync --all` over many forks, against a plain `git rebase` of the same series.

Publishes N packages (release 1.0) on the tests' real local HTTP index, forks
them all into a consumer repository and records a two-patch series on each.
Then, timing the real CLI (`python -m forkman sync --all --yes`, one process):

1. no upstream change: every fork is looked up on the index, nothing is newer;
2. each package gets release 1.1 (files changed away from the patches, one
   file added); the release files are downloaded into the cache first (a
   warm index), and the time to verify-from-cache and unpack them is measured
   separately, so the per-fork overhead printed excludes download and unpack.

The baseline: for each package, a plain git repository holding 1.0, the two
patch commits and 1.1, and `git rebase` of the series onto 1.1 (the same
three-way work, without review, verification, patch files or a lock).

    python benchmarks/sync.py [--forks 50] [--files 30] [--repeat 3]

Every time printed is the median of --repeat runs (the consumer is restored
from a copy between the runs of the sync, the plain repositories reset).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forkman.model.project import Project  # noqa: E402
from forkman.operations.forks import fork  # noqa: E402
from forkman.operations.patches import record_patch  # noqa: E402
from forkman.sources.unpack import unpack_archive  # noqa: E402
from tests.support.index import LocalIndex  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def module(i: int, version: str) -> str:
    body = [f"value_{k} = {k}" for k in range(40)]
    if version == "1.1" and i == 0:
        body[30] = "value_30 = 'changed upstream'"
    return "\n".join(body) + "\n"


def release(files: int, version: str) -> dict[str, str]:
    out = {f"pkg/m{i:03d}.py": module(i, version) for i in range(files)}
    if version == "1.1":
        out["pkg/added.py"] = "ADDED = True\n"
    return out


def patch_edits(tree: Path, step: int) -> None:
    path = tree / "pkg" / ("m000.py" if step == 0 else "m001.py")
    text = path.read_text().replace("value_3 = 3", f"value_3 = 'patched {step}'")
    path.write_text(text)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        env={**os.environ, **GIT_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def baseline(tmp: Path, forks: int, files: int, repeat: int) -> float:
    """Median seconds for `git rebase` of a two-patch series onto 1.1, in `forks` plain repos."""
    repos = []
    for f in range(forks):
        repo = tmp / f"plain{f:03d}"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "upstream")
        for rel, text in release(files, "1.0").items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "1.0")
        git(repo, "checkout", "-q", "-b", "patched")
        for step in range(2):
            patch_edits(repo, step)
            git(repo, "commit", "-qam", f"patch {step}")
        git(repo, "checkout", "-q", "upstream")
        for rel, text in release(files, "1.1").items():
            (repo / rel).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "1.1")
        repos.append(repo)
    for repo in repos:
        git(repo, "tag", "before", "patched")
    times = []
    for _ in range(repeat):
        for repo in repos:
            git(repo, "checkout", "-q", "-B", "patched", "before")
        start = time.perf_counter()
        for repo in repos:
            git(repo, "rebase", "-q", "upstream", "patched")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_cli(root: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"forkman {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    n = args.forks
    with tempfile.TemporaryDirectory(prefix="forkman-bench-sync-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ.update(GIT_ENV)
        os.environ["FORKMAN_CACHE_DIR"] = str(tmp / "cache")
        index = LocalIndex(tmp / "index").start()
        try:
            names = [f"bench{f:03d}" for f in range(n)]
            for name in names:
                index.add_sdist(name, "1.0", release(args.files, "1.0"))
            root = tmp / "consumer"
            root.mkdir()
            git(root, "init", "-q", "-b", "main")
            (root / "pyproject.toml").write_text(
                '[project]\nname = "c"\nversion = "0"\n\n'
                f'[tool.forkman]\nindex-url = "{index.url}"\n'
            )
            project = Project(root)
            t0 = time.perf_counter()
            for name in names:
                fork(project, f"{name}>=1,<2")
                for step in range(2):
                    patch_edits(root / "vendor" / name, step)
                    record_patch(project, name, f"Patch {step}")
            print(f"set up {n} forks with 2 patches each in {time.perf_counter() - t0:.1f} s")
            env = {**os.environ, "PYTHONPATH": str(REPO)}

            t_none = statistics.median(
                run_cli(root, env, "sync", "--all", "--yes") for _ in range(args.repeat)
            )
            print(
                f"sync --all, no upstream change: {t_none:.2f} s total, "
                f"{t_none / n * 1000:.1f} ms per fork"
            )

            for name in names:
                index.add_sdist(name, "1.1", release(args.files, "1.1"))
            # warm the download cache, and measure download + unpack separately
            from forkman.sources.index import fetch_release
            from forkman.sources.interface import DistKind

            t_dl = time.perf_counter()
            archives = [
                fetch_release(
                    f"{name}==1.1", index_urls=[index.url], prefer=DistKind.SDIST, prereleases=False
                ).path
                for name in names
            ]
            t_dl = time.perf_counter() - t_dl
            t_unpack = time.perf_counter()
            for i, archive in enumerate(archives):
                unpack_archive(archive, tmp / "unpack" / str(i))
            t_unpack = time.perf_counter() - t_unpack
            shutil.rmtree(tmp / "unpack")

            before = tmp / "consumer-before"
            shutil.copytree(root, before, symlinks=True)
            runs = []
            for r in range(args.repeat):
                if r:
                    shutil.rmtree(root)
                    shutil.copytree(before, root, symlinks=True)
                runs.append(run_cli(root, env, "sync", "--all", "--yes"))
                run_cli(root, env, "check")
            t_sync = statistics.median(runs)
            overhead = (t_sync - t_unpack) / n
            print(
                f"download (cold, separate): {t_dl / n * 1000:.1f} ms per fork; "
                f"unpack: {t_unpack / n * 1000:.1f} ms per fork"
            )
            print(
                f"sync --all, new release + 2-patch series: {t_sync:.2f} s total, "
                f"{overhead * 1000:.1f} ms per fork excluding download and unpack"
            )

            t_git = baseline(tmp, n, args.files, args.repeat)
            print(f"plain git rebase of the same series: {t_git / n * 1000:.1f} ms per fork")
            print(f"ratio forkman sync / git rebase (per fork): {overhead / (t_git / n):.1f}x")
        finally:
            index.stop()


if __name__ == "__main__":
    main()
