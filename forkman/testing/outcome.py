"""What a fork's test run came to: its status and the one line that says why (naming
the cause when the suite did not run), its ``test`` lock section and its JSON report."""

from __future__ import annotations

import enum
import re
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import IntegrityError
from ..model.lock import GitSource, LockEntry
from ..sandbox import RunResult, SandboxPolicy
from .junit import TestCounts, clean_line, count_tests_done, parse_junit_bytes


class TestStatus(enum.Enum):
    """How a fork's test run ended."""

    PASSED = "passed"
    """Every test passed (or was skipped)."""
    FAILED = "failed"
    """At least one test failed or errored."""
    NETWORK_DISABLED = "network-disabled"
    """Tests failed because they tried to reach the network, which is disabled."""
    NO_TESTS = "no-tests"
    """The vendored tree holds no tests to run (or pytest collected none)."""
    TIMEOUT = "timeout"
    """The suite ran longer than its wall-clock limit and was killed."""
    ERROR = "error"
    """The suite could not run or report (usage or collection error, crash, limit exceeded)."""

    __test__ = False


@dataclass(frozen=True)
class TestOutcome:
    """The result of testing one fork."""

    name: str
    """The fork."""
    status: TestStatus
    """How it ended."""
    message: str
    """One line for the user."""
    counts: TestCounts | None
    """Counts, when a report was produced."""
    run: RunResult | None
    """The sandboxed run, when one happened."""
    env_key: str
    """The test environment's content hash."""
    command: tuple[str, ...]
    """The command that ran."""
    log_dir: Path | None = None
    """Where the run's output and JUnit report were kept (``.forkman/test-logs/NAME``)."""
    timeout: float | None = None
    """The wall-clock limit the run had, in seconds."""
    version: str = ""
    """The fork's version in the lock when it was tested."""
    tree: str = ""
    """The fork's vendored tree hash in the lock when it was tested."""
    tested_tree: str = ""
    """Tree hash of the vendored tree as it was on disk, which was built and tested."""
    imported_from: tuple[str, ...] = ()
    """``module: path`` inside the test environment, for each module of the fork the
    suite imported (the proof that the fork's build was tested)."""

    __test__ = False

    @property
    def output_log(self) -> Path | None:
        """The kept stdout and stderr of the run, when it ran."""
        return self.log_dir / "output.log" if self.log_dir is not None else None

    @property
    def junit_log(self) -> Path | None:
        """The kept JUnit report, when the run wrote one."""
        path = self.log_dir / "junit.xml" if self.log_dir is not None else None
        return path if path is not None and path.is_file() else None


# ---- what happened ---------------------------------------------------------------

PLUGIN_OPTIONS = {
    "--cov": "pytest-cov",
    "--no-cov": "pytest-cov",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
    "--timeout": "pytest-timeout",
    "--benchmark": "pytest-benchmark",
    "--reruns": "pytest-rerunfailures",
    "--asyncio-mode": "pytest-asyncio",
    "--mypy": "pytest-mypy",
    "--hypothesis": "hypothesis",
    "--randomly": "pytest-randomly",
    "--mpl": "pytest-mpl",
    "--flake8": "pytest-flake8",
    "--ds": "pytest-django",
    "--snapshot-update": "syrupy",
    "--forked": "pytest-forked",
    "--html": "pytest-html",
    "--doctest-cython": "pytest-cython",
}
"""Command-line options (or their prefix before ``-``) and the pytest plugin that adds them."""

PLUGIN_INI_OPTIONS = {
    "asyncio_mode": "pytest-asyncio",
    "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "timeout": "pytest-timeout",
    "DJANGO_SETTINGS_MODULE": "pytest-django",
    "env": "pytest-env",
    "mock_use_standalone_module": "pytest-mock",
    "flake8-ignore": "pytest-flake8",
    "mpl-baseline-path": "pytest-mpl",
}
"""pytest configuration keys and the plugin that defines them."""


