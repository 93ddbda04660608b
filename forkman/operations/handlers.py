"""Fork operations as messages to fork actors.

Every command that changes or rebuilds a fork sends a message to that fork's
actor (:mod:`forkman.actors`): one message at a time per fork, forks in
parallel, the operation's intent and outcome recorded durably. Each
operation has one frozen argument type and one frozen result type (both
round-trip through JSON), registered with its handler when its module is
imported: importing this module registers every operation forkman ships
(``fork``, ``unfork``, ``verify``, ``restore`` here; ``sync`` and
``check-upstream`` in :mod:`.handlers_sync`; ``patch`` in
:mod:`.handlers_patch`; ``test``, ``audit`` and ``audit-report`` in
:mod:`.handlers_checks`), and re-exports their types.

The handlers adapt the core's library calls to the actor contract: a typed
result, idempotent runs, and a ``recover`` hook for an operation whose
process died (the fork transaction journal decides whether it completed or
is undone). They are module-level functions so the Ray engine can ship them
to workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..actors import ActorContext, ActorState, OperationArgs, OperationResult, register_operation
from ..model.config import DistPreference
from ..model.project import Project
from ._handler_support import ActorObserver, recover_readonly, recover_transaction
from .handlers_checks import (
    AUDIT,
    AUDIT_REPORT,
    TEST,
    AuditArgs,
    AuditOutput,
    AuditReportArgs,
    AuditReportOutput,
    TestArgs,
    TestOutput,
    stop_test_server,
)
from .handlers_patch import PATCH, PatchArgs, PatchMode, PatchOutput
from .handlers_sync import (
    CHECK_UPSTREAM,
    SYNC,
    CheckUpstreamArgs,
    CheckUpstreamOutput,
    ConflictOutput,
    SyncArgs,
    SyncMode,
    SyncOutput,
    sync_result_json,
)

__all__ = [
    "AUDIT",
    "AUDIT_REPORT",
    "CHECK_UPSTREAM",
    "FORK",
    "PATCH",
    "RESTORE",
    "SYNC",
    "TEST",
    "UNFORK",
    "VERIFY",
    "AuditArgs",
    "AuditOutput",
    "AuditReportArgs",
    "AuditReportOutput",
    "CheckUpstreamArgs",
    "CheckUpstreamOutput",
    "ConflictOutput",
    "ForkArgs",
    "ForkOutput",
    "PatchArgs",
    "PatchMode",
    "PatchOutput",
    "RestoreArgs",
    "RestoreOutput",
    "SyncArgs",
    "SyncMode",
    "SyncOutput",
    "TestArgs",
    "TestOutput",
    "UnforkArgs",
    "UnforkOutput",
    "VerifyArgs",
    "VerifyOutput",
    "stop_test_server",
    "sync_result_json",
]


@dataclass(frozen=True)
class ForkOutput(OperationResult):
    """What ``fork`` made."""

    version: str
    """The version forked."""
    path: str
    """The vendored tree, relative to the project."""
    warnings: tuple[str, ...] = ()
    """Warnings the fork raised (shown by the caller)."""


@dataclass(frozen=True)
class ForkArgs(OperationArgs[ForkOutput]):
    """``fork``: make the fork from a requirement or ``git+URL@REF``."""

    KIND: ClassVar[str] = "fork"
    spec: str
    """The requirement or git URL."""
    index_url: str | None = None
    """Fetch from this index instead of the configured one."""
    prefer: DistPreference | None = None
    """sdist or wheel (None: the configured preference)."""
    prereleases: bool | None = None
    """Allow pre-releases (None: the configured policy)."""
    layout: str | None = None
    """``project`` or ``namespace`` (None: decided from the configuration)."""
    adopt: bool = False
    """Take over a tree another vendoring tool wrote."""
    expect_modules: tuple[str, ...] = ()
    """The modules the configuration expects the fork to provide."""


def run_fork(project: Project, name: str, args: ForkArgs, ctx: ActorContext) -> ForkOutput:
    """``fork``: fetch, check and vendor the release."""
    from .forks import fork

    observer = ActorObserver(ctx)
    entry = fork(
        project,
        args.spec,
        name=name,
        index_url=args.index_url,
        prefer=args.prefer,
        prereleases=args.prereleases,
        layout=args.layout,
        adopt=args.adopt,
        expect_modules=list(args.expect_modules),
        observer=observer,
    )
    return ForkOutput(entry.version, entry.path, tuple(observer.warnings))


@dataclass(frozen=True)
class UnforkOutput(OperationResult):
    """What ``unfork`` removed."""

    version: str
    """The version the fork was at."""
    path: str
    """The vendored tree removed."""


@dataclass(frozen=True)
class UnforkArgs(OperationArgs[UnforkOutput]):
    """``unfork``: remove the fork (tree, patches, history, lock entry)."""

    KIND: ClassVar[str] = "unfork"


def run_unfork(project: Project, name: str, args: UnforkArgs, ctx: ActorContext) -> UnforkOutput:
    """``unfork``."""
    from .forks import unfork

    entry = unfork(project, name, observer=ActorObserver(ctx))
    return UnforkOutput(entry.version, entry.path)


@dataclass(frozen=True)
class VerifyOutput(OperationResult):
    """What ``verify`` found (a finding is not an error)."""

    ok: bool
    """The fork rebuilds bit for bit."""
    stage: str | None
    """The stage that failed (a :class:`~forkman.operations.verify.VerifyStage` value)."""
    message: str
    """What differs."""
    hint: str
    """What to do about it."""

    def found(self) -> bool:
        return not self.ok


@dataclass(frozen=True)
class VerifyArgs(OperationArgs[VerifyOutput]):
    """``verify``: rebuild from the recorded source and compare."""

    KIND: ClassVar[str] = "verify"


def run_verify(project: Project, name: str, args: VerifyArgs, ctx: ActorContext) -> VerifyOutput:
    """``verify``: rebuild from the recorded source and compare."""
    from .verify import verify

    result = verify(project, [name], observer=ActorObserver(ctx))[0]
    return VerifyOutput(
        ok=result.ok,
        stage=result.stage.value if result.stage else None,
        message=result.message,
        hint=result.hint,
    )


@dataclass(frozen=True)
class RestoreOutput(OperationResult):
    """What ``restore`` discarded."""

    restored: tuple[str, ...]
    """The paths restored."""


@dataclass(frozen=True)
class RestoreArgs(OperationArgs[RestoreOutput]):
    """``restore``: discard unrecorded edits in the fork's tree."""

    KIND: ClassVar[str] = "restore"


def run_restore(project: Project, name: str, args: RestoreArgs, ctx: ActorContext) -> RestoreOutput:
    """``restore``: discard unrecorded edits; the paths restored."""
    from .patches import restore

    return RestoreOutput(tuple(restore(project, name, observer=ActorObserver(ctx))))


FORK = register_operation(
    ForkArgs, ForkOutput, run_fork, recover=recover_transaction, state=ActorState.FETCHING
)
UNFORK = register_operation(
    UnforkArgs, UnforkOutput, run_unfork, recover=recover_transaction, state=ActorState.WORKING
)
VERIFY = register_operation(
    VerifyArgs, VerifyOutput, run_verify, recover=recover_readonly, state=ActorState.VERIFYING
)
RESTORE = register_operation(
    RestoreArgs, RestoreOutput, run_restore, recover=recover_transaction, state=ActorState.WORKING
)
