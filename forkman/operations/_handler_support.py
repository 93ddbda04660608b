"""What every fork-actor operation shares: the observer adapter and the recoveries."""

from __future__ import annotations

from ..actors import ActorContext, Intent, Recovered
from ..model.project import Project


class ActorObserver:
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


def recover_transaction(
    project: Project, name: str, intent: Intent, ctx: ActorContext
) -> Recovered:
    """An interrupted write: the transaction journal completes or undoes it."""
    from ..store.txn import recover

    lines = recover(project)
    return Recovered(interrupted=intent.message.kind, recovered=tuple(lines))


def recover_readonly(project: Project, name: str, intent: Intent, ctx: ActorContext) -> Recovered:
    """An interrupted read-only operation left nothing to undo."""
    return Recovered(interrupted=intent.message.kind)
