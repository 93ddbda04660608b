"""The actor contract: messages, durable per-key storage, handlers and engines.

forkman runs every operation on a fork as a message to that fork's actor
(modelled on Cloudflare's Durable Objects): one single-threaded object per
key, with durable storage, alarms and hibernation. An engine delivers the
messages; :mod:`forkman.actors.embedded` (SQLite, the default) and
:mod:`forkman.actors.ray_engine` (a Ray cluster) implement :class:`Engine`.

The handler contract, enforced by the engine around every message:

1. the intent (the message) is recorded durably, the state becomes busy;
2. the handler does its slow work (network, git, sandbox runs) OUTSIDE any
   storage transaction; it may record progress in its own storage;
3. the outcome is recorded durably (the intent is cleared in the same
   transaction);
4. only then is the reply released (the output gate).

Handlers are idempotent: a message delivered twice (a retry after a crash, an
alarm delivered at least once) is safe. When an actor is rehydrated and an
intent without an outcome is found (the process died in step 2),
:meth:`Actor.recover` resumes or rolls back the interrupted work before any
new message is handled.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

from ..core.errors import ForkmanError, error_from_json
from ..core.observer import Observer

JSON: TypeAlias = Any
"""A value that survives ``json.dumps``/``json.loads`` unchanged."""


class ActorState(enum.Enum):
    """What an actor is doing (shown by ``forkman status``)."""

    IDLE = "idle"
    """Nothing in progress; the last operation succeeded."""
    FETCHING = "fetching"
    """Downloading or importing an upstream release."""
    PATCHING = "patching"
    """Recording or re-applying the patch series."""
    SYNCING = "syncing"
    """Merging a new upstream release."""
    TESTING = "testing"
    """Running the fork's tests in the sandbox."""
    AUDITING = "auditing"
    """Checking advisories and risky changes."""
    VERIFYING = "verifying"
    """Checking vendored files and provenance against the lock."""
    WORKING = "working"
    """Any other operation."""
    RECOVERING = "recovering"
    """Resuming or rolling back an operation interrupted by a crash."""
    INTERRUPTED = "interrupted"
    """An operation's process died; the next command on the fork recovers it."""
    CONFLICT = "conflict"
    """The last operation stopped on a merge conflict the user must resolve."""
    FAILED = "failed"
    """The last operation failed; its error is in the last result."""

    @property
    def busy(self) -> bool:
        """Whether an operation is in progress in this state."""
        return self not in (
            ActorState.IDLE,
            ActorState.CONFLICT,
            ActorState.FAILED,
            ActorState.INTERRUPTED,
        )


def new_message_id() -> str:
    """A fresh, unique message id."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Message:
    """One request to an actor."""

    kind: str
    """The operation, e.g. ``"sync"``; kinds starting with ``$`` are the engine's own."""
    args: Mapping[str, JSON] = field(default_factory=dict)
    """The operation's arguments (JSON values)."""
    id: str = field(default_factory=new_message_id)
    """Idempotency key: a message with an id already handled gets the recorded reply."""

    def to_json(self) -> dict[str, JSON]:
        """The message as a JSON object."""
        return {"kind": self.kind, "args": dict(self.args), "id": self.id}

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Message:
        """The inverse of :meth:`to_json`."""
        return cls(kind=str(data["kind"]), args=dict(data.get("args") or {}), id=str(data["id"]))


STATE_QUERY = "$state"
"""A read-only message kind: activates the actor and replies with its state, unjournaled."""


