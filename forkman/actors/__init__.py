"""Durable actors: one per fork, serializing every operation on it.

See ``docs/architecture.md``. Callers route an operation through the fork
actors with :func:`run_for_forks`, passing a typed message (an
:class:`OperationArgs`) and getting typed results (:class:`ForkReply`
``.value``); :func:`actor_states` feeds ``forkman status``.

Messages are registered by import, never by name. The module that defines an
operation's argument and result types registers them with its handler
(:func:`register_operation`); the fork actor dispatches a message by its
kind to the operation registered for it. The operations forkman ships are
defined in :mod:`forkman.operations.handlers`, so:

- every layer that opens the engine for them imports that module first:
  :mod:`forkman.api` (through ``forkman.operations.workflows``, which holds
  the message types it sends) and therefore the CLI, ``watch`` and the agent
  surface. A process that only recovers journaled intents (the next command
  on a fork) is one of those.
- a Ray worker gets the registry with the actor factory: it carries the
  operations registered in the process that opened the engine, and
  unpickling them imports the modules that define them (which register them
  there too).
- a message of a kind no imported module registered is never dropped or
  guessed: it fails with :class:`~forkman.core.errors.NotFound` naming the
  kind and the known ones, with a hint to import the defining module (and a
  caller passing a type that is not registered fails before anything runs).

Journaled intents and alarms written before messages were typed are read as
they are: a message is still stored as its kind and a JSON object of
arguments, and the typed arguments keep the field names and values (a mode
is the enum's value). Nothing is migrated; an intent is recovered by its
operation's ``recover`` (the fork transaction journal), which does not read
the arguments. A stored message whose arguments do not fit its type (written
by another forkman version) is refused with a BadInput and a hint, and the
actor records it as a failed operation.
"""

from __future__ import annotations

from .fork_actor import (
    ForkActor,
    ForkActorFactory,
    ForkActorState,
    actor_states,
    fork_key,
    open_engine,
    run_for_forks,
    shared_file_guard,
)
from .interface import (
    Actor,
    ActorContext,
    ActorState,
    ActorStatus,
    ActorStorage,
    Alarm,
    Engine,
    Intent,
    Message,
    Reply,
)
from .messages import Codec, OperationArgs, OperationResult, Recovered
from .registry import (
    ForkReply,
    Operation,
    operation_for,
    operation_for_kind,
    register_operation,
    registered_operations,
)

__all__ = [
    "Actor",
    "ActorContext",
    "ActorState",
    "ActorStatus",
    "ActorStorage",
    "Alarm",
    "Codec",
    "Engine",
    "ForkActor",
    "ForkActorFactory",
    "ForkActorState",
    "ForkReply",
    "Intent",
    "Message",
    "Operation",
    "OperationArgs",
    "OperationResult",
    "Recovered",
    "Reply",
    "actor_states",
    "fork_key",
    "open_engine",
    "operation_for",
    "operation_for_kind",
    "register_operation",
    "registered_operations",
    "run_for_forks",
    "shared_file_guard",
]
