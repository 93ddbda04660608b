"""The ``test``, ``audit`` and ``audit-report`` operations of fork actors (see :mod:`.handlers`)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..actors import ActorContext, ActorState, OperationArgs, OperationResult, register_operation
from ..actors.interface import JSON
from ..model.project import Project
from ._handler_support import ActorObserver, recover_readonly

if TYPE_CHECKING:
    from ..sandbox import ForkServer

_test_server: ForkServer | None = None
_test_server_guard = threading.Lock()


def _shared_fork_server() -> ForkServer:
    """The warm fork server of this process (started on first use)."""
    global _test_server
    from ..sandbox import ForkServer

    with _test_server_guard:
        if _test_server is None:
            _test_server = ForkServer()
            _test_server.start()
            atexit.register(stop_test_server)
        return _test_server


def stop_test_server() -> None:
    """Stop this process's warm fork server, if one was started."""
    global _test_server
    with _test_server_guard:
        if _test_server is not None:
            _test_server.stop()
            _test_server = None


@dataclass(frozen=True)
class TestOutput(OperationResult):
    """A fork's test run (recorded in the lock's ``test`` section too)."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"passed", "failed", "errors", "skipped"})
    status: str
    """passed, failed, error, timeout... (a :class:`~forkman.testing.run.TestStatus` value)."""
    ok: bool
    """The tests passed."""
    message: str
    """What happened, in a sentence."""
    tier: str
    """The sandbox tier the tests ran in."""
    passed: int | None = None
    """Tests passed (None: no counts)."""
    failed: int | None = None
    """Tests failed."""
    errors: int | None = None
    """Tests in error."""
    skipped: int | None = None
    """Tests skipped."""
    failures: tuple[JSON, ...] = ()
    """The kept failing tests (id, kind, first line of message)."""
    failures_not_listed: int = 0
    """Failing tests beyond the ones kept."""
    network_failures: int = 0
    """Failures caused by the sandbox's missing network."""
    network_skipped: int = 0
    """Tests skipped for needing the network."""
    log_dir: str | None = None
    """The run's logs."""
    output_log: str | None = None
    """The test command's output."""
    junit: str | None = None
    """The JUnit report."""
    timeout: int | float | None = None
    """The time limit."""
    duration: float | None = None
    """How long the run took, in seconds."""

    def found(self) -> bool:
        return not self.ok


@dataclass(frozen=True)
class TestArgs(OperationArgs[TestOutput]):
    """``test``: the fork's own suite in the sandbox."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    KIND: ClassVar[str] = "test"
    no_sandbox: bool = False
    """Run without the sandbox (with the network, files and secrets)."""


def run_test(project: Project, name: str, args: TestArgs, ctx: ActorContext) -> TestOutput:
    """``test``: the fork's own suite in the sandbox; the outcome is recorded in the lock."""
    from ..store.txn import record_section
    from ..testing.run import (
        TestStatus,
        lock_section,
        outcome_report,
        run_fork_tests,
        sandbox_policy,
    )
    from .forks import require_fork

    entry = require_fork(project, name)
    server = _shared_fork_server()
    policy = sandbox_policy(project.config)
    if not args.no_sandbox:
        server.support.require(policy.min_tier)
    outcome = run_fork_tests(
        project,
        entry,
        server,
        no_sandbox=args.no_sandbox,
        policy=policy,
        observer=ActorObserver(ctx),
    )
    section = lock_section(outcome)
    record_section(project, name, "test", section)
    counts: dict[str, Any] = {
        k: section[k] for k in ("passed", "failed", "errors", "skipped") if k in section
    }
    return TestOutput.from_json(
        {
            "status": outcome.status.value,
            "ok": outcome.status is TestStatus.PASSED,
            "message": outcome.message,
            "tier": outcome.run.tier_label if outcome.run is not None else "-",
            **counts,
            **outcome_report(outcome),
        }
    )


TEST = register_operation(
    TestArgs, TestOutput, run_test, recover=recover_readonly, state=ActorState.TESTING
)