def _plugin_for(option: str) -> str | None:
    opt = option.split("=", 1)[0]
    if opt in PLUGIN_OPTIONS:
        return PLUGIN_OPTIONS[opt]
    for known, plugin in PLUGIN_OPTIONS.items():
        if known.startswith("--") and opt.startswith(known + "-"):
            return plugin
    return None


def pre_run_cause(name: str, stdout: bytes, stderr: bytes) -> str | None:
    """Why pytest stopped before running tests, from its output (untrusted, cleaned);
    None when the output names no cause forkman knows."""
    text = (stderr + b"\n" + stdout).decode("utf-8", errors="replace")
    where = f"[tool.forkman.forks.{name}.test] requirements"
    m = re.search(r"error: unrecognized arguments: (.*)", text)
    if m:
        options = [o for o in m.group(1).split() if o.startswith("-")] or [m.group(1)]
        for option in options:
            plugin = _plugin_for(option)
            if plugin is not None:
                opt = option.split("=", 1)[0]
                return clean_line(
                    f"a pytest plugin is missing: {opt} needs {plugin} (add it to {where}, "
                    "or drop the option from the command or the suite's addopts)"
                )
        return clean_line(
            f"pytest does not know the option(s) {' '.join(options)} (from the test command or "
            "the suite's pytest addopts; a plugin may be missing)"
        )
    m = re.search(r"Unknown config option: (\S+)", text)
    if m:
        key = m.group(1)
        plugin = PLUGIN_INI_OPTIONS.get(key)
        if plugin is not None:
            return clean_line(
                f"a pytest plugin is missing: the configuration key {key} needs {plugin} "
                f"(add it to {where})"
            )
        return clean_line(f"pytest refused the unknown configuration key {key} (strict config)")
    m = re.search(r"ERROR: file or directory not found: (.*)", text)
    if m:
        return clean_line(
            f"the test command names {m.group(1).strip()}, which the vendored tree does not have"
        )
    e_lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ") and ln[1:].strip()]
    m = re.search(r"ImportError while loading conftest '([^']*)'", text)
    if m:
        why = e_lines[-1] if e_lines else "an import failed"
        return clean_line(
            f"the suite's conftest {Path(m.group(1)).name} could not be imported: {why}"
            + (f" (a test dependency is missing: add it to {where})" if "No module" in why else "")
        )
    internal = [ln for ln in text.splitlines() if ln.startswith("INTERNALERROR>")]
    if internal:
        last = [ln[len("INTERNALERROR>") :].strip() for ln in internal]
        errors = [ln for ln in last if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]
        return clean_line(f"pytest crashed (internal error): {(errors or last)[-1]}")
    m = re.search(r"(ModuleNotFoundError: No module named [^\n]*)", text)
    if m:
        return clean_line(f"a test dependency is missing: {m.group(1)} (add it to {where})")
    m = re.search(r"forkman sandbox: (cannot run [^\n]*)", text)
    if m:
        return clean_line(m.group(1))
    usage = [ln for ln in text.splitlines() if ln.startswith(("ERROR:", "error:"))]
    usage = [ln for ln in usage if not ln.startswith("ERROR: usage:")]
    if usage:
        return clean_line(usage[0])
    return None


def no_tests_message(entry: LockEntry, what: str) -> str:
    """A "no tests" message with where forkman looked (the fork's source) and what to do."""
    name = entry.name
    source = entry.source
    include = f"[tool.forkman.forks.{name}.test] include"
    if isinstance(source, GitSource):
        where = f"the git checkout of {name} ({source.url} at {source.ref})"
        todo = (
            f"check the test command in [tool.forkman.forks.{name}.test], or {include} the "
            "project's own tests"
        )
    else:
        kind = "wheel" if source.filename.endswith(".whl") else "sdist"
        where = f"the {kind} of {name} ({source.filename})"
        todo = (
            f"fork {name} from git at its release tag (forkman fork git+URL@TAG --name {name}), "
            f"or copy tests in with {include}"
        )
    return f"{where} {what}; {todo}"


