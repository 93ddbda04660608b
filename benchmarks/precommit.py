"""The `forkman-check` pre-commit hook vs a `git status` hook, on 100 forks and 20,000 files.

Builds the synthetic repository of ``benchmarks/check.py``, installs two local
pre-commit hooks (both `language: system`, so pre-commit's own start-up is
the same for both) and times, warm, the median of several
``pre-commit run HOOK`` runs of:

- ``git-status``: ``git status --porcelain`` (the baseline), and
- ``forkman-check``: ``python -m forkman check``, as `.pre-commit-hooks.yaml` runs it.

Prints both medians and the ratio.

    python benchmarks/precommit.py [--forks 100] [--files-per-fork 200] [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check import REPO, build, median_time

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
        time.sleep(3)  # past the "racy clean" window of fresh files, as in a real repository
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PRE_COMMIT_HOME": str(Path(tmp) / "pre-commit-home"),
        }
        results = {}
        for hook in ("git-status", "forkman-check"):
            cmd = [str(pre_commit), "run", hook]
            results[hook] = median_time(cmd, root, args.runs, env)
        base, ours = results["git-status"], results["forkman-check"]
        files = args.forks * args.files_per_fork
        print(f"{args.forks} forks, {files} files, median of {args.runs} warm runs")
        print(f"pre-commit run git-status:    {base * 1000:8.1f} ms")
        print(f"pre-commit run forkman-check: {ours * 1000:8.1f} ms")
        print(f"ratio: {ours / base:.2f}x")


if __name__ == "__main__":
    main()
