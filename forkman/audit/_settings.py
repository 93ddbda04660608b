"""`[tool.forkman.audit]`: database location, ignores, provenance and review policy."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..model.project import Project, cache_root
from .osvdb import DB_FILENAME


class Severity(enum.IntEnum):
    """How much a review finding matters (ordered)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str, where: str) -> Severity:
        """`text` (case-insensitive) as a severity."""
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise ConfigError(f"{where}: unknown severity {text!r} (one of {names})") from None


@dataclass(frozen=True)
class Ignore:
    """A vulnerability the project accepts for a while."""

    id: str
    """The advisory id or one of its aliases."""
    reason: str
    """Why it is acceptable (required)."""
    expires: dt.date
    """From this day on the ignore no longer applies."""
    forks: tuple[str, ...] = ()
    """Forks it applies to (empty: all)."""

    def expired(self, today: dt.date) -> bool:
        """Whether the ignore has run out on `today`."""
        return today >= self.expires


@dataclass(frozen=True)
class AuditSettings:
    """The audit policy of one project."""

    database: Path
    """Where the local OSV database lives."""
    ignores: tuple[Ignore, ...] = ()
    """Accepted vulnerabilities."""
    require_provenance: bool = False
    """Refuse releases without verified provenance (all forks)."""
    block_on: Severity = Severity.HIGH
    """Review findings at or above this severity block."""
    per_fork: Mapping[str, Mapping[str, Any]] | None = None
    """``[tool.forkman.forks.NAME.audit]`` tables."""

    def requires_provenance(self, name: str) -> bool:
        """Whether fork `name` must carry verified provenance."""
        table = (self.per_fork or {}).get(name, {})
        value = table.get("require-provenance", self.require_provenance)
        return bool(value)


def default_database() -> Path:
    """The per-user database location."""
    return cache_root() / DB_FILENAME


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(
        f"{where}: expires must be a date like 2027-01-01, not {value!r}",
        hint="every ignore needs an expiry so that it is reviewed again",
    )


def _ignores(raw: Any) -> tuple[Ignore, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("[tool.forkman.audit] ignore must be an array of tables ([[...ignore]])")
    out = []
    for i, item in enumerate(raw):
        where = f"[[tool.forkman.audit.ignore]] #{i + 1}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be a table")
        vid = item.get("id")
        if not isinstance(vid, str) or not vid.strip():
            raise ConfigError(f"{where}: missing id")
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(
                f"{where} ({vid}): missing reason",
                hint='say why the vulnerability is acceptable: reason = "..."',
            )
        if "expires" not in item:
            raise ConfigError(
                f"{where} ({vid}): missing expires",
                hint="every ignore needs an expiry date, e.g. expires = 2027-01-01",
            )
        forks = item.get("forks", [])
        if not isinstance(forks, list) or not all(isinstance(f, str) for f in forks):
            raise ConfigError(f"{where} ({vid}): forks must be a list of fork names")
        out.append(Ignore(vid.strip(), reason.strip(), _date(item["expires"], where), tuple(forks)))
    return tuple(out)


def load_settings(project: Project | None, *, database: Path | None = None) -> AuditSettings:
    """The audit settings of `project` (defaults without a project); `database` overrides."""
    table: Mapping[str, Any] = project.config.section("audit") if project is not None else {}
    if not isinstance(table, Mapping):
        raise ConfigError("[tool.forkman.audit] must be a table")
    db = database
    if db is None:
        configured = table.get("database")
        if configured is not None:
            if not isinstance(configured, str) or not configured:
                raise ConfigError("[tool.forkman.audit] database must be a path")
            path = Path(configured).expanduser()
            db = path if path.is_absolute() or project is None else project.root / path
        else:
            db = default_database()
    require = table.get("require-provenance", False)
    if not isinstance(require, bool):
        raise ConfigError("[tool.forkman.audit] require-provenance must be true or false")
    block = table.get("block-on", "high")
    if not isinstance(block, str):
        raise ConfigError("[tool.forkman.audit] block-on must be a severity name")
    per_fork: dict[str, Mapping[str, Any]] = {}
    if project is not None:
        for name, policy in project.config.forks.items():
            sub = policy.raw.get("audit")
            if isinstance(sub, Mapping):
                per_fork[name] = sub
    return AuditSettings(
        database=db,
        ignores=_ignores(table.get("ignore")),
        require_provenance=require,
        block_on=Severity.parse(block, "[tool.forkman.audit] block-on"),
        per_fork=per_fork,
    )
