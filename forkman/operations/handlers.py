"""Fork operations as messages to fork actors.

Every command that changes or rebuilds a fork sends a message to that fork's
actor (:mod:`forkman.actors`): one message at a time per fork, forks in
parallel, the operation's intent and outcome recorded durably. The functions
here adapt the core's library calls to the actor contract: a JSON-able
result, idempotent runs, and a ``recover`` hook for an operation whose process
died (the fork transaction journal decides whether it completed or is undone).

They are module-level functions so the Ray engine can ship them to workers.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..actors import ActorState, register_operation
from ..actors.interface import JSON, ActorContext, Intent
from ..model.config import DistPreference
from ..model.project import Project


class _ActorObserver:
    """Forwards steps to the actor context (durable, shown live); keeps warnings."""

    def __init__(self, ctx: ActorContext) -> None:
        self.ctx = ctx
        self.warnings: list[str] = []

    def step(self, subject: str, text: str) -> None:
        self.ctx.step(text)

    def progress(self, subject: str, done: int, total: int | None) -> None:
        self.ctx.observer.progress(subject, done, total)

    def warning(self, text: str) -> None:
        self.warnings.append(text)
        self.ctx.observer.warning(text)


def _recover_transaction(
    project: Project, name: str, intent: Intent, ctx: ActorContext
) -> Mapping[str, JSON]:
    """An interrupted write: the transaction journal completes or undoes it."""
    from ..store.txn import recover

    lines = recover(project)
    return {"recovered": list(lines), "interrupted": intent.message.kind}


def _recover_readonly(
    project: Project, name: str, intent: Intent, ctx: ActorContext
) -> Mapping[str, JSON]:
    """An interrupted read-only operation left nothing to undo."""
    return {"recovered": [], "interrupted": intent.message.kind}


def run_fork(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``fork``: args spec, index_url, prefer, prereleases, layout, adopt, expect_modules."""
    from .forks import fork

    observer = _ActorObserver(ctx)
    prefer = args.get("prefer")
    entry = fork(
        project,
        str(args["spec"]),
        name=name,
        index_url=args.get("index_url"),
        prefer=DistPreference(prefer) if prefer else None,
        prereleases=args.get("prereleases"),
        layout=args.get("layout"),
        adopt=bool(args.get("adopt")),
        expect_modules=[str(m) for m in args.get("expect_modules") or []],
        observer=observer,
    )
    return {"version": entry.version, "path": entry.path, "warnings": observer.warnings}


