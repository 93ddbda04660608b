"""The per-fork actor: every operation on a fork is a message to it.

Operations are registered by name. A command routes work through the fork
actors with::

    from forkman.actors import Message, run_for_forks
    replies = run_for_forks(project, names, "sync", {"to": None}, jobs=jobs,
                            engine=ctx.obj.engine, observer=observer)

which runs ``operation.run(project, name, args, actx)`` once per fork, forks
in parallel (at most `jobs`), one operation at a time per fork, journaled and
recoverable. An operation is a module-level function (so it can be shipped to
Ray workers) registered with :func:`register_operation` or listed in
:data:`OPERATIONS` (imported on first use).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from ..core.errors import BadInput, ConfigError, NotFound
from ..core.observer import Observer
from . import _keylock
from .embedded import DB_NAME, LOCKS_DIR, EmbeddedEngine
from .interface import JSON, Actor, ActorContext, ActorState, Engine, Intent, Message, Reply

if TYPE_CHECKING:
    from ..model.project import Project

FORK_PREFIX = "fork:"

OperationFn = Callable[["Project", str, Mapping[str, JSON], ActorContext], Mapping[str, JSON]]
"""``fn(project, name, args, ctx) -> result``: one operation on one fork."""
RecoverFn = Callable[["Project", str, Intent, ActorContext], Mapping[str, JSON]]
"""``recover(project, name, intent, ctx) -> result``: finish or undo an interrupted run."""


@dataclass(frozen=True)
class Operation:
    """An operation fork actors can perform."""

    name: str
    """The message kind, e.g. ``"sync"``."""
    run: OperationFn
    """Does the work; idempotent; raises ForkmanError on failure."""
    recover: RecoverFn | None = None
    """Resumes or rolls back an interrupted run; None: run again (resume)."""
    state: ActorState = ActorState.WORKING
    """The state shown while it runs."""


# Operations shipped with forkman, imported on first use: name -> "module:attribute"
# (an :class:`Operation`). Add one line per operation.
OPERATIONS: dict[str, str] = {
    "fork": "forkman.operations.handlers:FORK",
    "unfork": "forkman.operations.handlers:UNFORK",
    "verify": "forkman.operations.handlers:VERIFY",
    "test": "forkman.operations.handlers:TEST",
    "sync": "forkman.operations.handlers:SYNC",
    "patch": "forkman.operations.handlers:PATCH",
    "restore": "forkman.operations.handlers:RESTORE",
    "check-upstream": "forkman.operations.handlers:CHECK_UPSTREAM",
    "audit": "forkman.operations.handlers:AUDIT",
}

_DEFAULT_STATES = {
    "fork": ActorState.FETCHING,
    "check-upstream": ActorState.FETCHING,
    "patch": ActorState.PATCHING,
    "sync": ActorState.SYNCING,
    "test": ActorState.TESTING,
    "audit": ActorState.AUDITING,
    "verify": ActorState.VERIFYING,
}
_registry: dict[str, Operation] = {}
_registry_guard = threading.Lock()


def register_operation(
    name: str,
    run: OperationFn,
    *,
    recover: RecoverFn | None = None,
    state: ActorState | None = None,
) -> Operation:
    """Make `name` an operation of fork actors (replacing an earlier registration)."""
    operation = Operation(
        name, run, recover, state or _DEFAULT_STATES.get(name, ActorState.WORKING)
    )
    with _registry_guard:
        _registry[name] = operation
    return operation


def operation(name: str) -> Operation:
    """The operation registered as `name` (importing it from :data:`OPERATIONS` if needed)."""
    with _registry_guard:
        found = _registry.get(name)
    if found is not None:
        return found
    target = OPERATIONS.get(name)
    if target is None:
        raise NotFound(
            f"fork actors have no operation {name!r}",
            hint="known operations: " + (", ".join(sorted({*_registry, *OPERATIONS})) or "none"),
        )
    module_name, attr = target.split(":")
    loaded = getattr(importlib.import_module(module_name), attr)
    if not isinstance(loaded, Operation):
        raise TypeError(f"{target} is not an Operation")
    with _registry_guard:
        _registry.setdefault(name, loaded)
    return loaded


def registered_operations() -> dict[str, Operation]:
    """A snapshot of the operations registered in this process."""
    with _registry_guard:
        return dict(_registry)


def fork_key(name: str) -> str:
    """The actor key of fork `name`."""
    return FORK_PREFIX + name


class ForkActor(Actor):
    """One fork's actor: dispatches messages to registered operations."""

    def __init__(self, key: str, project: Project, operations: Mapping[str, Operation]) -> None:
        super().__init__(key)
        if not key.startswith(FORK_PREFIX):
            raise BadInput(f"{key!r} is not a fork actor key")
        self.name = key[len(FORK_PREFIX) :]
        self.project = project
        self._operations = operations

    def _operation(self, kind: str) -> Operation:
        return self._operations.get(kind) or operation(kind)

    def state_for(self, message: Message) -> ActorState:
        try:
            return self._operation(message.kind).state
        except NotFound:
            return ActorState.WORKING

    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, JSON]:
        return self._operation(message.kind).run(self.project, self.name, message.args, ctx)

    def recover(self, ctx: ActorContext, intent: Intent) -> Mapping[str, JSON]:
        op = self._operation(intent.message.kind)
        if op.recover is not None:
            return op.recover(self.project, self.name, intent, ctx)
        return op.run(self.project, self.name, intent.message.args, ctx)


