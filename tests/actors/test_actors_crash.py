"""kill -9 at random moments: the next command recovers and files, lock and state agree."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.crash import crash_test
from tests.support.journaled_workload import check_consistency, read_lock, recover

FORKS = 6
ROUNDS = 6


def test_sigkill_at_random_moments_recovers_consistently(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "tests.support.journaled_workload",
        str(root),
        str(FORKS),
        str(ROUNDS),
    ]
    seen = {"interrupted": 0, "checks": 0}

    def check(phase: str) -> None:
        seen["checks"] += 1
        if phase == "final":
            check_consistency(root, FORKS, strict=True)
            return
        seen["interrupted"] += check_consistency(root, FORKS, strict=False) > 0
        if seen["checks"] % 2:
            # every other time the checker is the "next command"; otherwise the next run
            # of the workload itself recovers when it activates the interrupted actors
            recover(root)
            check_consistency(root, FORKS, strict=True)

    report = crash_test(command, check, cwd=REPO_ROOT, kills=22, seed=20261126, env=env)

    assert report.kills == 22
    # the kills must have interrupted real operations, or the test proves nothing
    assert seen["interrupted"] >= 3, report
    lock = read_lock(root)
    versions = {lock[f"pkg{i}"]["version"] for i in range(FORKS)}
    assert len(versions) == 1 and versions.pop() >= 2 * ROUNDS


def test_workload_runs_to_completion_and_the_checker_catches_a_torn_fork(tmp_path: Path) -> None:
    from tests.support.journaled_workload import run

    run(tmp_path, 2, 3)
    assert read_lock(tmp_path)["pkg0"]["version"] == 3
    assert check_consistency(tmp_path, 2, strict=True) == 0
    # the checker is not vacuous: a file from another version is caught
    (tmp_path / "vendor" / "pkg1" / "b.py").write_text("pkg1 2\n")
    with pytest.raises(AssertionError, match="mixes versions"):
        check_consistency(tmp_path, 2, strict=True)
