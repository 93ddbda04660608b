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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..core.errors import ConfigError
from ..core.observer import Observer
from .fork_actor import FORK_PREFIX, fork_key, operation
from .interface import Alarm, Engine, Message, Reply

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
            operation(kind)
        except Exception:
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
class WatchRound:
    """One pass of ``forkman watch``."""

    delivered: list[tuple[Alarm, Reply]]
    """Alarms delivered in this pass, with the replies."""
    upcoming: list[Alarm]
    """All alarms, soonest first (what is due next)."""


def watch_once(engine: Engine, now: float | None = None) -> WatchRound:
    """Deliver the due alarms, then list what is due next."""
    delivered = engine.run_due_alarms(time.time() if now is None else now)
    return WatchRound(delivered, engine.alarms())