@dataclass(frozen=True)
class Reply:
    """What an actor answered, released only once its outcome is durable."""

    key: str
    """The actor's key."""
    message_id: str
    """The id of the message answered."""
    ok: bool
    """Whether the operation succeeded."""
    state: ActorState
    """The actor's state after the operation."""
    result: Mapping[str, JSON] = field(default_factory=dict)
    """The operation's result (JSON object)."""
    error: str | None = None
    """Why it failed (None when ok)."""
    recovered: bool = False
    """The reply was produced by recovering an interrupted operation."""
    duplicate: bool = False
    """The message had been handled before; this is the recorded reply."""

    def exception(self) -> ForkmanError | None:
        """The error the operation raised, rebuilt with its class, hint and exit code.

        None when the reply is ok. An operation that crashed with something other
        than a :class:`~forkman.core.errors.ForkmanError` comes back as a plain
        ForkmanError carrying :attr:`error`.
        """
        if self.ok:
            return None
        if self.result.get("error_kind") or self.result.get("error_message"):
            return error_from_json(self.result)
        return ForkmanError(self.error or "the operation failed")

    def to_json(self) -> dict[str, JSON]:
        """The reply as a JSON object (as stored for idempotency)."""
        return {
            "key": self.key,
            "message_id": self.message_id,
            "ok": self.ok,
            "state": self.state.value,
            "result": dict(self.result),
            "error": self.error,
            "recovered": self.recovered,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSON], *, duplicate: bool = False) -> Reply:
        """The inverse of :meth:`to_json`."""
        return cls(
            key=str(data["key"]),
            message_id=str(data["message_id"]),
            ok=bool(data["ok"]),
            state=ActorState(data["state"]),
            result=dict(data.get("result") or {}),
            error=data.get("error"),
            recovered=bool(data.get("recovered", False)),
            duplicate=duplicate,
        )


@dataclass(frozen=True)
class Intent:
    """An operation recorded as started and not (yet) finished."""

    key: str
    """The actor's key."""
    message: Message
    """The message being handled."""
    state: ActorState
    """The state the actor entered for it."""
    started: float
    """When it started (seconds since the epoch)."""
    step: str = ""
    """The last step the handler reported."""
    progress: Mapping[str, JSON] = field(default_factory=dict)
    """What the handler journaled so far with :meth:`ActorContext.journal`."""


@dataclass(frozen=True)
class ActorStatus:
    """An actor's durable status row."""

    key: str
    """The actor's key."""
    state: ActorState
    """What it is doing, or how its last operation ended."""
    step: str
    """The last step reported."""
    updated: float
    """When the row last changed (seconds since the epoch)."""
    last_result: Mapping[str, JSON] | None
    """The last reply (see :meth:`Reply.to_json`), None before the first operation."""
    intent: Intent | None
    """The operation in progress (or interrupted), if any."""


@dataclass(frozen=True)
class Alarm:
    """A message an actor scheduled for later; stored durably."""

    key: str
    """The actor's key."""
    name: str
    """Unique per key; scheduling the same name again replaces it."""
    due: float
    """When to deliver (seconds since the epoch)."""
    message_kind: str
    """The kind of the message to deliver."""
    args: Mapping[str, JSON]
    """The message's arguments."""
    every: float | None
    """Repeat interval in seconds; None: deliver once."""
    attempts: int = 0
    """Failed deliveries since the last success (drives the backoff)."""
    last_error: str | None = None
    """Why the last delivery failed."""

    def message(self) -> Message:
        """The message for this delivery; its id is stable until the alarm moves, so a
        redelivery after a crash is deduplicated."""
        return Message(
            self.message_kind, self.args, id=f"alarm:{self.key}:{self.name}:{self.due!r}"
        )


class ActorStorage(ABC):
    """An actor's own durable key-value storage (values are JSON).

    Every call outside :meth:`transaction` is its own transaction; calls
    inside one commit together. Keep slow work out of transactions.
    """

    @abstractmethod
    def get(self, name: str, default: JSON = None) -> JSON:
        """The value stored under `name`, or `default`."""

    @abstractmethod
    def put(self, name: str, value: JSON) -> None:
        """Store `value` (JSON) under `name`."""

    @abstractmethod
    def delete(self, name: str) -> bool:
        """Remove `name`; whether it existed."""

    @abstractmethod
    def list(self, prefix: str = "") -> dict[str, JSON]:
        """All entries whose name starts with `prefix`, sorted by name."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A context in which all calls commit together (or not at all)."""


