"""Fork actors: routing operations by name, status rows, exclusion, the Ray engine."""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from forkman.actors import (
    ActorState,
    Message,
    OperationArgs,
    OperationResult,
    actor_states,
    fork_key,
    open_engine,
    register_operation,
    run_for_forks,
)
from forkman.actors._keylock import acquire, lock_file_name
from forkman.actors.embedded import LOCKS_DIR
from forkman.core.errors import BadInput, Busy, ForkmanError, NotFound
from forkman.core.observer import RecordingObserver
from forkman.model.project import Project
from tests.support.journaled_workload import (
    BumpArgs,
    BumpResult,
    ScriptedSyncArgs,
    ScriptedSyncResult,
    bump,
    check_consistency,
    read_lock,
    scripted_sync,
)

RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(autouse=True)
def _operations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("forkman.actors.registry._registry", {})
    register_operation(
        ScriptedSyncArgs, ScriptedSyncResult, scripted_sync, state=ActorState.SYNCING
    )
    register_operation(BumpArgs, BumpResult, bump)


def test_run_for_forks_routes_an_operation_to_every_fork(tmp_path: Path) -> None:
    project = Project(tmp_path)
    replies = run_for_forks(
        project, ["attrs", "conflicted", "broken", "attrs"], ScriptedSyncArgs(to="2.0"), jobs=2
    )
    assert list(replies) == ["attrs", "conflicted", "broken"]
    assert replies["attrs"].result == {"version": "2.0"} and replies["attrs"].ok
    assert replies["attrs"].value == ScriptedSyncResult(version="2.0")
    assert replies["conflicted"].value == ScriptedSyncResult(files=("a.py",))
    assert replies["broken"].value is None
    assert replies["conflicted"].state is ActorState.CONFLICT
    assert not replies["broken"].ok and "not on the index" in (replies["broken"].error or "")
    states = actor_states(project)
    assert {n: s.state for n, s in states.items()} == {
        "attrs": ActorState.IDLE,
        "broken": ActorState.FAILED,
        "conflicted": ActorState.CONFLICT,
    }
    _state, step, updated, last = states["attrs"]
    assert step == "" and time.time() - updated < 60 and last is not None and last["ok"]
    now = time.time()
    assert states["attrs"].describe(now) == "idle"
    assert states["conflicted"].describe(now) == "conflict"
    assert states["broken"].describe(now) == ("failed: broken 2.0 is not on the index")
    busy = states["attrs"]._replace(state=ActorState.SYNCING, step="merging", updated=now - 30)
    assert busy.describe(now) == "syncing (merging, 30s)"


def test_actor_states_shows_an_operation_in_progress(tmp_path: Path) -> None:
    from forkman.actors._store import StateStore

    project = Project(tmp_path)
    assert actor_states(project) == {}
    store = StateStore(project.ensure_state_dir() / "actors.sqlite")
    intent = store.begin_intent(fork_key("attrs"), Message("sync", {"to": "2"}), ActorState.SYNCING)
    store.update_intent(intent, "merging 2", {})
    store.close()
    lock_dir = project.state_dir / LOCKS_DIR
    lock_dir.mkdir()
    held = acquire(lock_dir, fork_key("attrs"), wait=0, what="fork attrs")
    try:  # a live process is working on it
        [(name, row)] = actor_states(project).items()
        assert (name, row.state, row.step) == ("attrs", ActorState.SYNCING, "merging 2")
    finally:
        held.release()
    # its process died: the state says so, and the next command recovers it
    [(name, row)] = actor_states(project).items()
    assert row.state is ActorState.INTERRUPTED
    assert row.step == "sync interrupted at 'merging 2'; the next command on this fork recovers it"
    reply = run_for_forks(project, ["attrs"], ScriptedSyncArgs(to="3"))["attrs"]
    assert reply.ok and actor_states(project)["attrs"].state is ActorState.IDLE
    assert actor_states(project)["attrs"].last_result["result"] == {"version": "3"}  # type: ignore[index]


@dataclass(frozen=True)
class MergeResult(OperationResult):
    pass


@dataclass(frozen=True)
class MergeArgs(OperationArgs[MergeResult]):
    """A message type no module registered."""

    KIND: ClassVar[str] = "merge"


def test_unknown_operation_or_engine_fails_before_anything_runs(tmp_path: Path) -> None:
    project = Project(tmp_path)
    with pytest.raises(NotFound, match="no operation 'merge'") as info:
        run_for_forks(project, ["attrs"], MergeArgs())
    assert "sync" in (info.value.hint or "")
    assert "forkman.operations.handlers" in (info.value.hint or "")
    with pytest.raises(BadInput, match="unknown actor engine"):
        open_engine(project, engine="spark")
    assert not (tmp_path / ".forkman" / "actors.sqlite").exists()


