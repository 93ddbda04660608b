"""The per-fork actor: every operation on a fork is a message to it.

Operations are registered by their message types
(:mod:`forkman.actors.registry`). A caller routes work through the fork
actors with::

    from forkman.operations.handlers import SyncArgs
    replies = run_for_forks(project, names, SyncArgs(to=None), jobs=jobs,
                            engine="embedded", observer=observer)
    replies["attrs"].value   # the SyncOutput, or None when the fork failed

which runs the operation once per fork, forks in parallel (at most `jobs`),
one operation at a time per fork, journaled and recoverable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..core.errors import BadInput, ConfigError, NotFound
from ..core.observer import Observer
from . import _keylock
from .embedded import DB_NAME, LOCKS_DIR, EmbeddedEngine
from .interface import JSON, Actor, ActorContext, ActorState, Engine, Intent, Message, Reply
from .messages import OperationArgs, OperationResult
from .registry import (
    ForkReply,
    Operation,
    operation_for,
    operation_for_kind,
    registered_operations,
    result_json,
)

if TYPE_CHECKING:
    from ..model.project import Project

FORK_PREFIX = "fork:"
R = TypeVar("R", bound=OperationResult)


def fork_key(name: str) -> str:
    """The actor key of fork `name`."""
    return FORK_PREFIX + name


class ForkActor(Actor):
    """One fork's actor: dispatches messages to the operations registered for their kinds."""

    def __init__(
        self, key: str, project: Project, operations: Mapping[str, Operation[Any, Any]]
    ) -> None:
        super().__init__(key)
        if not key.startswith(FORK_PREFIX):
            raise BadInput(f"{key!r} is not a fork actor key")
        self.name = key[len(FORK_PREFIX) :]
        self.project = project
        self._operations = operations

    def _operation(self, kind: str) -> Operation[Any, Any]:
        return self._operations.get(kind) or operation_for_kind(kind)

    def state_for(self, message: Message) -> ActorState:
        try:
            return self._operation(message.kind).state
        except NotFound:
            return ActorState.WORKING

    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, JSON]:
        op = self._operation(message.kind)
        result = op.run(self.project, self.name, op.args.from_json(message.args), ctx)
        return result_json(result)

    def recover(self, ctx: ActorContext, intent: Intent) -> Mapping[str, JSON]:
        op = self._operation(intent.message.kind)
        if op.recover is not None:
            return result_json(op.recover(self.project, self.name, intent, ctx))
        return self.handle(ctx, intent.message)


@dataclass(frozen=True)
class ForkActorFactory:
    """Makes fork actors for one project (picklable, for the Ray engine)."""

    project: Project
    """The consumer project."""
    operations: Mapping[str, Operation[Any, Any]] = field(default_factory=dict)
    """Operations registered in the process that built the factory, by kind (unpickling
    them in a Ray worker imports the modules that define them)."""

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
    args: OperationArgs[R] | None = None,
    *,
    jobs: int | None = None,
    engine: Engine | str = "embedded",
    observer: Observer | None = None,
    wait: float = 0.0,
    per_fork: Mapping[str, OperationArgs[R]] | None = None,
) -> dict[str, ForkReply[R]]:
    """Run the operation of `args` on every fork in `names` through their actors.

    Each fork gets `args`, or its own `per_fork` entry when it has one (every
    fork needs one of the two). The replies come by name, each with its typed
    result in ``value``. A reply with ``ok=False`` is a failed fork (its
    ``error`` says why). A fork that could not run at all because another
    process holds it (:class:`~forkman.core.errors.Busy`) gets a failed reply
    too, with ``result["error_kind"] == "Busy"``: the other forks' work is
    done and reported, never lost to one busy fork.
    """
    names = list(dict.fromkeys(names))
    own = per_fork or {}
    chosen: dict[str, OperationArgs[R]] = {}
    for name in names:
        message = own.get(name, args)
        if message is None:
            raise BadInput(f"no message for fork {name}: pass args or a per_fork entry")
        chosen[name] = message
    # an unregistered message type: fail before anything starts
    results = {name: operation_for(message).result for name, message in chosen.items()}
    messages = {
        fork_key(name): Message(type(message).KIND, message.to_json())
        for name, message in chosen.items()
    }
    if isinstance(engine, Engine):
        replies = _gather(engine, messages)
    else:
        with open_engine(project, engine=engine, jobs=jobs, wait=wait, observer=observer) as eng:
            replies = _gather(eng, messages)
    out: dict[str, ForkReply[R]] = {}
    for key, reply in replies.items():
        name = key[len(FORK_PREFIX) :]
        out[name] = ForkReply.of(reply, results[name])
    return out


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
