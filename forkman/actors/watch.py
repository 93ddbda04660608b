"""Scheduled work per fork: upstream checks and re-audits, run by ``forkman watch``.

Configured in ``[tool.forkman.watch]``::

    [tool.forkman.watch]
    check-upstream = "24h"   # message kind = interval ("30m", "1d", "90s", "1h30m")
    audit = "24h"

Each entry becomes a durable, repeating alarm on every fork's actor (alarm
name = message kind). Alarms are delivered at least once, retried with capped
exponential backoff when the operation fails, and survive restarts: a
restarted watch keeps each alarm's due time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import BadInput, ConfigError, ForkmanError, NotFound
from ..core.observer import NullObserver, Observer
from .fork_actor import FORK_PREFIX, fork_key, open_engine
from .interface import Alarm, Engine, Message, Reply
from .registry import operation_for_kind

if TYPE_CHECKING:
    from ..model.project import Project

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
DEFAULT_WATCH = {"check-upstream": "24h", "audit": "24h"}


def parse_duration(text: str | int | float, *, where: str = "duration") -> float:
    """Seconds in ``"24h"``, ``"1h30m"``, ``"90s"``, ``"2d"`` (or a bare number of seconds)."""
    if isinstance(text, bool):
        raise ConfigError(f'{where} must be a duration like "24h", not {text!r}')
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        compact = text.strip().lower().replace(" ", "")
        pos = 0
        seconds = 0.0
        for match in _DURATION.finditer(compact):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if not compact or pos != len(compact):
            raise ConfigError(
                f'{where} must be a duration like "24h", "30m" or "1h30m", not {text!r}'
            )
    if seconds <= 0:
        raise ConfigError(f"{where} must be longer than zero, not {text!r}")
    return seconds


@dataclass(frozen=True)
class WatchPolicy:
    """What ``forkman watch`` schedules on every fork."""

    intervals: Mapping[str, float]
    """Operation (message kind) -> repeat interval in seconds."""


def watch_policy(section: Mapping[str, object]) -> WatchPolicy:
    """Parse ``[tool.forkman.watch]`` (defaults: both checks every 24 h)."""
    table = {**DEFAULT_WATCH, **section}
    intervals: dict[str, float] = {}
    for kind, value in table.items():
        if value is False or value == "off":
            continue
        if not isinstance(value, str | int | float):
            raise ConfigError(f'[tool.forkman.watch].{kind} must be a duration like "24h"')
        intervals[kind] = parse_duration(value, where=f"[tool.forkman.watch].{kind}")
    return WatchPolicy(intervals)


def ensure_alarms(
    engine: Engine, names: Iterable[str], policy: WatchPolicy, observer: Observer, now: float
) -> list[str]:
    """Schedule the policy's alarms on every fork (keeping due times of existing ones).

    Returns the operations scheduled; operations this forkman does not have
    are skipped with a warning, and alarms of forks no longer listed are removed.
    """
    kinds: list[str] = []
    for kind in policy.intervals:
        try:
            operation_for_kind(kind)
        except NotFound:
            observer.warning(f"watch: no {kind!r} operation is available; not scheduling it")
            continue
        kinds.append(kind)
    wanted = {fork_key(n) for n in names}
    for alarm in engine.alarms():
        if alarm.key.startswith(FORK_PREFIX) and (
            alarm.key not in wanted or alarm.name not in kinds
        ):
            engine.cancel_alarm(alarm.key, alarm.name)
    existing = {(a.key, a.name) for a in engine.alarms()}
    for key in sorted(wanted):
        for kind in kinds:
            if (key, kind) in existing:
                continue
            every = policy.intervals[kind]
            # first run now: a newly watched fork gets checked right away
            engine.schedule_alarm(key, kind, now, Message(kind), every=every)
    return kinds


@dataclass(frozen=True)
class WatchEvent:
    """One scheduled operation delivered to one fork."""

    fork: str
    """The fork."""
    kind: str
    """The operation (the alarm's name), e.g. ``check-upstream``."""
    ok: bool
    """It ran."""
    found: bool
    """It ran and found something (e.g. an open vulnerability)."""
    headline: str | None
    """What it says, in a line (None: nothing beyond "ok")."""
    error: str | None
    """Why it failed (when not ok)."""

    @property
    def failed(self) -> bool:
        """Whether it counts against ``watch --once`` (failed, or found something)."""
        return not self.ok or self.found


def watch_event(alarm: Alarm, reply: Reply) -> WatchEvent:
    """What the delivery of `alarm` (answered by `reply`) says, from its typed result."""
    fork = alarm.key[len(FORK_PREFIX) :] if alarm.key.startswith(FORK_PREFIX) else alarm.key
    if not reply.ok:
        return WatchEvent(fork, alarm.name, False, False, None, reply.error)
    try:
        result = operation_for_kind(alarm.message_kind).result.from_json(reply.result)
    except ForkmanError as exc:
        return WatchEvent(fork, alarm.name, False, False, None, exc.message)
    return WatchEvent(fork, alarm.name, True, result.found(), result.headline(), None)


@dataclass(frozen=True)
class WatchRound:
    """One pass of ``forkman watch``."""

    delivered: list[tuple[Alarm, Reply]]
    """Alarms delivered in this pass, with the replies."""
    upcoming: list[Alarm]
    """All alarms, soonest first (what is due next)."""

    def events(self) -> list[WatchEvent]:
        """The deliveries of this pass, with what each result says."""
        return [watch_event(alarm, reply) for alarm, reply in self.delivered]


def watch_once(engine: Engine, now: float | None = None) -> WatchRound:
    """Deliver the due alarms, then list what is due next."""
    delivered = engine.run_due_alarms(time.time() if now is None else now)
    return WatchRound(delivered, engine.alarms())


@dataclass(frozen=True)
class WatchSummary:
    """What a run of ``forkman watch`` did."""

    forks: tuple[str, ...]
    """The forks watched (none: nothing was run)."""
    kinds: tuple[str, ...]
    """The operations scheduled on each (none: nothing was run)."""
    rounds: int = 0
    """The passes made."""
    failures: int = 0
    """Deliveries that failed or found something."""

    def exit_code(self) -> int:
        """1 when a delivery failed or found something, else 0."""
        return 1 if self.failures else 0


def watch_forks(
    project: Project,
    *,
    engine: str = "embedded",
    jobs: int | None = None,
    wait: float = 0.0,
    observer: Observer | None = None,
    once: bool = False,
    interval: float = 60.0,
    on_round: Callable[[WatchRound], None] | None = None,
) -> WatchSummary:
    """Schedule ``[tool.forkman.watch]`` on every fork, then deliver what is due, pass after
    pass (sleeping at most `interval` seconds in between) until interrupted, or once.

    `on_round` gets each pass as it ends. Interrupting the sleep (Ctrl-C) ends the run.
    """
    if interval <= 0:
        raise BadInput("--interval must be a positive number of seconds")
    policy = watch_policy(project.config.section("watch"))
    names = sorted(project.load_lock().forks) if project.lock_path.exists() else []
    observer = observer or NullObserver()
    actors = open_engine(project, engine=engine, jobs=jobs, wait=wait, observer=observer)
    try:
        kinds = ensure_alarms(actors, names, policy, observer, time.time())
        summary = WatchSummary(tuple(names), tuple(kinds))
        if not names or not kinds:
            return summary
        rounds = failures = 0
        while True:
            result = watch_once(actors)
            rounds += 1
            failures += sum(1 for event in result.events() if event.failed)
            if on_round is not None:
                on_round(result)
            if once:
                break
            now = time.time()
            soonest = min((a.due for a in result.upcoming), default=now + interval)
            try:
                time.sleep(max(0.05, min(interval, soonest - now)))
            except KeyboardInterrupt:
                break
        return WatchSummary(summary.forks, summary.kinds, rounds, failures)
    finally:
        actors.shutdown()