@dataclass(frozen=True)
class ForkActorFactory:
    """Makes fork actors for one project (picklable, for the Ray engine)."""

    project: Project
    """The consumer project."""
    operations: Mapping[str, Operation] = field(default_factory=dict)
    """Operations registered in the process that built the factory."""

    def __call__(self, key: str) -> Actor:
        return ForkActor(key, self.project, self.operations)


class ForkActorState(NamedTuple):
    """What ``forkman status`` shows per fork."""

    state: ActorState
    """idle, syncing, testing, conflict, failed, ..."""
    step: str
    """The last step reported (or the interrupted operation)."""
    updated: float
    """When it last changed (seconds since the epoch)."""
    last_result: Mapping[str, JSON] | None
    """The last reply, as stored (``ok``, ``result``, ``error``...)."""

    def describe(self, now: float) -> str:
        """One line for ``forkman status``: ``syncing (merging 2.0, 12s)``, ``failed: why``."""
        age = max(0, int(now - self.updated))
        since = f"{age}s" if age < 120 else f"{age // 60}m" if age < 7200 else f"{age // 3600}h"
        if self.state is ActorState.FAILED and self.last_result:
            return f"failed: {self.last_result.get('error')!s}"
        if self.state.busy:
            return f"{self.state.value} ({self.step + ', ' if self.step else ''}{since})"
        if self.state is ActorState.INTERRUPTED:
            return f"interrupted: {self.step}"
        return str(self.state.value)


def open_engine(
    project: Project,
    *,
    engine: str = "embedded",
    jobs: int | None = None,
    wait: float = 0.0,
    observer: Observer | None = None,
    durability: str = "normal",
) -> Engine:
    """The fork actors' engine for `project` (``embedded`` or ``ray``)."""
    factory = ForkActorFactory(project, registered_operations())
    state_dir = project.ensure_state_dir()
    if engine == "embedded":
        return EmbeddedEngine(
            state_dir, factory, jobs=jobs, wait=wait, observer=observer, durability=durability
        )
    if engine == "ray":
        from .ray_engine import RayEngine

        address = None
        if project.pyproject.is_file():
            address = project.config.section("ray").get("address")
            if address is not None and not isinstance(address, str):
                raise ConfigError("[tool.forkman.ray].address must be a string like 'host:6379'")
        return RayEngine(
            state_dir, factory, jobs=jobs, wait=wait, observer=observer, address=address
        )
    raise BadInput(f"unknown actor engine {engine!r}", hint="use --engine embedded or --engine ray")