def _limit_message(name: str, run: RunResult, policy: Mapping[str, Any]) -> str | None:
    if run.memory_exceeded:
        mib = int(policy["memory"]) // (1024 * 1024)
        return (
            f"the test suite of {name} exceeded its memory limit ({mib} MiB, "
            "[tool.forkman.sandbox] memory) and was killed"
        )
    if run.processes_exceeded:
        return (
            f"the test suite of {name} exceeded its process limit ({policy['max_processes']}, "
            "[tool.forkman.sandbox] max-processes) and was killed"
        )
    if run.signal in (signal.SIGXCPU, signal.SIGKILL):
        return (
            f"the test suite of {name} was killed by {signal.Signals(run.signal).name}: it may "
            f"have used more than its {policy['cpu_seconds']} CPU seconds "
            "([tool.forkman.sandbox] cpu-seconds, raised with a fork's timeout)"
        )
    return None


_Evaluation = tuple[TestStatus, str, TestCounts | None]


def _timed_out(
    name: str, run: RunResult, timeout_setting: str, policy: SandboxPolicy | None
) -> _Evaluation:
    done = count_tests_done(run.stdout)
    progress = f" with {done} test(s) done" if done else ""
    limit = run.duration if policy is None else policy.timeout
    return (
        TestStatus.TIMEOUT,
        f"the test suite of {name} timed out after {limit:g} s{progress} and was killed; "
        f"the limit is {timeout_setting}",
        None,
    )


def _no_report(name: str, run: RunResult, limit_msg: str | None) -> _Evaluation:
    """A run that wrote no JUnit report: it stopped before running tests."""
    if limit_msg is not None:
        return TestStatus.ERROR, limit_msg, None
    rc = run.returncode
    cause = pre_run_cause(name, run.stdout, run.stderr)
    if rc == 5:
        return TestStatus.NO_TESTS, f"pytest collected no tests in {name}", None
    what = {2: "was interrupted", 3: "crashed", 4: "was stopped by a usage error"}.get(
        rc, f"exited with status {rc}"
    )
    why = f": {cause}" if cause else " and wrote no JUnit report (see the log)"
    return TestStatus.ERROR, f"the test suite of {name} {what} before running tests{why}", None


def _collection_failed(name: str, counts: TestCounts) -> _Evaluation:
    first = next((f for f in counts.failures if f.message), None)
    detail = f": {first.id}: {first.message}" if first is not None else ""
    hint = ""
    if first is not None and "No module named" in first.message:
        hint = f" (a test dependency is missing: add it to [tool.forkman.forks.{name}.test] "
        hint += "requirements)"
    return (
        TestStatus.ERROR,
        clean_line(
            f"pytest could not collect {counts.collection_errors} test file(s) of {name}"
            f"{detail}{hint}",
            600,
        ),
        counts,
    )


def _failed(counts: TestCounts) -> _Evaluation:
    """A report that lists failing tests: failed, or failed for want of network only."""
    bad = counts.failed + counts.errors
    if counts.network_failures == bad:
        return (
            TestStatus.NETWORK_DISABLED,
            f"{bad} test(s) failed because network is disabled in the sandbox "
            "(the suite needs network access or a service of the host; mark or deselect "
            "those tests)",
            counts,
        )
    causes = []
    if counts.network_failures:
        causes.append(f"{counts.network_failures} of the failures for want of network")
    if counts.network_skipped:
        causes.append(f"{counts.network_skipped} skipped for want of network")
    return (
        TestStatus.FAILED,
        f"{counts.failed} failed, {counts.errors} errors, {counts.passed} passed"
        + (f" ({'; '.join(causes)})" if causes else ""),
        counts,
    )


