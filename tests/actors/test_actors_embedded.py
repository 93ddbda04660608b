"""The embedded engine: ordering, concurrency, the output gate, idempotency, hibernation,
recovery hooks, storage transactions, faults of the state database, process exclusion."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from forkman.actors import Actor, ActorContext, ActorState, Intent, Message, Reply
from forkman.actors._store import SCHEMA_VERSION, StateStore
from forkman.actors.embedded import DB_NAME, EmbeddedEngine
from forkman.core.errors import Busy, ForkmanError, NotFound
from forkman.core.observer import RecordingObserver
from tests.conftest import REPO_ROOT


class Recorder(Actor):
    """Counts in its storage, logs calls, can sleep, fail or ask for a conflict."""

    log: ClassVar[list[tuple[str, str, float, float]]] = []
    live = 0
    peak = 0
    guard = threading.Lock()

    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, Any]:
        cls = type(self)
        with cls.guard:
            cls.live += 1
            cls.peak = max(cls.peak, cls.live)
        start = time.monotonic()
        try:
            time.sleep(float(message.args.get("sleep", 0)))
            if message.kind == "fail":
                raise ForkmanError("upstream vanished", hint="try later")
            if message.kind == "crash":
                raise ValueError("a bug")
            count = int(ctx.storage.get("count", 0)) + 1
            ctx.storage.put("count", count)
            ctx.step(f"step {count}")
            result: dict[str, Any] = {"count": count, "tag": message.args.get("tag")}
            if message.kind == "conflict":
                result["state"] = "conflict"
            return result
        finally:
            with cls.guard:
                cls.live -= 1
                cls.log.append((self.key, str(message.args.get("tag")), start, time.monotonic()))


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    Recorder.log = []
    Recorder.peak = 0
    eng = EmbeddedEngine(tmp_path / ".forkman", Recorder, jobs=2)
    yield eng
    eng.shutdown()


def test_one_message_at_a_time_per_key_in_order_and_bounded_parallelism(engine: Any) -> None:
    futures = [
        engine.send(f"k{k}", Message("work", {"tag": f"{k}-{i}", "sleep": 0.01}))
        for i in range(5)
        for k in range(4)
    ]
    replies = [f.result() for f in futures]
    assert all(r.ok for r in replies)
    for k in range(4):
        mine = [entry for entry in Recorder.log if entry[0] == f"k{k}"]
        assert [tag for _, tag, _, _ in mine] == [f"{k}-{i}" for i in range(5)]
        for before, after in itertools.pairwise(mine):
            assert before[3] <= after[2], "two messages of one key overlapped"
    assert Recorder.peak == 2  # different keys ran in parallel, never more than jobs
    assert [r.result["count"] for r in replies if r.key == "k0"] == [1, 2, 3, 4, 5]


def test_reply_is_released_only_after_the_outcome_is_durable(engine: Any, tmp_path: Path) -> None:
    seen: list[Any] = []

    def on_done(future: Any) -> None:
        # another connection (as another process would) already sees the outcome
        db = sqlite3.connect(tmp_path / ".forkman" / DB_NAME)
        try:
            seen.append(db.execute("SELECT state, intent, last_result FROM actors").fetchone())
        finally:
            db.close()

    future = engine.send("a", Message("work", {"tag": "x"}))
    future.add_done_callback(on_done)
    reply = future.result()
    time.sleep(0.05)
    state, intent, last = seen[0]
    assert (state, intent) == ("idle", None)
    assert reply.message_id in last


def test_a_message_handled_twice_runs_once(engine: Any) -> None:
    message = Message("work", {"tag": "once"})
    first = engine.ask("a", message)
    second = engine.ask("a", message)
    assert first.result == second.result == {"count": 1, "tag": "once"}
    assert (first.duplicate, second.duplicate) == (False, True)
    assert len(Recorder.log) == 1


def test_idle_actors_hibernate_and_rehydrate_from_storage(engine: Any) -> None:
    engine.ask("a", Message("work"))
    assert engine.in_memory() == set()
    before = engine.activations
    assert engine.ask("a", Message("work")).result["count"] == 2
    assert engine.activations == before + 1
    restarted = EmbeddedEngine(engine.state_dir, Recorder)
    try:
        assert restarted.ask("a", Message("work")).result["count"] == 3
    finally:
        restarted.shutdown()


def test_failures_and_conflicts_are_recorded_outcomes(engine: Any) -> None:
    failed = engine.ask("a", Message("fail"))
    assert not failed.ok and failed.state is ActorState.FAILED
    assert failed.error == "upstream vanished (hint: try later)"
    crashed = engine.ask("b", Message("crash"))
    assert crashed.error == "ValueError: a bug"
    conflict = engine.ask("c", Message("conflict"))
    assert conflict.ok and conflict.state is ActorState.CONFLICT
    states = {k: s.state for k, s in engine.statuses().items()}
    assert states == {"a": ActorState.FAILED, "b": ActorState.FAILED, "c": ActorState.CONFLICT}
    assert engine.ask("a", Message("work")).state is ActorState.IDLE


class RollingBack(Actor):
    recovered: ClassVar[list[Intent]] = []

    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, Any]:
        return {"handled": message.kind}

    def recover(self, ctx: ActorContext, intent: Intent) -> Mapping[str, Any]:
        type(self).recovered.append(intent)
        ctx.storage.put("rolled-back", intent.progress["from"])
        return {"rolled_back_to": intent.progress["from"]}


def test_an_intent_without_outcome_is_recovered_before_new_messages(tmp_path: Path) -> None:
    store = StateStore(tmp_path / DB_NAME)
    interrupted = Message("sync", {"to": "2.0"})
    intent = store.begin_intent("a", interrupted, ActorState.SYNCING)
    store.update_intent(intent, "merging", {"from": "1.0"})
    store.close()  # the process "died" here

    RollingBack.recovered = []
    observer = RecordingObserver()
    engine = EmbeddedEngine(tmp_path, RollingBack, observer=observer)
    try:
        assert engine.statuses()["a"].state is ActorState.SYNCING
        reply = engine.ask("a", Message("status"))
        assert reply.result == {"handled": "status"}
        [seen] = RollingBack.recovered
        assert (seen.message, seen.step, seen.progress) == (interrupted, "merging", {"from": "1.0"})
        # the caller retrying the interrupted message gets the recovery's outcome
        retried = engine.ask("a", interrupted)
        assert retried.duplicate and retried.recovered
        assert retried.result == {"rolled_back_to": "1.0"}
        assert engine.statuses()["a"].intent is None
        assert ("a", "recovering interrupted sync") in observer.steps
    finally:
        engine.shutdown()


def test_storage_transactions_commit_together_or_not_at_all(tmp_path: Path) -> None:
    store = StateStore(tmp_path / DB_NAME)
    storage = store.storage("a")
    storage.put("x/1", {"v": 1})
    with storage.transaction():
        storage.put("x/2", [1, 2])
        storage.put("y", "z")
    with pytest.raises(RuntimeError), storage.transaction():
        storage.put("x/3", 3)
        storage.delete("y")
        raise RuntimeError("abort")
    assert storage.list("x/") == {"x/1": {"v": 1}, "x/2": [1, 2]}
    assert storage.get("y") == "z" and storage.get("missing", 7) == 7
    assert storage.delete("y") and not storage.delete("y")
    assert store.storage("b").list() == {}
    with pytest.raises(ForkmanError, match="JSON"):
        storage.put("bad", {1, 2})
    store.close()


def test_a_corrupt_database_is_a_clear_error_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ForkmanError) as info:
        EmbeddedEngine(tmp_path, Recorder)
    assert info.value.exit_code == 2
    assert "corrupt" in info.value.diagnostics() and "move it aside" in info.value.diagnostics()
    assert db.read_bytes() == b"this is not sqlite" * 100


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    StateStore(tmp_path / DB_NAME).close()
    raw = sqlite3.connect(tmp_path / DB_NAME)
    raw.execute("UPDATE schema_version SET version=?", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    before = (tmp_path / DB_NAME).read_bytes()
    with pytest.raises(ForkmanError, match="newer forkman") as info:
        StateStore(tmp_path / DB_NAME)
    assert "upgrade forkman" in info.value.diagnostics()
    assert (tmp_path / DB_NAME).read_bytes() == before


def test_a_locked_database_waits_then_says_busy(tmp_path: Path) -> None:
    store = StateStore(tmp_path / DB_NAME, wait=0.2)
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    start = time.monotonic()
    with pytest.raises(Busy, match="busy") as info:
        store.storage("a").put("x", 1)
    assert time.monotonic() - start >= 0.15
    assert "--wait" in info.value.diagnostics()
    holder.execute("ROLLBACK")
    store.storage("a").put("x", 1)  # free again: works
    holder.close()
    store.close()


_HOLD = """
import sys, time
from pathlib import Path
from forkman.actors.embedded import EmbeddedEngine
from forkman.actors.interface import Actor, Message