def run_unfork(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``unfork``."""
    from .forks import unfork

    entry = unfork(project, name, observer=_ActorObserver(ctx))
    return {"version": entry.version, "path": entry.path}


def run_verify(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``verify``: rebuild from the recorded source and compare (a finding is not an error)."""
    from .verify import verify

    result = verify(project, [name], observer=_ActorObserver(ctx))[0]
    return {
        "ok": result.ok,
        "stage": result.stage.value if result.stage else None,
        "message": result.message,
        "hint": result.hint,
    }


FORK = register_operation("fork", run_fork, recover=_recover_transaction, state=ActorState.FETCHING)
UNFORK = register_operation(
    "unfork", run_unfork, recover=_recover_transaction, state=ActorState.WORKING
)
VERIFY = register_operation(
    "verify", run_verify, recover=_recover_readonly, state=ActorState.VERIFYING
)


_test_server: Any = None
_test_server_guard = threading.Lock()


def _shared_fork_server() -> Any:
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


def run_test(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``test``: the fork's own suite in the sandbox; the outcome is recorded in the lock."""
    from ..store.txn import update_lock
    from ..testing.run import (
        TestStatus,
        lock_section,
        outcome_report,
        run_fork_tests,
        sandbox_policy,
    )
    from .forks import require_fork

    entry = require_fork(project, name)
    no_sandbox = bool(args.get("no_sandbox"))
    server = _shared_fork_server()
    policy = sandbox_policy(project.config)
    if not no_sandbox:
        server.support.require(policy.min_tier)
    outcome = run_fork_tests(
        project, entry, server, no_sandbox=no_sandbox, policy=policy, observer=_ActorObserver(ctx)
    )
    section = lock_section(outcome)

    def record(lock: Any) -> Any:
        current = lock.get(name)
        return lock if current is None else lock.with_entry(current.with_section("test", section))

    update_lock(project, record)
    return {
        "status": outcome.status.value,
        "ok": outcome.status is TestStatus.PASSED,
        "message": outcome.message,
        "tier": outcome.run.tier_label if outcome.run is not None else "-",
        **({k: section[k] for k in ("passed", "failed", "errors", "skipped") if k in section}),
        **outcome_report(outcome),
    }


TEST = register_operation("test", run_test, recover=_recover_readonly, state=ActorState.TESTING)


def sync_result_json(result: Any) -> dict[str, JSON]:
    """A :class:`forkman.operations.sync.SyncResult` as JSON (for replies and ``--format json``)."""
    conflict = result.conflict
    return {
        "name": result.name,
        "outcome": result.outcome.value,
        "old_version": result.old_version,
        "new_version": result.new_version,
        "message": result.message,
        "delta": result.delta.lines() if result.delta is not None else None,
        "carried": list(result.carried),
        "dropped": list(result.dropped),
        "risks": [f.to_dict() for f in result.risks],
        "conflict": None
        if conflict is None
        else {
            "number": conflict.number,
            "file": conflict.file,
            "subject": conflict.subject,
            "files": list(conflict.files),
            "unmarked": list(conflict.unmarked),
        },
    }


def run_sync(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``sync``: args mode (sync|continue|abort|revendor), to, yes, dry_run, expect_versions,
    accept_publisher_change, accept_risk.

    ``revendor`` vendors a namespace fork's release again for the namespace's
    current modules, carrying its patches (:func:`forkman.operations.sync.revendor_fork`).

    `expect_versions` maps forks to the version a person reviewed and confirmed:
    the sync takes exactly that release and refuses if the newest allowed one
    changed since.
    """
    from ..core.errors import BadInput
    from .sync import SyncOutcome, abort_sync, continue_sync, revendor_fork, sync_fork

    observer = _ActorObserver(ctx)
    mode = args.get("mode", "sync")
    if mode == "continue":
        result = continue_sync(project, name, observer=observer)
    elif mode == "abort":
        result = abort_sync(project, name, observer=observer)
    elif mode == "revendor":
        result = revendor_fork(project, name, observer=observer)
    else:
        expect = (args.get("expect_versions") or {}).get(name)
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
            to=args.get("to"),
            yes=bool(args.get("yes")),
            dry_run=bool(args.get("dry_run")),
            confirm=confirm,
            accept_publisher_change=bool(args.get("accept_publisher_change")),
            accept_risk=bool(args.get("accept_risk")),
            observer=observer,
        )
    out = sync_result_json(result)
    if result.outcome is SyncOutcome.CONFLICT:
        out["state"] = "conflict"
    return out


SYNC = register_operation("sync", run_sync, recover=_recover_transaction, state=ActorState.SYNCING)


def run_patch(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``patch``: args mode (record|drop|move|edit|import) and that mode's fields.

    record: message, fixes, origin, forwarded, author; drop: number; move:
    number, to; edit: number, message, fixes, origin, forwarded, author;
    import: files (absolute paths), before_rewrite.
    """
    from pathlib import Path

    from ..core.errors import BadInput
    from . import patches as _patches

    observer = _ActorObserver(ctx)
    mode = args.get("mode", "record")
    fixes = list(args.get("fixes") or [])
    if mode == "record":
        record = _patches.record_patch(
            project,
            name,
            str(args.get("message") or ""),
            fixes=fixes,
            origin=args.get("origin") or "",
            forwarded=args.get("forwarded") or "no",
            author=args.get("author"),
            observer=observer,
        )
        return {"mode": mode, "file": record.file, "patches": [record.file]}
    if mode == "drop":
        entry = _patches.drop_patch(project, name, int(args["number"]), observer)
    elif mode == "move":
        entry = _patches.move_patch(project, name, int(args["number"]), int(args["to"]), observer)
    elif mode == "edit":
        entry = _patches.edit_patch(
            project,
            name,
            int(args["number"]),
            message=args.get("message"),
            fixes=fixes or None,
            origin=args.get("origin"),
            forwarded=args.get("forwarded"),
            author=args.get("author"),
            observer=observer,
        )
    elif mode == "import":
        files = [Path(f) for f in args.get("files") or []]
        entry = _patches.import_patches(
            project,
            name,
            files,
            before_rewrite=bool(args.get("before_rewrite")),
            observer=observer,
        )
        imported = entry.patches[len(entry.patches) - len(files) :]
        return {"mode": mode, "patches": [p.file for p in imported]}
    else:
        raise BadInput(f"unknown patch mode {mode!r}")
    return {"mode": mode, "patches": [p.file for p in entry.patches]}


def run_restore(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``restore``: discard unrecorded edits; the paths restored."""
    from .patches import restore

    return {"restored": restore(project, name, observer=_ActorObserver(ctx))}


PATCH = register_operation(
    "patch", run_patch, recover=_recover_transaction, state=ActorState.PATCHING
)
RESTORE = register_operation(
    "restore", run_restore, recover=_recover_transaction, state=ActorState.WORKING
)


def run_check_upstream(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``check-upstream``: is a newer release allowed? A dry run; the fork never changes.

    When the fork is clean and no sync of it waits at a conflict, the dry run
    also says whether its patches would merge into that release.
    """
    from ..core.errors import ForkmanError
    from ..model.lock import GitSource
    from ..store.txn import paused_state
    from .forks import require_fork
    from .sync import resolve_target, sync_fork

    observer = _ActorObserver(ctx)
    entry = require_fork(project, name)
    if project.config.policy(name).pinned:
        return {"current": entry.version, "newer": None, "summary": "pinned"}
    if isinstance(entry.source, GitSource):
        # a git fork moves to a ref someone names; there is no release list to compare
        return {
            "current": entry.version,
            "newer": None,
            "summary": "from git: name a ref with `forkman sync NAME --to REF`",
        }
    target = resolve_target(project, entry, observer=observer)
    if target is None:
        return {
            "current": entry.version,
            "newer": None,
            "summary": f"{entry.version} is the newest allowed release",
        }
    out: dict[str, JSON] = {
        "current": entry.version,
        "newer": target.version,
        "summary": f"{entry.version} -> {target.version} available",
        "would_conflict": None,
    }
    if paused_state(project, name) is None:
        try:
            result = sync_fork(project, name, to=target.version, dry_run=True, observer=observer)
        except ForkmanError as exc:  # e.g. unrecorded edits: the release is still reported
            out["dry_run_error"] = exc.message
        else:
            conflict = result.conflict
            out["would_conflict"] = conflict is not None
            out["delta"] = result.delta.lines() if result.delta is not None else None
            if conflict is not None:
                out["summary"] = (
                    f"{out['summary']}; patch {conflict.number} ({conflict.subject}) would conflict"
                )
    return out


def run_audit(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``audit``: this fork's known vulnerabilities; the lock's ``audit`` table is updated.

    args: online, database (a path), report (reply with the full audit, for
    `forkman audit`, instead of failing on an unaudited fork).

    Fails closed: a fork that could not be audited (no advisory database, say)
    is a failed operation, not a pass.
    """
    from ..audit.vulnerabilities import ForkStatus, audit_project, lock_section
    from ..core.errors import SecurityError

    observer = _ActorObserver(ctx)
    database = args.get("database")
    report = audit_project(
        project,
        [name],
        online=bool(args.get("online")),
        database=Path(database) if database else None,
        observer=observer,
    )
    fork = report.forks[0]
    if args.get("report"):
        # `forkman audit`: the whole outcome, rendered by the command (never a silent pass:
        # an unaudited fork is in the reply and fails the command there)
        from ..audit.vulnerabilities import database_json, fork_audit_json

        return {
            "fork": fork_audit_json(fork),
            "when": report.when,
            "database": database_json(report.database),
            "sources": list(report.sources),
        }
    section = lock_section(report, fork)
    if fork.status is ForkStatus.UNAUDITED:
        raise SecurityError(
            f"{name} {fork.version} was NOT audited: {'; '.join(fork.unaudited)}",
            hint="import the advisory database with `forkman db update`",
        )
    open_ids = list(section["vulnerabilities"])
    return {
        "status": fork.status.value,
        "ok": not open_ids,
        "vulnerabilities": open_ids,
        "summary": fork.status.value
        + (f": {', '.join(open_ids)}" if open_ids else "")
        + (f" (fixed in {fork.fix_version})" if open_ids and fork.fix_version else ""),
    }


CHECK_UPSTREAM = register_operation(
    "check-upstream", run_check_upstream, recover=_recover_readonly, state=ActorState.FETCHING
)
AUDIT = register_operation("audit", run_audit, recover=_recover_readonly, state=ActorState.AUDITING)
