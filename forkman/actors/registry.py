"""The fork actors' operations, registered by their message types.

A module that defines an operation registers it when it is imported::

    @dataclass(frozen=True)
    class SyncArgs(OperationArgs[SyncOutput]):
        KIND: ClassVar[str] = "sync"
        ...

    SYNC = register_operation(SyncArgs, SyncOutput, run_sync, state=ActorState.SYNCING)

The fork actor dispatches a message by its kind to the operation registered
for it, decoding the arguments into the registered type; callers hold the
types themselves, so a registered type is always at hand for them. Nothing
is imported by name: a kind no imported module registered is refused with a
:class:`~forkman.core.errors.NotFound` (see the package docstring for who
imports the shipped operations).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ..core.errors import ForkmanError, NotFound
from .interface import JSON, ActorContext, ActorState, Intent, Reply
from .messages import OperationArgs, OperationResult

if TYPE_CHECKING:
    from ..model.project import Project

A = TypeVar("A", bound=OperationArgs[Any])
R = TypeVar("R", bound=OperationResult)

REGISTRY_HINT = (
    "the operations forkman ships are registered by importing forkman.operations.handlers "
    "(forkman.api and the CLI do): import the module that defines the operation "
    "before opening the engine"
)


@dataclass(frozen=True)
class Operation(Generic[A, R]):
    """An operation fork actors can perform, keyed by its argument type."""

    args: type[A]
    """The argument type; its ``KIND`` is the message kind."""
    result: type[R]
    """The result type."""
    run: Callable[[Project, str, A, ActorContext], R]
    """``run(project, name, args, ctx)``: does the work; idempotent; raises ForkmanError."""
    recover: Callable[[Project, str, Intent, ActorContext], OperationResult] | None = None
    """Resumes or rolls back an interrupted run; None: run again (resume)."""
    state: ActorState = ActorState.WORKING
    """The state shown while it runs."""

    @property
    def kind(self) -> str:
        """The message kind, e.g. ``"sync"``."""
        return self.args.KIND


_registry: dict[str, Operation[Any, Any]] = {}
_registry_guard = threading.Lock()


def register_operation(
    args: type[A],
    result: type[R],
    run: Callable[[Project, str, A, ActorContext], R],
    *,
    recover: Callable[[Project, str, Intent, ActorContext], OperationResult] | None = None,
    state: ActorState = ActorState.WORKING,
) -> Operation[A, R]:
    """Make `args` (its ``KIND``) an operation of fork actors, replacing an earlier one."""
    operation = Operation(args, result, run, recover, state)
    with _registry_guard:
        _registry[operation.kind] = operation
    return operation


def operation_for_kind(kind: str) -> Operation[Any, Any]:
    """The operation registered for message kind `kind`; NotFound when none is."""
    with _registry_guard:
        found = _registry.get(kind)
        known = sorted(_registry)
    if found is None:
        raise NotFound(
            f"fork actors have no operation {kind!r}",
            hint=f"known operations: {', '.join(known) or 'none'}; {REGISTRY_HINT}",
        )
    return found


def operation_for(args: OperationArgs[R]) -> Operation[Any, R]:
    """The operation registered for `args`' type; NotFound when that type is not registered."""
    found = operation_for_kind(type(args).KIND)
    if found.args is not type(args):
        raise NotFound(
            f"fork actors' operation {found.kind!r} takes {found.args.__name__}, "
            f"not {type(args).__name__}",
            hint=REGISTRY_HINT,
        )
    return cast("Operation[Any, R]", found)


def registered_operations() -> dict[str, Operation[Any, Any]]:
    """A snapshot of the operations registered in this process, by kind."""
    with _registry_guard:
        return dict(_registry)


def result_json(result: OperationResult) -> dict[str, JSON]:
    """`result` as stored in the reply (with the actor's ``state`` when not the default)."""
    out = result.to_json()
    state = result.actor_state()
    if state is not None:
        out["state"] = state.value
    return out


@dataclass(frozen=True)
class ForkReply(Reply, Generic[R]):
    """A fork actor's reply with its typed result (``value``; None when not ok)."""

    value: R | None = None
    """The operation's result, decoded into its result type."""

    @classmethod
    def of(cls, reply: Reply, result: type[R]) -> ForkReply[R]:
        """`reply` with its result decoded as `result` (when it is ok and not a recovery's)."""
        value: R | None = None
        if reply.ok and not reply.recovered:
            try:
                value = result.from_json(reply.result)
            except ForkmanError as exc:
                raise ForkmanError(
                    f"{reply.key}: the reply does not fit {result.__name__}: {exc.message}",
                    hint="the fork actor runs another forkman version; run the command again",
                ) from None
        fields = {f.name: getattr(reply, f.name) for f in dataclasses.fields(Reply)}
        return cls(**fields, value=value)
