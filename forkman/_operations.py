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
from typing import Any

from ._config import DistPreference
from ._project import Project
from .actors import ActorState, register_operation
from .actors.interface import JSON, ActorContext, Intent


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
    from ._txn import recover

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
    """``fork``: args spec, index_url, prefer, prereleases, layout."""
    from ._forks import fork

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
        observer=observer,
    )
    return {"version": entry.version, "path": entry.path, "warnings": observer.warnings}


def run_unfork(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``unfork``."""
    from ._forks import unfork

    entry = unfork(project, name, observer=_ActorObserver(ctx))
    return {"version": entry.version, "path": entry.path}


def run_verify(
    project: Project, name: str, args: Mapping[str, Any], ctx: ActorContext
) -> Mapping[str, JSON]:
    """``verify``: rebuild from the recorded source and compare (a finding is not an error)."""
    from ._verify import verify

    result = verify(project, [name], observer=_ActorObserver(ctx))[0]
    return {
        "ok": result.ok,
        "stage": result.stage.value if result.stage else None,
        "message": result.message,
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
    from .sandbox import ForkServer

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
    from ._forks import require_fork
    from ._testrun import TestStatus, lock_section, run_fork_tests, sandbox_policy
    from ._txn import update_lock

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
    }


TEST = register_operation("test", run_test, recover=_recover_readonly, state=ActorState.TESTING)


def sync_result_json(result: Any) -> dict[str, JSON]:
    """A :class:`forkman._sync.SyncResult` as JSON (for replies and ``--format json``)."""
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
    """``sync``: args mode (sync|continue|abort), to, yes, dry_run, expect_versions,
    accept_publisher_change, accept_risk.

    `expect_versions` maps forks to the version a person reviewed and confirmed:
    the sync takes exactly that release and refuses if the newest allowed one
    changed since.
    """
    from ._errors import BadInput
    from ._sync import SyncOutcome, abort_sync, continue_sync, sync_fork

    observer = _ActorObserver(ctx)
    mode = args.get("mode", "sync")
    if mode == "continue":
        result = continue_sync(project, name, observer=observer)
    elif mode == "abort":
        result = abort_sync(project, name, observer=observer)
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
