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