@dataclass(frozen=True)
class AuditOutput(OperationResult):
    """A fork's audit, as recorded in the lock's ``audit`` section."""

    status: str
    """A :class:`~forkman.audit.vulnerabilities.ForkStatus` value."""
    ok: bool
    """No open vulnerability."""
    vulnerabilities: tuple[str, ...]
    """The open vulnerabilities' ids."""
    summary: str
    """One line for ``forkman watch``."""

    def headline(self) -> str | None:
        return self.summary

    def found(self) -> bool:
        return not self.ok


@dataclass(frozen=True)
class AuditArgs(OperationArgs[AuditOutput]):
    """``audit``: record the fork's known vulnerabilities; an unaudited fork fails."""

    KIND: ClassVar[str] = "audit"
    online: bool = False
    """Also ask the online advisory service."""
    database: str | None = None
    """The advisory database file (None: the configured one)."""


@dataclass(frozen=True)
class AuditReportOutput(OperationResult):
    """The whole audit of one fork, for ``forkman audit`` to render."""

    fork: Mapping[str, JSON]
    """The fork's audit (``fork_audit_json``)."""
    when: str
    """When the audit ran (RFC 3339)."""
    database: JSON
    """The advisory database used (``database_json``)."""
    sources: tuple[str, ...]
    """Where the advisories came from."""


@dataclass(frozen=True)
class AuditReportArgs(OperationArgs[AuditReportOutput]):
    """``audit-report``: audit the fork and reply with the whole audit.

    Never a silent pass: an unaudited fork is in the reply and fails the command there.
    """

    KIND: ClassVar[str] = "audit-report"
    online: bool = False
    """Also ask the online advisory service."""
    database: str | None = None
    """The advisory database file (None: the configured one)."""


def _audit(
    project: Project, name: str, args: AuditArgs | AuditReportArgs, ctx: ActorContext
) -> Any:
    from ..audit.vulnerabilities import audit_project

    return audit_project(
        project,
        [name],
        online=args.online,
        database=Path(args.database) if args.database else None,
        observer=ActorObserver(ctx),
    )


def run_audit(project: Project, name: str, args: AuditArgs, ctx: ActorContext) -> AuditOutput:
    """``audit``: this fork's known vulnerabilities; the lock's ``audit`` table is updated.

    Fails closed: a fork that could not be audited (no advisory database, say)
    is a failed operation, not a pass.
    """
    from ..audit.vulnerabilities import ForkStatus, lock_section
    from ..core.errors import SecurityError

    report = _audit(project, name, args, ctx)
    fork = report.forks[0]
    section = lock_section(report, fork)
    if fork.status is ForkStatus.UNAUDITED:
        raise SecurityError(
            f"{name} {fork.version} was NOT audited: {'; '.join(fork.unaudited)}",
            hint="import the advisory database with `forkman db update`",
        )
    open_ids = tuple(section["vulnerabilities"])
    return AuditOutput(
        status=fork.status.value,
        ok=not open_ids,
        vulnerabilities=open_ids,
        summary=fork.status.value
        + (f": {', '.join(open_ids)}" if open_ids else "")
        + (f" (fixed in {fork.fix_version})" if open_ids and fork.fix_version else ""),
    )


def run_audit_report(
    project: Project, name: str, args: AuditReportArgs, ctx: ActorContext
) -> AuditReportOutput:
    """``audit-report``: the whole outcome, rendered by ``forkman audit``."""
    from ..audit.vulnerabilities import database_json, fork_audit_json

    report = _audit(project, name, args, ctx)
    return AuditReportOutput(
        fork=fork_audit_json(report.forks[0]),
        when=report.when,
        database=database_json(report.database),
        sources=tuple(report.sources),
    )


AUDIT = register_operation(
    AuditArgs, AuditOutput, run_audit, recover=recover_readonly, state=ActorState.AUDITING
)
AUDIT_REPORT = register_operation(
    AuditReportArgs,
    AuditReportOutput,
    run_audit_report,
    recover=recover_readonly,
    state=ActorState.AUDITING,
)
