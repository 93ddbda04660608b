"""Durable actors: one per fork, serializing every operation on it.

See ``docs/architecture.md``. Commands route an operation through the fork
actors with :func:`run_for_forks`; :func:`actor_states` feeds ``forkman
status``.
"""

from __future__ import annotations

from .fork_actor import (
    OPERATIONS,
    ForkActor,
    ForkActorFactory,
    ForkActorState,
    Operation,
    actor_states,
    fork_key,
    open_engine,
    register_operation,
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

__all__ = [
    "OPERATIONS",
    "Actor",
    "ActorContext",
    "ActorState",
    "ActorStatus",
    "ActorStorage",
    "Alarm",
    "Engine",
    "ForkActor",
    "ForkActorFactory",
    "ForkActorState",
    "Intent",
    "Message",
    "Operation",
    "Reply",
    "actor_states",
    "fork_key",
    "open_engine",
    "register_operation",
    "run_for_forks",
    "shared_file_guard",
]
