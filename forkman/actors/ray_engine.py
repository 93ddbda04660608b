"""The Ray engine: fork actors hosted on a Ray cluster (extra ``forkman[ray]``).

One Ray actor per fork does not scale (each costs ~80 MiB and seconds to
start). Instead a few async *shard* actors (default ``min(cores, 4)``) each
host many fork actors: a key goes to shard ``sha256(key) % shards``, and
inside the shard an :class:`~forkman.actors.embedded.EmbeddedEngine` runs the
key's mailbox exactly as on one machine (intent, outcome, output gate,
recovery, per-key advisory lock).

Per-key order: the driver sends a key's next message only after the previous
one was answered, so order holds even though async Ray actors do not promise
execution order, and even across a shard restart.

State lives in the store (the SQLite database on the project's filesystem,
which every node must share), never in the Ray actor: a restarted shard
(``max_restarts=-1``) reruns its constructor, reopens the store, and the
retried call is deduplicated by message id or recovered from its intent.

Stateless work (sandboxed test runs) goes out as Ray tasks: :meth:`RayEngine.submit_task`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..core import errors as _errors
from ..core.errors import ForkmanError, NetworkError
from ..core.observer import NullObserver, Observer
from ._store import StateStore
from .embedded import DB_NAME, EmbeddedEngine, StoreBackedEngine, subject_of
from .interface import ActorFactory, ActorObserver, ActorState, Alarm, Message, Reply


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ForkmanError(
            "the Ray engine needs Ray, which is not installed",
            hint="pip install 'forkman[ray]', or use --engine embedded",
        ) from None
    return ray


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast on an address nothing listens on (Ray itself retries for a minute)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise NetworkError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
            hint="start it with `ray start --head`, check RAY_ADDRESS, or use --engine embedded",
        ) from None


def default_shards() -> int:
    """Shard actors per engine: one per core, at most four."""
    return max(1, min(os.cpu_count() or 1, 4))


def shard_of(key: str, shards: int) -> int:
    """The shard hosting `key` (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


def _run_task(fn: Callable[..., Any], *args: Any) -> Any:
    """A Ray task running `fn(*args)` (any callable, builtins included)."""
    return fn(*args)


class ForkShard:
    """The body of one shard actor: many fork actors behind one Ray actor."""

    def __init__(self, state_dir: str, factory: ActorFactory, jobs: int, wait: float) -> None:
        self.engine = EmbeddedEngine(Path(state_dir), factory, jobs=jobs, wait=wait)

    async def send(self, key: str, message: dict[str, Any]) -> dict[str, Any]:
        try:
            future = self.engine.send(key, Message.from_json(message))
            reply = await asyncio.wrap_future(future)
        except ForkmanError as exc:
            return {"error": type(exc).__name__, **exc.to_json()}
        return {"reply": reply.to_json()}

    def pid(self) -> int:
        return os.getpid()

    def shutdown(self) -> None:
        self.engine.shutdown()


class RayEngine(StoreBackedEngine):
    """Fork actors sharded over a few Ray actors; state in the shared SQLite store."""

    def __init__(
        self,
        state_dir: Path,
        factory: ActorFactory,
        *,
        jobs: int | None = None,
        wait: float = 0.0,
        observer: Observer | None = None,
        shards: int | None = None,
        address: str | None = None,
    ) -> None:
        ray = _import_ray()
        self._ray = ray
        self.factory = factory
        self.observer: Observer = observer or NullObserver()
        self._owns_ray = False
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or address or None
            if address:
                _check_reachable(address)
            try:
                ray.init(
                    address=address,
                    num_cpus=None if address else (jobs or os.cpu_count() or 1),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as exc:
                where = address or "a new local Ray instance"
                raise NetworkError(
                    f"cannot reach the Ray cluster at {where}: {exc}",
                    hint="start it with `ray start --head`, check RAY_ADDRESS, "
                    "or use --engine embedded",
                ) from None
            self._owns_ray = True
        self.store = StateStore(state_dir / DB_NAME, wait=max(wait, 5.0))
        count = shards or default_shards()
        per_shard = max(1, math.ceil((jobs or os.cpu_count() or 1) / count))
        remote = ray.remote(ForkShard).options(
            max_restarts=-1, max_task_retries=-1, max_concurrency=1000, num_cpus=0
        )
        self._shards = [
            remote.remote(str(state_dir), factory, per_shard, wait) for _ in range(count)
        ]
        self._guard = threading.Lock()
        self._pending: dict[str, collections.deque[tuple[Message, Future[Reply]]]] = {}
        self._closed = False
        self._task: Any = None
        self._poller: threading.Thread | None = None
        self._seen: dict[str, tuple[ActorState, str]] = {}

    @property
    def shards(self) -> int:
        """How many shard actors host the fork actors."""
        return len(self._shards)

    def shard_pids(self) -> list[int]:
        """The process id of every shard actor (they are separate processes)."""
        return list(self._ray.get([s.pid.remote() for s in self._shards]))

    def send(self, key: str, message: Message) -> Future[Reply]:
        future: Future[Reply] = Future()
        with self._guard:
            if self._closed:
                raise ForkmanError("the actor engine is shut down")
            queue = self._pending.get(key)
            if queue is not None:  # a message for this key is in flight: keep the order
                queue.append((message, future))
                return future
            self._pending[key] = collections.deque()
            if isinstance(self.observer, ActorObserver) and self._poller is None:
                self._poller = threading.Thread(
                    target=self._poll_steps, name="forkman-ray-progress", daemon=True
                )
                self._poller.start()
        self._submit(key, message, future)
        return future

    def _poll_steps(self) -> None:
        """Relay steps recorded by actors in the shards (the store is the only channel)."""
        while True:
            with self._guard:
                if self._closed and not self._pending:
                    return
                keys = set(self._pending)
            if keys:
                for key, status in self.store.statuses().items():
                    if key in keys and status.intent is not None:
                        seen = (status.state, status.step)
                        if self._seen.get(key) != seen:
                            self._seen[key] = seen
                            self._notify(key, status.state, status.step)
            threading.Event().wait(0.2)

    def _notify(self, key: str, state: ActorState, step: str) -> None:
        if isinstance(self.observer, ActorObserver):
            self.observer.actor_state(subject_of(key), state, step)

    def _submit(self, key: str, message: Message, future: Future[Reply]) -> None:
        try:
            state = self.factory(key).state_for(message)
        except ForkmanError:
            state = ActorState.WORKING
        self._notify(key, state, "")
        shard = self._shards[shard_of(key, len(self._shards))]
        ref = shard.send.remote(key, message.to_json())
        ref.future().add_done_callback(lambda done: self._done(key, future, done))

    def _done(self, key: str, future: Future[Reply], done: Future[Any]) -> None:
        try:
            answer = done.result()
            if "reply" in answer:
                reply = Reply.from_json(answer["reply"])
                self._notify(key, reply.state, reply.error or "")
                future.set_result(reply)
            else:
                future.set_exception(_errors.error_from_json({"kind": answer["error"], **answer}))
        except BaseException as exc:
            future.set_exception(
                ForkmanError(f"the Ray engine lost fork actor {subject_of(key)}: {exc}")
            )
        with self._guard:
            queue = self._pending.get(key)
            if not queue:
                self._pending.pop(key, None)
                return
            message, nxt = queue.popleft()
        self._submit(key, message, nxt)

    def schedule_alarm(
        self, key: str, name: str, at: float, message: Message, *, every: float | None = None
    ) -> None:
        self.store.set_alarm(Alarm(key, name, at, message.kind, dict(message.args), every))

    def submit_task(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._guard:
            if self._task is None:
                self._task = self._ray.remote(_run_task)
        result: Future[Any] = self._task.remote(fn, *args).future()
        return result

    def shutdown(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
        # wait for in-flight messages, then stop the shards
        while True:
            with self._guard:
                if not self._pending:
                    break
            threading.Event().wait(0.01)
        if self._poller is not None:
            self._poller.join()
        try:
            self._ray.get([s.shutdown.remote() for s in self._shards])
        finally:
            for shard in self._shards:
                self._ray.kill(shard)
            self.store.close()
            if self._owns_ray:
                self._ray.shutdown()
