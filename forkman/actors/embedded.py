"""The default engine: actors in this process, state in ``.forkman/actors.sqlite``.

One mailbox per key. When a key's mailbox gets a message and no worker is
draining it, a worker thread (at most `jobs` at a time) activates the actor:
it takes the key's advisory lock (exclusion between processes), creates the
actor, and recovers an interrupted intent if the store has one. The worker
then handles the key's messages one at a time, in order, and when the
mailbox is empty drops the actor from memory (hibernation) and releases the
lock. The next message rehydrates it from storage.

Threads, not asyncio: the slow work is subprocesses, git and network I/O,
which release the GIL; handlers stay plain synchronous functions.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, ForkmanError, SecurityError
from ..core.observer import NullObserver, Observer
from . import _keylock
from ._store import StateStore
from .interface import (
    JSON,
    STATE_QUERY,
    Actor,
    ActorContext,
    ActorFactory,
    ActorObserver,
    ActorState,
    ActorStatus,
    Alarm,
    Engine,
    Intent,
    Message,
    Reply,
)

DB_NAME = "actors.sqlite"
LOCKS_DIR = "locks"
BACKOFF_BASE = 30.0
"""Seconds before the first retry of a failed alarm; doubles with each failure."""
BACKOFF_CAP = 6 * 3600.0
"""The longest wait between retries of a failing alarm."""


def default_jobs() -> int:
    """Default concurrency: the number of cores."""
    return os.cpu_count() or 1


def alarm_backoff(attempts: int, every: float | None) -> float:
    """Seconds to wait after the `attempts`-th failed delivery (capped exponential)."""
    cap = BACKOFF_CAP if every is None else min(BACKOFF_CAP, max(every, BACKOFF_BASE))
    return float(min(cap, BACKOFF_BASE * 2 ** max(attempts - 1, 0)))


def subject_of(key: str) -> str:
    """How a key is shown to users: ``fork:attrs`` -> ``attrs``."""
    return key.split(":", 1)[1] if ":" in key else key


def deliver_due_alarms(
    store: StateStore,
    send: Callable[[str, Message], Future[Reply]],
    now: float | None = None,
) -> list[tuple[Alarm, Reply]]:
    """Send every alarm due at `now`, wait, then reschedule (repeating), remove (one-shot)
    or back off (failed). An alarm is moved only after its reply, so a crash in between
    redelivers it; its message id is stable until it moves, so the redelivery is
    deduplicated when the first one had finished."""
    now = time.time() if now is None else now
    due = store.alarms(due_by=now)
    futures = [(alarm, send(alarm.key, alarm.message())) for alarm in due]
    delivered: list[tuple[Alarm, Reply]] = []
    for alarm, future in futures:
        try:
            reply = future.result()
        except ForkmanError as exc:
            reply = Reply(alarm.key, alarm.message().id, False, ActorState.FAILED, {}, exc.message)
        finished = time.time()
        if reply.ok and alarm.every is None:
            store.delete_alarm(alarm.key, alarm.name, if_due=alarm.due)
        elif reply.ok:
            assert alarm.every is not None
            following = alarm.due + alarm.every
            if following <= finished:  # missed runs are not replayed one by one
                following = finished + alarm.every
            store.move_alarm(alarm, following, 0, None)
        else:
            attempts = alarm.attempts + 1
            store.move_alarm(
                alarm, finished + alarm_backoff(attempts, alarm.every), attempts, reply.error
            )
        delivered.append((alarm, reply))
    return delivered


class _Context(ActorContext):
    def __init__(self, engine: EmbeddedEngine, key: str, intent: Intent | None) -> None:
        self.key = key
        self.storage = engine.store.storage(key)
        self.observer = engine.observer
        self._engine = engine
        self._intent = intent

    def step(self, text: str) -> None:
        if self._intent is not None:
            self._engine.store.update_intent(self._intent, text, {})
            self._engine._notify(self.key, self._intent.state, text)
        else:
            self.observer.step(subject_of(self.key), text)

    def journal(self, progress: Mapping[str, JSON]) -> None:
        if self._intent is not None:
            self._engine.store.update_intent(self._intent, None, progress)

    def schedule_alarm(
        self, name: str, at: float, message: Message, *, every: float | None = None
    ) -> None:
        self._engine.schedule_alarm(self.key, name, at, message, every=every)


class StoreBackedEngine(Engine):
    """Alarms and statuses an engine keeps in its :class:`StateStore` (``self.store``)."""

    store: StateStore

    def alarms(self, key: str | None = None) -> list[Alarm]:
        return self.store.alarms(key)

    def cancel_alarm(self, key: str, name: str) -> bool:
        return self.store.delete_alarm(key, name)

    def run_due_alarms(self, now: float | None = None) -> list[tuple[Alarm, Reply]]:
        return deliver_due_alarms(self.store, self.send, now)

    def statuses(self, prefix: str = "") -> dict[str, ActorStatus]:
        return self.store.statuses(prefix)


class EmbeddedEngine(StoreBackedEngine):
    """Actors as worker threads over one SQLite store (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        factory: ActorFactory,
        *,
        jobs: int | None = None,
        wait: float = 0.0,
        observer: Observer | None = None,
        durability: str = "normal",
    ) -> None:
        """`wait`: seconds to queue behind another process holding a key or the database."""
        if jobs is not None and jobs < 1:
            raise ForkmanError(f"--jobs must be at least 1, not {jobs}")
        self.state_dir = state_dir
        self.factory = factory
        self.jobs = jobs or default_jobs()
        self.wait = wait
        self.observer: Observer = observer or NullObserver()
        self.lock_dir = state_dir / LOCKS_DIR
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(state_dir / DB_NAME, wait=max(wait, 5.0), durability=durability)
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="forkman-actor")
        self._tasks: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()
        self._mailboxes: dict[str, collections.deque[tuple[Message, Future[Reply]]]] = {}
        self._draining: set[str] = set()
        self._closed = False
        self.activations = 0
        """How many times an actor was created (for tests and benchmarks)."""

    # -- delivery ------------------------------------------------------------

    def send(self, key: str, message: Message) -> Future[Reply]:
        future: Future[Reply] = Future()
        with self._guard:
            if self._closed:
                raise ForkmanError("the actor engine is shut down")
            self._mailboxes.setdefault(key, collections.deque()).append((message, future))
            if key in self._draining:
                return future
            self._draining.add(key)
        self._pool.submit(self._drain, key)
        return future

    def in_memory(self) -> set[str]:
        """Keys whose actor is active (not hibernated) right now."""
        with self._guard:
            return set(self._draining)

    def _drain(self, key: str) -> None:
        try:
            held = _keylock.acquire(
                self.lock_dir,
                key,
                wait=self.wait,
                what=f"fork {subject_of(key)}" if key.startswith("fork:") else f"actor {key}",
                on_wait=self.observer.warning,
            )
        except BaseException as exc:
            self._fail_queue(key, exc)
            return
        try:
            try:
                actor = self.factory(key)
                self.activations += 1
                self._recover(actor)
            except BaseException as exc:
                self._fail_queue(key, exc)
                return
            with self._guard:
                mailbox = self._mailboxes[key]
                message, future = mailbox.popleft()
            while True:
                outcome: Reply | BaseException
                if future.set_running_or_notify_cancel():
                    try:
                        outcome = self._deliver(actor, message)
                    except BaseException as exc:
                        outcome = exc
                else:
                    outcome = CancelledError()
                with self._guard:
                    if mailbox:
                        following: tuple[Message, Future[Reply]] | None = mailbox.popleft()
                    else:
                        # hibernate before replying: once a caller has its reply, the
                        # actor is out of memory and its lock is free for the next command
                        following = None
                        self._mailboxes.pop(key, None)
                        self._draining.discard(key)
                        held.release()
                if not future.cancelled():
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                if following is None:
                    return
                message, future = following
        finally:
            held.release()

    def _fail_queue(self, key: str, exc: BaseException) -> None:
        with self._guard:
            mailbox = self._mailboxes.pop(key, collections.deque())
            self._draining.discard(key)
        for _message, future in mailbox:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)

    def _notify(self, key: str, state: ActorState, step: str) -> None:
        if isinstance(self.observer, ActorObserver):
            self.observer.actor_state(subject_of(key), state, step)
        elif step:
            self.observer.step(subject_of(key), step)

    def _recover(self, actor: Actor) -> Reply | None:
        status = self.store.status(actor.key)
        if status is None or status.intent is None:
            return None
        intent = status.intent
        self._notify(
            actor.key, ActorState.RECOVERING, f"recovering interrupted {intent.message.kind}"
        )
        ctx = _Context(self, actor.key, intent)
        return self._run(actor, intent.message, ctx, lambda: actor.recover(ctx, intent), True)

    def _deliver(self, actor: Actor, message: Message) -> Reply:
        if message.kind == STATE_QUERY:
            status = self.store.status(actor.key)
            state = status.state if status else ActorState.IDLE
            return Reply(actor.key, message.id, True, state, {"state": state.value})
        recorded = self.store.outcome(actor.key, message.id)
        if recorded is not None:
            return recorded
        before = self.store.status(actor.key)
        intent = self.store.begin_intent(actor.key, message, actor.state_for(message))
        self._notify(actor.key, intent.state, "")
        ctx = _Context(self, actor.key, intent)
        return self._run(
            actor,
            message,
            ctx,
            lambda: actor.handle(ctx, message),
            False,
            before=before.state if before is not None else ActorState.IDLE,
        )

    def _run(
        self,
        actor: Actor,
        message: Message,
        ctx: _Context,
        work: Callable[[], Mapping[str, JSON]],
        recovered: bool,
        *,
        before: ActorState | None = None,
    ) -> Reply:
        error: str | None = None
        result: Mapping[str, JSON] = {}
        rejected = False
        refused: SecurityError | None = None
        try:
            result = dict(work())
        except ForkmanError as exc:
            error = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            # kept apart too, so a command can show the error as it would have been raised
            described = exc.to_json()
            result = {
                "error_message": exc.message,
                "error_hint": exc.hint,
                "error_kind": described["kind"],
                "error_type": described["type"],
                "exit_code": exc.exit_code,
            }
            # a request refused as asked (BadInput) changed nothing: the actor keeps
            # the state and last result it had, so `status` does not show the refusal
            rejected = isinstance(exc, BadInput) and before is not None
            if recovered and isinstance(exc, SecurityError):
                refused = exc  # state recovery must not act on: nothing queued runs either
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.observer.warning(
                f"{subject_of(actor.key)}: {message.kind} crashed:\n{traceback.format_exc()}"
            )
        if rejected:
            assert before is not None
            state = before
        elif error is not None:
            state = ActorState.FAILED
        elif result.get("state") == ActorState.CONFLICT.value:
            state = ActorState.CONFLICT
        else:
            state = ActorState.IDLE
        reply = Reply(
            key=actor.key,
            message_id=message.id,
            ok=error is None,
            state=state,
            result=result,
            error=error,
            recovered=recovered,
        )
        # The output gate: the reply leaves only once the outcome is durable. If
        # this write fails, the caller gets the error and the intent stays for recovery.
        self.store.finish(reply, keep_last_result=rejected)
        self._notify(actor.key, reply.state, error or "")
        if refused is not None:
            raise refused
        return reply

    # -- recovery --------------------------------------------------------------

    def recover_all(self, prefix: str = "") -> dict[str, Reply]:
        """Activate every actor with an interrupted intent, so it recovers now."""
        keys = [k for k, s in self.store.statuses(prefix).items() if s.intent is not None]
        return self.ask_many({key: Message(STATE_QUERY) for key in keys})

    # -- alarms ------------------------------------------------------------------

    def schedule_alarm(
        self, key: str, name: str, at: float, message: Message, *, every: float | None = None
    ) -> None:
        self.store.set_alarm(Alarm(key, name, at, message.kind, dict(message.args), every))

    def ensure_alarm(
        self, key: str, name: str, at: float, message: Message, *, every: float | None = None
    ) -> None:
        """Like :meth:`schedule_alarm`, but an existing alarm keeps its due time."""
        self.store.set_alarm(
            Alarm(key, name, at, message.kind, dict(message.args), every), keep_due=True
        )

    # -- queries, tasks, shutdown ----------------------------------------------

    def submit_task(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._guard:
            if self._tasks is None:
                self._tasks = ThreadPoolExecutor(
                    max_workers=self.jobs, thread_name_prefix="forkman-task"
                )
            return self._tasks.submit(fn, *args)

    def shutdown(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=True)
        if self._tasks is not None:
            self._tasks.shutdown(wait=True)
        self.store.close()
