"""The `forkman-check` pre-commit hook vs a `git status` hook, on 100 forks and 20,000 files.

Builds the synthetic repository of ``benchmarks/check.py``, installs two local
pre-commit hooks (both `language: system`, so pre-commit's own start-up is
the same for both) and times, warm, the median of several
``pre-commit run HOOK`` runs of:

- ``git-status``: ``git status --porcelain`` (the baseline), and
- ``forkman-check``: ``python -m forkman check``, as `.pre-commit-hooks.yaml` runs it.

The two hooks run alternately (:func:`benchmarks.check.paired_medians`), so
machine load hits both alike. Prints both medians and the ratio.

    python benchmarks/precommit.py [--forks 100] [--files-per-fork 200] [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.check import REPO, build, paired_medians

CONFIG = """repos:
  - repo: local
    hooks:
      - id: git-status
        name: git status
        entry: git status --porcelain
        language: system
        pass_filenames: false
        always_run: true
      - id: forkman-check
        name: forkman check
        entry: {python} -m forkman check
        language: system
        pass_filenames: false
        always_run: true
"""


def _commit(root: Path, path: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    subprocess.run(["git", "add", "--", path], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", f"add {path}"], cwd=root, check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--files-per-fork", type=int, default=200)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    pre_commit = Path(sys.executable).with_name("pre-commit")
    with tempfile.TemporaryDirectory(prefix="forkman-bench-") as tmp:
        root = Path(tmp) / "consumer"
        build(root, args.forks, args.files_per_fork)
        (root / ".pre-commit-config.yaml").write_text(CONFIG.format(python=sys.executable))
        _commit(root, ".pre-commit-config.yaml")  # pre-commit refuses an unstaged config
        time.sleep(3)  # past the "racy clean" window of fresh files, as in a real repository
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PRE_COMMIT_HOME": str(Path(tmp) / "pre-commit-home"),
        }
        base, ours = paired_medians(
            [str(pre_commit), "run", "git-status"],
            [str(pre_commit), "run", "forkman-check"],
            root,
            args.runs,
            env,
        )
        files = args.forks * args.files_per_fork
        print(f"{args.forks} forks, {files} files, median of {args.runs} warm runs")
        print(f"pre-commit run git-status:    {base * 1000:8.1f} ms")
        print(f"pre-commit run forkman-check: {ours * 1000:8.1f} ms")
        print(f"ratio: {ours / base:.2f}x")


if __name__ == "__main__":
    main()
