"""A kill -9 harness: run a command, SIGKILL it at random moments, check consistency.

Reusable for any multi-fork command (``forkman sync --all`` included)::

    report = crash_test([sys.executable, "-m", "forkman", "sync", "--all"],
                        check=my_checker, cwd=project, kills=20, seed=5)

`check(phase)` is called after every kill (``phase="killed"``) and after the
final run that must complete (``phase="final"``); it raises AssertionError on
any inconsistency. It may itself run the "next command" (e.g. recovery)
before checking the end state.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CrashReport:
    """What a crash test did."""

    kills: int = 0
    """Runs that were SIGKILLed while still running."""
    finished_early: int = 0
    """Runs that exited by themselves before their kill moment."""
    moments: list[float] = field(default_factory=list)
    """The kill delays used (seconds after start)."""
    calibration: float = 0.0
    """Duration of the first, complete run (seconds)."""


def _run_to_end(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    returncodes: Container[int] = (0,),
) -> float:
    start = time.monotonic()
    done = subprocess.run(
        list(command), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode not in returncodes:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}\nstdout:\n{done.stdout}\n"
            f"stderr:\n{done.stderr}"
        )
    return time.monotonic() - start


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until every process of group `pgid` has exited (zombies count as gone).

    A SIGKILLed command's children (git, say) die a moment after it; until then
    they may still hold its files and locks.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return
        time.sleep(0.01)


def crash_test(
    command: Sequence[str],
    check: Callable[[str], None],
    *,
    cwd: Path,
    kills: int = 20,
    seed: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    max_attempts: int | None = None,
    returncodes: Container[int] = (0,),
) -> CrashReport:
    """Run `command` once to completion (calibration), then `kills` times killed with
    SIGKILL at a random moment within the calibrated duration (seeded), calling
    ``check("killed")`` after each; finally run it to completion and ``check("final")``.
    A complete run must exit with one of `returncodes` (e.g. 1 for a sync that stops at a
    conflict on purpose).
    """
    rng = random.Random(seed)
    environment = dict(os.environ if env is None else env)
    report = CrashReport()
    report.calibration = _run_to_end(command, cwd, environment, timeout, returncodes)
    check("final")
    attempts = 0
    limit = max_attempts if max_attempts is not None else kills * 3
    while report.kills < kills:
        attempts += 1
        if attempts > limit:
            raise AssertionError(
                f"only {report.kills} of {kills} runs could be killed while running "
                f"({report.finished_early} finished first): the workload is too short"
            )
        delay = rng.uniform(0.0, report.calibration)
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            _wait_group_gone(proc.pid)
            report.kills += 1
            report.moments.append(delay)
        else:
            report.finished_early += 1
            err = proc.stderr.read().decode() if proc.stderr else ""
            if proc.returncode not in returncodes:
                raise AssertionError(f"run exited {proc.returncode} before being killed:\n{err}")
        finally:
            if proc.stderr:
                proc.stderr.close()
        check("killed")
    _run_to_end(command, cwd, environment, timeout, returncodes)
    check("final")
    return report