def run_for_forks(
    project: Project,
    names: Iterable[str],
    kind: str,
    args: Mapping[str, JSON] | None = None,
    *,
    jobs: int | None = None,
    engine: Engine | str = "embedded",
    observer: Observer | None = None,
    wait: float = 0.0,
    per_fork: Mapping[str, Mapping[str, JSON]] | None = None,
) -> dict[str, Reply]:
    """Run operation `kind` on every fork in `names` through their actors; replies by name.

    Each fork's message carries `args`, updated with its own `per_fork` entry.
    A reply with ``ok=False`` is a failed fork (its ``error`` says why). A
    fork that could not run at all because another process holds it
    (:class:`~forkman.core.errors.Busy`) gets a failed reply too, with
    ``result["error_kind"] == "Busy"``: the other forks' work is done and
    reported, never lost to one busy fork.
    """
    operation(kind)  # unknown operation: fail before anything starts
    names = list(dict.fromkeys(names))
    own = per_fork or {}
    messages = {
        fork_key(name): Message(kind, {**(args or {}), **own.get(name, {})}) for name in names
    }
    if isinstance(engine, Engine):
        replies = _gather(engine, messages)
    else:
        with open_engine(project, engine=engine, jobs=jobs, wait=wait, observer=observer) as eng:
            replies = _gather(eng, messages)
    return {key[len(FORK_PREFIX) :]: reply for key, reply in replies.items()}


def _gather(engine: Engine, messages: Mapping[str, Message]) -> dict[str, Reply]:
    """Send every message, wait for every reply; a busy fork's is a failed reply."""
    from ..core.errors import Busy

    futures = {key: engine.send(key, message) for key, message in messages.items()}
    replies: dict[str, Reply] = {}
    for key, future in futures.items():
        try:
            replies[key] = future.result()
        except Busy as exc:
            error = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            replies[key] = Reply(
                key,
                messages[key].id,
                False,
                ActorState.FAILED,
                {
                    "error_message": exc.message,
                    "error_hint": exc.hint,
                    "error_kind": "Busy",
                    "error_type": exc.to_json()["type"],
                    "exit_code": exc.exit_code,
                },
                error,
            )
    return replies


def actor_states(project: Project) -> dict[str, ForkActorState]:
    """Each fork actor's durable state (empty before any actor ran); never blocks on locks."""
    if not (project.state_dir / DB_NAME).exists():
        return {}
    from ._store import StateStore

    store = StateStore(project.state_dir / DB_NAME, wait=2.0)
    try:
        rows = store.statuses(FORK_PREFIX)
    finally:
        store.close()
    states: dict[str, ForkActorState] = {}
    for key, status in rows.items():
        state, step = status.state, status.step
        if status.intent is not None:
            kind = status.intent.message.kind
            step = step or kind
            if not _held_elsewhere(project, key):
                # no process holds the fork: its operation died with its process
                state = ActorState.INTERRUPTED
                step = f"{kind} interrupted at {step!r}; the next command on this fork recovers it"
        states[key[len(FORK_PREFIX) :]] = ForkActorState(
            state, step, status.updated, status.last_result
        )
    return states


def _held_elsewhere(project: Project, key: str) -> bool:
    """Whether a live process holds `key` (a momentary, non-blocking probe)."""
    from ..core.errors import Busy

    lock_dir = project.state_dir / LOCKS_DIR
    if not lock_dir.is_dir():
        return False
    try:
        _keylock.acquire(lock_dir, key, wait=0, what=key).release()
    except Busy:
        return True
    return False


@contextlib.contextmanager
def shared_file_guard(project: Project, name: str, *, wait: float = 60.0) -> Iterator[None]:
    """Serialize read-modify-write of a file all forks share (e.g. ``pyproject.toml``).

    Fork actors run in parallel threads and processes. Every writer of a
    given file must use the same mutex: the one that guards ``forkman.lock``
    is the fork transaction's (``forkman.store.txn``), so use this for other files.
    """
    with _keylock.exclusive(
        project.ensure_state_dir() / LOCKS_DIR, f"file:{name}", wait=wait, what=name
    ):
        yield
