"""Alarms (durable, at least once, backoff, restarts) and `forkman watch`."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from forkman.actors import (
    ActorContext,
    ActorState,
    Message,
    OperationArgs,
    OperationResult,
    actor_states,
    register_operation,
)
from forkman.actors.embedded import BACKOFF_BASE, BACKOFF_CAP, EmbeddedEngine, alarm_backoff
from forkman.actors.interface import Actor
from forkman.actors.progress import LiveProgress, PlainProgress, progress_for
from forkman.actors.watch import parse_duration, watch_policy
from forkman.cli import cli
from forkman.core.errors import ConfigError
from forkman.core.observer import RecordingObserver
from forkman.model.lock import IndexSource, Lock, LockEntry, write_lock
from forkman.model.project import Project


class Flaky(Actor):
    calls: ClassVar[list[str]] = []

    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, Any]:
        type(self).calls.append(message.id)
        if message.args.get("fail"):
            raise RuntimeError("index unreachable")
        return {"ok": True}


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    Flaky.calls = []
    eng = EmbeddedEngine(tmp_path, Flaky)
    yield eng
    eng.shutdown()


def test_one_shot_alarm_fires_once_when_due(engine: Any) -> None:
    now = 1_000_000.0
    engine.schedule_alarm("a", "ping", now + 10, Message("ping"))
    assert engine.run_due_alarms(now) == []
    [(alarm, reply)] = engine.run_due_alarms(now + 10)
    assert alarm.name == "ping" and reply.ok
    assert engine.alarms() == [] and len(Flaky.calls) == 1


def test_repeating_alarm_is_rescheduled_and_survives_a_restart(engine: Any, tmp_path: Path) -> None:
    now = time.time()
    engine.schedule_alarm("a", "check", now - 1, Message("check"), every=3600)
    [(_, reply)] = engine.run_due_alarms(now)
    assert reply.ok
    [alarm] = engine.alarms()
    assert alarm.due == pytest.approx(now - 1 + 3600) and alarm.attempts == 0
    engine.shutdown()
    restarted = EmbeddedEngine(tmp_path, Flaky)
    try:
        assert restarted.alarms() == [alarm]
        assert restarted.run_due_alarms(now + 100) == []
        assert len(restarted.run_due_alarms(now + 3600)) == 1
    finally:
        restarted.shutdown()


def test_failed_alarm_backs_off_exponentially_and_is_capped(engine: Any) -> None:
    now = time.time()
    engine.schedule_alarm("a", "check", now, Message("check", {"fail": True}))
    dues = []
    for _ in range(3):
        [(_, reply)] = engine.run_due_alarms(time.time() + 10**6)
        assert not reply.ok and reply.state is ActorState.FAILED
        [alarm] = engine.alarms()
        dues.append(alarm.due - time.time())
        assert alarm.last_error == "RuntimeError: index unreachable"
    assert alarm.attempts == 3
    assert [round(d) for d in dues] == [BACKOFF_BASE, 2 * BACKOFF_BASE, 4 * BACKOFF_BASE]
    assert len(set(Flaky.calls)) == 3  # each retry is a new delivery, not a duplicate
    assert alarm_backoff(50, None) == BACKOFF_CAP
    assert alarm_backoff(50, 3600.0) == 3600.0


def test_a_redelivered_alarm_is_deduplicated(engine: Any) -> None:
    now = time.time()
    engine.schedule_alarm("a", "once", now, Message("once"))
    [alarm] = engine.alarms()
    # delivered, then the process died before the alarm was removed
    assert engine.ask("a", alarm.message()).ok
    [(_, reply)] = engine.run_due_alarms(now)
    assert reply.duplicate and len(Flaky.calls) == 1
    assert engine.alarms() == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("2d", 172800), (15, 15)],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "1x", "-1h", "0s", "1h 2", True])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_watch_policy_defaults_and_off() -> None:
    assert watch_policy({}).intervals == {"check-upstream": 86400, "audit": 86400}
    assert watch_policy({"audit": "off", "check-upstream": "6h"}).intervals == {
        "check-upstream": 21600
    }
    with pytest.raises(ConfigError, match=r"\[tool.forkman.watch\].audit"):
        watch_policy({"audit": "daily"})


def _entry(name: str) -> LockEntry:
    source = IndexSource(
        "http://i/simple", f"http://i/{name}.tar.gz", f"{name}.tar.gz", "0" * 64, name
    )
    return LockEntry(
        name, "1.0", f"vendor/{name}", source, "sha256:0", "sha256:0", "2026-01-01T00:00:00Z"
    )


CHECKS: list[str] = []


@dataclass(frozen=True)
class _Checked(OperationResult):
    latest: str


@dataclass(frozen=True)
class _CheckArgs(OperationArgs[_Checked]):
    KIND: ClassVar[str] = "check-upstream"


def _check_upstream(project: Project, name: str, args: _CheckArgs, ctx: ActorContext) -> _Checked:
    CHECKS.append(name)
    if name == "broken":
        raise RuntimeError("no index")
    return _Checked("1.0")


def test_watch_once_runs_due_checks_and_shows_what_is_next(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forkman.operations.handlers  # noqa: F401 (registers the real operations first)

    monkeypatch.setattr("forkman.actors.registry._registry", {})
    register_operation(_CheckArgs, _Checked, _check_upstream)
    CHECKS.clear()
    write_lock(project / "forkman.lock", Lock({n: _entry(n) for n in ("attrs", "broken")}))
    with (project / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.forkman.watch]\ncheck-upstream = "6h"\naudit = "off"\n')
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--project", str(project), "watch", "--once"], catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    assert "attrs: check-upstream ok" in result.stdout
    assert "broken: check-upstream FAILED: RuntimeError: no index" in result.stdout
    assert "attrs                    check-upstream   in 6h" in result.stdout
    assert "broken                   check-upstream   in 30s (retry 1)" in result.stdout
    assert sorted(CHECKS) == ["attrs", "broken"]
    # a second pass right away: nothing due, nothing run
    again = runner.invoke(
        cli, ["--project", str(project), "watch", "--once"], catch_exceptions=False
    )
    assert again.exit_code == 0 and sorted(CHECKS) == ["attrs", "broken"]
    states = actor_states(Project(project))
    assert states["attrs"].state is ActorState.IDLE and states["broken"].state is ActorState.FAILED
    assert states["broken"].last_result is not None
    assert states["broken"].last_result["error"] == "RuntimeError: no index"


def test_watch_through_the_api_reports_typed_events(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forkman.operations.handlers  # noqa: F401 (registers the real operations first)
    from forkman.api import Project as Api
    from forkman.core.errors import BadInput

    monkeypatch.setattr("forkman.actors.registry._registry", {})
    register_operation(_CheckArgs, _Checked, _check_upstream)
    write_lock(project / "forkman.lock", Lock({n: _entry(n) for n in ("attrs", "broken")}))
    with (project / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.forkman.watch]\ncheck-upstream = "6h"\naudit = "off"\n')
    rounds: list[Any] = []
    done = Api.open(project).watch(once=True, on_round=rounds.append)
    assert (done.forks, done.kinds, done.rounds, done.failures) == (
        ("attrs", "broken"),
        ("check-upstream",),
        1,
        1,
    )
    assert done.exit_code() == 1
    events = {e.fork: e for e in rounds[0].events()}
    assert events["attrs"].ok and not events["attrs"].failed
    assert not events["broken"].ok and events["broken"].error == "RuntimeError: no index"
    with pytest.raises(BadInput, match="--interval must be a positive"):
        Api.open(project).watch(interval=0)


def test_watch_rejects_bad_config(project: Path) -> None:
    with (project / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.forkman.watch]\naudit = "daily"\n')
    result = CliRunner().invoke(cli, ["--project", str(project), "watch", "--once"])
    assert result.exit_code == 2
    assert 'must be a duration like "24h"' in result.stderr


def test_plain_progress_lines() -> None:
    out = io.StringIO()
    view = progress_for(out)
    assert isinstance(view, PlainProgress)
    view.actor_state("attrs", ActorState.SYNCING, "")
    view.step("attrs", "merging 24.1")
    view.actor_state("attrs", ActorState.CONFLICT, "")
    view.actor_state("other", ActorState.FAILED, "why it failed")
    view.actor_state("third", ActorState.IDLE, "")
    view.warning("slow index")
    # how an operation ended is the command's own output, said once
    assert out.getvalue().splitlines() == [
        "attrs: syncing",
        "attrs: merging 24.1",
        "warning: slow index",
    ]


def test_live_progress_shows_every_state_step_and_elapsed() -> None:
    out = io.StringIO()
    view = LiveProgress(out)
    with view:
        for i, state in enumerate(ActorState):
            view.actor_state(f"fork{i:02}", state, f"step-{state.value}")
    text = out.getvalue()
    for i, state in enumerate(ActorState):
        assert f"fork{i:02}" in text and state.value in text and f"step-{state.value}" in text
    assert "elapsed" in text


def test_engine_reports_states_to_the_observer(tmp_path: Path) -> None:
    seen: list[tuple[str, ActorState, str]] = []

    class Watcher(RecordingObserver):
        def actor_state(self, subject: str, state: ActorState, step: str) -> None:
            seen.append((subject, state, step))

    engine = EmbeddedEngine(tmp_path, Flaky, observer=Watcher())
    try:
        engine.ask("fork:attrs", Message("x"))
    finally:
        engine.shutdown()
    assert seen == [("attrs", ActorState.WORKING, ""), ("attrs", ActorState.IDLE, "")]
