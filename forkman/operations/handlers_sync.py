"""The ``sync`` and ``check-upstream`` operations of fork actors (see :mod:`.handlers`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..actors import ActorContext, ActorState, OperationArgs, OperationResult, register_operation
from ..actors.interface import JSON
from ..model.project import Project
from ._handler_support import ActorObserver, recover_readonly, recover_transaction
from .sync import SyncOutcome


class SyncMode(enum.Enum):
    """What a ``sync`` message asks for."""

    SYNC = "sync"
    """Merge a newer (or the named) release."""
    CONTINUE = "continue"
    """Go on after the conflicts were resolved."""
    ABORT = "abort"
    """Undo a sync stopped at a conflict."""
    REVENDOR = "revendor"
    """Vendor a namespace fork's release again for the namespace's current modules."""


@dataclass(frozen=True)
class ConflictOutput(OperationResult):
    """The patch a sync stopped at."""

    number: int
    """Its position in the series."""
    file: str
    """Its file."""
    subject: str
    """Its subject line."""
    files: tuple[str, ...]
    """The files with conflicts."""
    unmarked: tuple[str, ...] = ()
    """Conflicted files without markers (e.g. deleted on one side)."""


@dataclass(frozen=True)
class SyncOutput(OperationResult):
    """How a sync of one fork ended."""

    name: str
    """The fork."""
    outcome: SyncOutcome
    """synced, up-to-date, conflict, dry-run..."""
    old_version: str | None = None
    """The version before."""
    new_version: str | None = None
    """The version taken (or that would be)."""
    message: str = ""
    """What happened, in a sentence."""
    delta: tuple[str, ...] | None = None
    """The upstream change, summarized."""
    carried: tuple[str, ...] = ()
    """Patches carried forward."""
    dropped: tuple[str, ...] = ()
    """Patches dropped (merged upstream)."""
    risks: tuple[JSON, ...] = ()
    """Risky changes found in the release (finding objects)."""
    conflict: ConflictOutput | None = None
    """The patch the sync stopped at."""

    def actor_state(self) -> ActorState | None:
        return ActorState.CONFLICT if self.outcome is SyncOutcome.CONFLICT else None


@dataclass(frozen=True)
class SyncArgs(OperationArgs[SyncOutput]):
    """``sync``: a sync of the fork, or going on with (or undoing) one stopped at a conflict.

    `expect_versions` maps forks to the version a person reviewed and
    confirmed: the sync takes exactly that release and refuses if the newest
    allowed one changed since.
    """

    KIND: ClassVar[str] = "sync"
    mode: SyncMode = SyncMode.SYNC
    """What to do."""
    to: str | None = None
    """The release (or git ref) to take; None: the newest allowed."""
    yes: bool = False
    """Take it without asking."""
    dry_run: bool = False
    """Only report what the sync would do."""
    expect_versions: Mapping[str, str] = field(default_factory=dict)
    """Fork -> the version that was reviewed."""
    accept_publisher_change: bool = False
    """Take a release signed by another publisher."""
    accept_risk: bool = False
    """Take a release with risky changes."""


def sync_result_json(result: Any) -> dict[str, JSON]:
    """A :class:`forkman.operations.sync.SyncResult` as JSON (for replies and ``--format json``)."""
    return sync_output(result).to_json()


def sync_output(result: Any) -> SyncOutput:
    """A :class:`forkman.operations.sync.SyncResult` as the ``sync`` result."""
    conflict = result.conflict
    return SyncOutput(
        name=result.name,
        outcome=result.outcome,
        old_version=result.old_version,
        new_version=result.new_version,
        message=result.message,
        delta=tuple(result.delta.lines()) if result.delta is not None else None,
        carried=tuple(result.carried),
        dropped=tuple(result.dropped),
        risks=tuple(f.to_dict() for f in result.risks),
        conflict=None
        if conflict is None
        else ConflictOutput(
            conflict.number,
            conflict.file,
            conflict.subject,
            tuple(conflict.files),
            tuple(conflict.unmarked),
        ),
    )


def run_sync(project: Project, name: str, args: SyncArgs, ctx: ActorContext) -> SyncOutput:
    """``sync``: see :class:`SyncArgs`; ``revendor`` carries the fork's patches
    (:func:`forkman.operations.sync.revendor_fork`)."""
    from ..core.errors import BadInput
    from .sync import abort_sync, continue_sync, revendor_fork, sync_fork

    observer = ActorObserver(ctx)
    if args.mode is SyncMode.CONTINUE:
        return sync_output(continue_sync(project, name, observer=observer))
    if args.mode is SyncMode.ABORT:
        return sync_output(abort_sync(project, name, observer=observer))
    if args.mode is SyncMode.REVENDOR:
        return sync_output(revendor_fork(project, name, observer=observer))
    expect = args.expect_versions.get(name)
    confirm = None
    if expect:

        def confirm(target: Any, delta: Any) -> bool:
            if target.version != expect:
                raise BadInput(
                    f"{name}: the release to take is now {target.version}, "
                    f"not the {expect} that was reviewed",
                    hint="run the sync again to review it",
                )
            return True

    result = sync_fork(
        project,
        name,
        to=args.to,
        yes=args.yes,
        dry_run=args.dry_run,
        confirm=confirm,
        accept_publisher_change=args.accept_publisher_change,
        accept_risk=args.accept_risk,
        observer=observer,
    )
    return sync_output(result)


SYNC = register_operation(
    SyncArgs, SyncOutput, run_sync, recover=recover_transaction, state=ActorState.SYNCING
)


@dataclass(frozen=True)
class CheckUpstreamOutput(OperationResult):
    """Whether a newer release is allowed (and whether the patches would merge into it)."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"delta", "dry_run_error"})
    current: str
    """The fork's version."""
    newer: str | None
    """The newest allowed release, when newer."""
    summary: str
    """One line for ``forkman watch``."""
    would_conflict: bool | None = None
    """Whether a patch would conflict (None: not tried)."""
    delta: tuple[str, ...] | None = None
    """The upstream change, summarized (when the dry run ran)."""
    dry_run_error: str | None = None
    """Why the dry run could not run (e.g. unrecorded edits)."""

    def headline(self) -> str | None:
        return self.summary