def _with_report(
    name: str, run: RunResult, counts: TestCounts, limit_msg: str | None
) -> _Evaluation:
    """A run whose JUnit report was read."""
    rc = run.returncode
    bad = counts.failed + counts.errors
    total = counts.passed + bad + counts.skipped
    if counts.collection_errors:
        return _collection_failed(name, counts)
    if limit_msg is not None:
        return TestStatus.ERROR, limit_msg, counts
    if rc == 5 or (total == 0 and rc == 0):
        return TestStatus.NO_TESTS, f"pytest collected no tests in {name}", counts
    if rc in (3, 4) or (bad == 0 and rc != 0):
        cause = pre_run_cause(name, run.stdout, run.stderr)
        return (
            TestStatus.ERROR,
            f"the test suite of {name} exited with status {rc} although its report lists no "
            f"failure{': ' + cause if cause else ' (see the log)'}",
            counts,
        )
    if bad == 0:
        offline = (
            f" ({counts.network_skipped} for want of network)" if counts.network_skipped else ""
        )
        return (
            TestStatus.PASSED,
            f"{counts.passed} passed, {counts.skipped} skipped{offline}",
            counts,
        )
    return _failed(counts)


def evaluate_run(
    name: str,
    run: RunResult,
    report: bytes | IntegrityError | None,
    tree: Path | None,
    timeout_setting: str,
    policy: SandboxPolicy | None = None,
) -> tuple[TestStatus, str, TestCounts | None]:
    """How a run ended: its status, one line for the user (naming the cause when the
    suite did not run) and the counts of its JUnit report."""
    if run.timed_out:
        return _timed_out(name, run, timeout_setting, policy)
    limit_msg = _limit_message(name, run, (policy or SandboxPolicy()).to_json())
    if isinstance(report, IntegrityError):
        return TestStatus.ERROR, f"the JUnit report of {name} was refused: {report}", None
    if report is None:
        return _no_report(name, run, limit_msg)
    try:
        counts = parse_junit_bytes(report, tree)
    except IntegrityError as exc:
        return TestStatus.ERROR, f"the JUnit report of {name} was refused: {exc}", None
    return _with_report(name, run, counts, limit_msg)


def lock_section(outcome: TestOutcome) -> dict[str, Any]:
    run = outcome.run
    data: dict[str, Any] = {
        "status": outcome.status.value,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(outcome.command),
        "message": outcome.message,
        "version": outcome.version,
        "tree": outcome.tree,
    }
    if outcome.env_key:
        data["env"] = "sha256:" + outcome.env_key
    if outcome.tested_tree:
        data["tested-tree"] = outcome.tested_tree
    if outcome.imported_from:
        data["imported-from"] = list(outcome.imported_from)
    if run is not None:
        data["tier"] = run.tier_label
        data["enforced"] = list(run.enforced)
    if outcome.counts is not None:
        c = outcome.counts
        data.update(
            passed=c.passed,
            failed=c.failed,
            errors=c.errors,
            skipped=c.skipped,
            duration=round(c.duration, 3),
        )
        if c.network_failures:
            data["network_failures"] = c.network_failures
        if c.network_skipped:
            data["network_skipped"] = c.network_skipped
        if c.failures:
            data["failing"] = [f.id for f in c.failures[:LOCK_FAILING]]
    if outcome.status is TestStatus.TIMEOUT and outcome.timeout is not None:
        data["timeout"] = outcome.timeout
    return data


LOCK_FAILING = 10
"""Failing test ids recorded in the lock (all of them are in the kept JUnit report)."""


def outcome_report(outcome: TestOutcome) -> dict[str, Any]:
    """What `forkman test --format json` says of one fork beyond its lock section:
    every kept failing test (id, kind, first line of message), the log paths, the limit."""
    c = outcome.counts
    return {
        "failures": [f.to_json() for f in c.failures] if c is not None else [],
        "failures_not_listed": c.failures_dropped if c is not None else 0,
        "network_failures": c.network_failures if c is not None else 0,
        "network_skipped": c.network_skipped if c is not None else 0,
        "log_dir": str(outcome.log_dir) if outcome.log_dir is not None else None,
        "output_log": str(outcome.output_log) if outcome.output_log is not None else None,
        "junit": str(outcome.junit_log) if outcome.junit_log is not None else None,
        "timeout": outcome.timeout,
        "duration": round(outcome.run.duration, 3) if outcome.run is not None else None,
    }