class Slow(Actor):
    def handle(self, ctx, message):
        print("holding", flush=True)
        time.sleep(float(message.args["seconds"]))
        return {"slept": True}

engine = EmbeddedEngine(Path(sys.argv[1]), Slow)
engine.ask("fork:attrs", Message("sleep", {"seconds": sys.argv[2]}))
engine.shutdown()
"""


def _hold(state_dir: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(state_dir), str(seconds)],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    return proc


def test_a_fork_busy_in_another_process_is_reported_or_queued(tmp_path: Path) -> None:
    state = tmp_path / ".forkman"
    proc = _hold(state, 2.0)
    try:
        impatient = EmbeddedEngine(state, Recorder, wait=0.3)
        try:
            with pytest.raises(Busy) as info:
                impatient.ask("fork:attrs", Message("work"))
            assert f"fork attrs is busy: forkman process {proc.pid}" in info.value.message
            # other forks are not blocked
            assert impatient.ask("fork:idna", Message("work")).ok
        finally:
            impatient.shutdown()
        observer = RecordingObserver()
        patient = EmbeddedEngine(state, Recorder, wait=30, observer=observer)
        try:
            start = time.monotonic()
            reply = patient.ask("fork:attrs", Message("work"))
            # it queued behind the other process until its 2 s operation ended
            assert reply.ok and time.monotonic() - start > 0.5
            assert proc.wait(timeout=30) == 0
            assert any("waiting" in w and str(proc.pid) in w for w in observer.warnings)
        finally:
            patient.shutdown()
    finally:
        proc.kill()
        proc.wait()


def test_bad_jobs_and_unknown_state_query(tmp_path: Path) -> None:
    with pytest.raises(ForkmanError, match="at least 1"):
        EmbeddedEngine(tmp_path, Recorder, jobs=0)
    engine = EmbeddedEngine(tmp_path, Recorder)
    engine.shutdown()
    with pytest.raises(ForkmanError, match="shut down"):
        engine.send("a", Message("work"))


def test_every_actor_state_has_a_busy_flag_and_round_trips() -> None:
    for state in ActorState:
        reply = Reply("k", "m", True, state)
        assert Reply.from_json(reply.to_json()).state is state
        assert isinstance(state.busy, bool)
    assert {s for s in ActorState if not s.busy} == {
        ActorState.IDLE,
        ActorState.INTERRUPTED,
        ActorState.CONFLICT,
        ActorState.FAILED,
    }


def test_unknown_operation_is_not_found() -> None:
    from forkman.actors.registry import operation_for_kind

    with pytest.raises(NotFound, match="no operation 'nope'"):
        operation_for_kind("nope")


def test_submit_task_runs_stateless_work_beside_the_actors(engine: Any) -> None:
    futures = [engine.submit_task(pow, 2, n) for n in range(5)]
    assert [f.result() for f in futures] == [1, 2, 4, 8, 16]