@dataclass(frozen=True)
class CheckUpstreamArgs(OperationArgs[CheckUpstreamOutput]):
    """``check-upstream``: a dry run; the fork never changes."""

    KIND: ClassVar[str] = "check-upstream"


def run_check_upstream(
    project: Project, name: str, args: CheckUpstreamArgs, ctx: ActorContext
) -> CheckUpstreamOutput:
    """``check-upstream``: is a newer release allowed? A dry run; the fork never changes.

    When the fork is clean and no sync of it waits at a conflict, the dry run
    also says whether its patches would merge into that release.
    """
    from ..core.errors import ForkmanError
    from ..model.lock import GitSource
    from ..store.txn import paused_state
    from .forks import require_fork
    from .sync import resolve_target, sync_fork

    observer = ActorObserver(ctx)
    entry = require_fork(project, name)
    if project.config.policy(name).pinned:
        return CheckUpstreamOutput(entry.version, None, "pinned")
    if isinstance(entry.source, GitSource):
        # a git fork moves to a ref someone names; there is no release list to compare
        return CheckUpstreamOutput(
            entry.version, None, "from git: name a ref with `forkman sync NAME --to REF`"
        )
    target = resolve_target(project, entry, observer=observer)
    if target is None:
        return CheckUpstreamOutput(
            entry.version, None, f"{entry.version} is the newest allowed release"
        )
    out = CheckUpstreamOutput(
        entry.version, target.version, f"{entry.version} -> {target.version} available"
    )
    if paused_state(project, name) is not None:
        return out
    try:
        result = sync_fork(project, name, to=target.version, dry_run=True, observer=observer)
    except ForkmanError as exc:  # e.g. unrecorded edits: the release is still reported
        return CheckUpstreamOutput(out.current, out.newer, out.summary, dry_run_error=exc.message)
    conflict = result.conflict
    summary = out.summary
    if conflict is not None:
        summary = f"{summary}; patch {conflict.number} ({conflict.subject}) would conflict"
    return CheckUpstreamOutput(
        out.current,
        out.newer,
        summary,
        would_conflict=conflict is not None,
        delta=tuple(result.delta.lines()) if result.delta is not None else None,
    )


CHECK_UPSTREAM = register_operation(
    CheckUpstreamArgs,
    CheckUpstreamOutput,
    run_check_upstream,
    recover=recover_readonly,
    state=ActorState.FETCHING,
)