class ActorContext(ABC):
    """What a handler gets besides the message: storage, progress, alarms."""

    key: str
    """The actor's key."""
    storage: ActorStorage
    """The actor's durable storage."""
    observer: Observer
    """Where progress goes (the core never prints)."""

    @abstractmethod
    def step(self, text: str) -> None:
        """Report (and record durably) the step the operation is at."""

    @abstractmethod
    def journal(self, progress: Mapping[str, JSON]) -> None:
        """Durably merge `progress` into the intent (read back by ``recover``)."""

    @abstractmethod
    def schedule_alarm(
        self, name: str, at: float, message: Message, *, every: float | None = None
    ) -> None:
        """Deliver `message` to this actor at `at` (and every `every` seconds)."""


class Actor(ABC):
    """One kind of actor; an instance serves one key while it is in memory.

    An instance is created on activation and dropped when its mailbox is
    empty (hibernation): keep nothing in attributes that is not also in
    storage.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def state_for(self, message: Message) -> ActorState:
        """The state the actor is in while handling `message`."""
        return ActorState.WORKING

    @abstractmethod
    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, JSON]:
        """Do the work of `message`; return a JSON result. Must be idempotent.

        Raise :class:`~forkman.core.errors.ForkmanError` for a failure the user
        should read; the engine records it as the outcome (state FAILED).
        Return ``{"state": "conflict", ...}`` to leave the actor in CONFLICT.
        """

    def recover(self, ctx: ActorContext, intent: Intent) -> Mapping[str, JSON]:
        """Finish or undo `intent`, interrupted by a crash; return its result.

        The default resumes by handling the message again (handlers are
        idempotent). Override to roll back instead.
        """
        return self.handle(ctx, intent.message)


ActorFactory: TypeAlias = Callable[[str], Actor]
"""Makes the actor serving a key (must be picklable for the Ray engine)."""


@runtime_checkable
class ActorObserver(Protocol):
    """An observer that also wants actors' state changes (e.g. the live progress view)."""

    def actor_state(self, subject: str, state: ActorState, step: str) -> None:
        """Actor `subject` entered `state` (at `step`)."""


class Engine(ABC):
    """Delivers messages to actors: one at a time per key, keys in parallel."""

    @abstractmethod
    def send(self, key: str, message: Message) -> Future[Reply]:
        """Queue `message` for actor `key`; the future resolves once the outcome is durable."""

    def ask_many(self, messages: Mapping[str, Message]) -> dict[str, Reply]:
        """Send one message to each of many actors (in parallel) and wait for every reply."""
        futures = {key: self.send(key, message) for key, message in messages.items()}
        return {key: future.result() for key, future in futures.items()}

    def ask(self, key: str, message: Message) -> Reply:
        """Send one message and wait for its reply."""
        return self.send(key, message).result()

    @abstractmethod
    def schedule_alarm(
        self, key: str, name: str, at: float, message: Message, *, every: float | None = None
    ) -> None:
        """Durably schedule `message` for actor `key` at `at` (replacing alarm `name`)."""

    @abstractmethod
    def alarms(self, key: str | None = None) -> list[Alarm]:
        """Scheduled alarms (of one key, or all), soonest first."""

    @abstractmethod
    def cancel_alarm(self, key: str, name: str) -> bool:
        """Remove an alarm; whether it existed."""

    @abstractmethod
    def run_due_alarms(self, now: float | None = None) -> list[tuple[Alarm, Reply]]:
        """Deliver every alarm due at `now` and wait; reschedule or back off."""

    @abstractmethod
    def statuses(self, prefix: str = "") -> dict[str, ActorStatus]:
        """The durable status of every actor whose key starts with `prefix`."""

    @abstractmethod
    def submit_task(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run a stateless task (e.g. a sandboxed test run) on the engine's workers."""

    @abstractmethod
    def shutdown(self) -> None:
        """Finish queued messages, then release every resource."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