def test_a_fork_held_by_another_process_is_busy(tmp_path: Path) -> None:
    """A busy fork is a failed reply of its own: the other forks' work still happens."""
    project = Project(tmp_path)
    lock_dir = project.ensure_state_dir() / LOCKS_DIR
    lock_dir.mkdir()
    held = acquire(lock_dir, fork_key("attrs"), wait=0, what="fork attrs")
    try:
        replies = run_for_forks(project, ["attrs", "other"], ScriptedSyncArgs(to="2"), wait=0.1)
        busy = replies["attrs"]
        assert not busy.ok and busy.result["error_kind"] == Busy.__name__
        assert f"fork attrs is busy: forkman process {os.getpid()}" in (busy.error or "")
        assert replies["other"].ok
    finally:
        held.release()
    assert run_for_forks(project, ["attrs"], ScriptedSyncArgs(to="2"))["attrs"].ok


def test_lock_file_names_are_safe_and_unique() -> None:
    assert lock_file_name("fork:attrs") == "fork_attrs-" + lock_file_name("fork:attrs")[11:]
    assert lock_file_name("plain") == "plain.lock"
    assert lock_file_name("a/b") != lock_file_name("a_b")
    assert "/" not in lock_file_name("../../etc/passwd")


@pytest.mark.ray
@pytest.mark.skipif(not RAY, reason="ray is not installed (pip install 'forkman[ray]')")
def test_ray_engine_shards_fork_actors_keeps_order_and_state_in_the_store(tmp_path: Path) -> None:
    project = Project(tmp_path)
    seen: list[tuple[str, ActorState, str]] = []

    class Watcher(RecordingObserver):
        def actor_state(self, subject: str, state: ActorState, step: str) -> None:
            seen.append((subject, state, step))

    engine = open_engine(project, engine="ray", jobs=2, observer=Watcher())
    try:
        from forkman.actors.ray_engine import RayEngine

        assert isinstance(engine, RayEngine) and engine.shards == 2
        pids = engine.shard_pids()
        assert len(set(pids)) == 2 and os.getpid() not in pids
        names = [f"pkg{i}" for i in range(4)]
        futures = {
            name: [engine.send(fork_key(name), Message("bump", {"version": v})) for v in (1, 2, 3)]
            for name in names
        }
        for name, fs in futures.items():
            assert [f.result().result["version"] for f in fs] == [1, 2, 3], name
        # a failure inside a shard comes back as a failed reply, not a lost actor
        failed = engine.ask(fork_key("broken"), Message("sync", {"to": "9"}))
        assert not failed.ok and "not on the index" in (failed.error or "")
        assert engine.submit_task(pow, 2, 10).result() == 1024
        # steps recorded inside a shard reach the driver's progress view
        slow = engine.ask(fork_key("slow"), Message("sync", {"to": "5", "sleep": 1.0}))
        assert slow.ok
        assert ("slow", ActorState.SYNCING, "merging 5") in seen
        assert seen[-1] == ("slow", ActorState.IDLE, "")
        # state lives in the store, not in the shard: kill one, the next call restarts it
        import ray

        shard = engine._shards[0]
        ray.kill(shard, no_restart=False)
        again = {n: engine.ask(fork_key(n), Message("bump", {"version": 4})) for n in names}
        assert all(r.ok and r.result["version"] == 4 for r in again.values())
    finally:
        engine.shutdown()
    assert check_consistency(tmp_path, 4, strict=True) == 0
    assert {read_lock(tmp_path)[n]["version"] for n in names} == {4}
    assert actor_states(project)["pkg0"].last_result is not None


@pytest.mark.ray
@pytest.mark.skipif(not RAY, reason="ray is not installed (pip install 'forkman[ray]')")
def test_unreachable_ray_cluster_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forkman.cli import cli

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    result = CliRunner().invoke(
        cli, ["--project", str(tmp_path), "--engine", "ray", "watch", "--once"]
    )
    assert result.exit_code == 2, result.output
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.stderr
    assert "ray start --head" in result.stderr
    monkeypatch.delenv("RAY_ADDRESS")
    with (tmp_path / "pyproject.toml").open("a") as fh:
        fh.write('[tool.forkman.ray]\naddress = "127.0.0.1:2"\n')
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "--engine", "ray", "watch"])
    assert result.exit_code == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:2" in result.stderr


def test_ray_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ForkmanError, match="needs Ray") as info:
        open_engine(Project(tmp_path), engine="ray")
    assert "forkman[ray]" in (info.value.hint or "")
