"""The actors' durable store: one SQLite database in WAL mode.

Tables: ``actors`` (one status row per key: state, step, intent, last
result), ``kv`` (each actor's own storage), ``outcomes`` (recent replies by
message id, for idempotency), ``alarms`` and ``schema_version``. One
connection per process, guarded by a lock: every call is short, and slow work
never runs inside a transaction.

Durability: ``synchronous=NORMAL`` in WAL mode makes a commit survive the
process being killed (the WAL is in the OS page cache); ``FULL`` also
survives power loss, at about ten times the cost (see
``benchmarks/actors.py``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..core.errors import Busy, ForkmanError
from .interface import JSON, ActorState, ActorStatus, ActorStorage, Alarm, Intent, Message, Reply

SCHEMA_VERSION = 1
OUTCOMES_KEPT = 64
"""Replies remembered per key for deduplication."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS actors (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    step TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    intent TEXT,
    last_result TEXT
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (key, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcomes (
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reply TEXT NOT NULL,
    PRIMARY KEY (key, message_id)
);
CREATE INDEX IF NOT EXISTS outcomes_seq ON outcomes (key, seq);
CREATE TABLE IF NOT EXISTS alarms (
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    due REAL NOT NULL,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    every REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (key, name)
);
CREATE INDEX IF NOT EXISTS alarms_due ON alarms (due);
"""


def _dumps(value: JSON) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ForkmanError(f"actor state must be JSON: {exc}") from None


class StateStore:
    """The SQLite database under ``.forkman/actors.sqlite``."""

    def __init__(self, path: Path, *, wait: float = 10.0, durability: str = "normal") -> None:
        if durability not in ("normal", "full"):
            raise ForkmanError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.path = path
        self.wait = wait
        self._mutex = threading.RLock()
        self._depth = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                path, timeout=max(wait, 0.001), isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            # no SQL function with side effects runs from the schema (views, triggers)
            self._db.execute("PRAGMA trusted_schema=OFF")
            self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._error(exc) from None
        except ForkmanError:
            self._db.close()
            raise

    # -- errors and schema -------------------------------------------------

    def _error(self, exc: sqlite3.Error) -> ForkmanError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return Busy(
                f"the state database {self.path} is busy: another forkman process holds it",
                hint=f"wait for the other command to finish (waited {self.wait:g} s; "
                "pass --wait SECONDS to wait longer)",
            )
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            return ForkmanError(
                f"the state database {self.path} is corrupt ({text})",
                hint="it is a cache: move it aside (forkman will rebuild it from forkman.lock); "
                "forkman did not change it",
            )
        return ForkmanError(f"the state database {self.path} failed: {text}")

    def _migrate(self) -> None:
        with self.transaction():
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "schema_version" in tables:
                row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
                version = row[0] if row else None
                if version is not None and version > SCHEMA_VERSION:
                    raise ForkmanError(
                        f"the state database {self.path} was written by a newer forkman "
                        f"(schema {version}, this forkman knows {SCHEMA_VERSION})",
                        hint="upgrade forkman; the database was not changed",
                    )
                if version == SCHEMA_VERSION:
                    return
            elif tables:
                raise ForkmanError(
                    f"{self.path} is not a forkman state database (unknown tables)",
                    hint="move it aside; forkman did not change it",
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("DELETE FROM schema_version")
            self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))

    # -- transactions --------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together; nested calls join the outer one."""
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise self._error(exc) from None

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self.transaction():
            try:
                return self._db.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def close(self) -> None:
        """Close the connection (checkpointing the WAL when no one else uses it)."""
        with self._mutex, contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- per-actor key-value storage ----------------------------------------

    def storage(self, key: str) -> KeyStorage:
        """Actor `key`'s own storage."""
        return KeyStorage(self, key)

    # -- status rows ----------------------------------------------------------

    def status(self, key: str) -> ActorStatus | None:
        """Actor `key`'s status row, None if it never ran."""
        rows = self._query(
            "SELECT key, state, step, updated, intent, last_result FROM actors WHERE key=?", (key,)
        )
        return _status(rows[0]) if rows else None

    def statuses(self, prefix: str = "") -> dict[str, ActorStatus]:
        """Every status row whose key starts with `prefix`."""
        rows = self._query(
            "SELECT key, state, step, updated, intent, last_result FROM actors "
            "WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return {row[0]: _status(row) for row in rows}

    def begin_intent(self, key: str, message: Message, state: ActorState) -> Intent:
        """Durably record that `message` is being handled."""
        intent = Intent(key=key, message=message, state=state, started=time.time())
        with self.transaction():
            self._put_status(key, state, "", intent, keep_result=True)
        return intent

    def update_intent(self, intent: Intent, step: str | None, progress: Mapping[str, JSON]) -> None:
        """Durably record a step or journal entry of the intent in progress."""
        with self.transaction():
            rows = self._db.execute("SELECT intent FROM actors WHERE key=?", (intent.key,))
            row = rows.fetchone()
            if row is None or row[0] is None:
                return
            data = json.loads(row[0])
            if step is not None:
                data["step"] = step
            data["progress"] = {**data.get("progress", {}), **progress}
            self._db.execute(
                "UPDATE actors SET intent=?, step=?, updated=? WHERE key=?",
                (_dumps(data), data.get("step", ""), time.time(), intent.key),
            )

    def finish(self, reply: Reply, *, keep_last_result: bool = False) -> None:
        """Durably record the outcome and clear the intent (one transaction).

        With `keep_last_result`, the status keeps the last result it had (a
        rejected request: the reply is recorded for idempotency only).
        """
        with self.transaction():
            self._put_status(
                reply.key,
                reply.state,
                "",
                None,
                result=reply.to_json(),
                keep_result=keep_last_result,
            )
            row = self._db.execute(
                "SELECT coalesce(max(seq), 0) FROM outcomes WHERE key=?", (reply.key,)
            ).fetchone()
            seq = int(row[0]) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?)",
                (reply.key, reply.message_id, seq, _dumps(reply.to_json())),
            )
            if seq > OUTCOMES_KEPT:
                self._db.execute(
                    "DELETE FROM outcomes WHERE key=? AND seq<=?", (reply.key, seq - OUTCOMES_KEPT)
                )

    def outcome(self, key: str, message_id: str) -> Reply | None:
        """The recorded reply to message `message_id`, if it was handled."""
        rows = self._query(
            "SELECT reply FROM outcomes WHERE key=? AND message_id=?", (key, message_id)
        )
        return Reply.from_json(json.loads(rows[0][0]), duplicate=True) if rows else None

    def _put_status(
        self,
        key: str,
        state: ActorState,
        step: str,
        intent: Intent | None,
        *,
        result: JSON = None,
        keep_result: bool = False,
    ) -> None:
        intent_json = None
        if intent is not None:
            intent_json = _dumps(
                {
                    "message": intent.message.to_json(),
                    "state": intent.state.value,
                    "started": intent.started,
                    "step": intent.step,
                    "progress": dict(intent.progress),
                }
            )
        if keep_result:
            self._db.execute(
                "INSERT INTO actors (key, state, step, updated, intent) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET state=excluded.state, step=excluded.step, "
                "updated=excluded.updated, intent=excluded.intent",
                (key, state.value, step, time.time(), intent_json),
            )
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO actors VALUES (?, ?, ?, ?, ?, ?)",
                (key, state.value, step, time.time(), intent_json, _dumps(result)),
            )

    # -- alarms ----------------------------------------------------------------

    def set_alarm(self, alarm: Alarm, *, keep_due: bool = False) -> None:
        """Store `alarm`, replacing the key's alarm of the same name.

        With `keep_due`, an existing alarm of that name keeps its due time
        (so restarting ``forkman watch`` does not postpone checks).
        """
        insert = (
            "INSERT INTO alarms (key, name, due, kind, args, every) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key, name) DO UPDATE SET kind=excluded.kind, args=excluded.args, "
            "every=excluded.every"
        )
        if not keep_due:
            insert += ", due=excluded.due, attempts=0, last_error=NULL"
        self._exec(
            insert,
            (
                alarm.key,
                alarm.name,
                alarm.due,
                alarm.message_kind,
                _dumps(dict(alarm.args)),
                alarm.every,
            ),
        )

    def alarms(self, key: str | None = None, *, due_by: float | None = None) -> list[Alarm]:
        """Stored alarms, soonest first."""
        sql = "SELECT key, name, due, kind, args, every, attempts, last_error FROM alarms"
        where: list[str] = []
        params: list[Any] = []
        if key is not None:
            where.append("key=?")
            params.append(key)
        if due_by is not None:
            where.append("due<=?")
            params.append(due_by)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY due, key, name", tuple(params))
        return [
            Alarm(
                key=r[0],
                name=r[1],
                due=r[2],
                message_kind=r[3],
                args=json.loads(r[4]),
                every=r[5],
                attempts=r[6],
                last_error=r[7],
            )
            for r in rows
        ]

    def delete_alarm(self, key: str, name: str, *, if_due: float | None = None) -> bool:
        """Remove an alarm (only if it is still due at `if_due`, when given)."""
        if if_due is None:
            return self._exec("DELETE FROM alarms WHERE key=? AND name=?", (key, name)) > 0
        return (
            self._exec("DELETE FROM alarms WHERE key=? AND name=? AND due=?", (key, name, if_due))
            > 0
        )

    def move_alarm(self, alarm: Alarm, due: float, attempts: int, last_error: str | None) -> None:
        """Reschedule a delivered alarm (unless it was replaced meanwhile)."""
        self._exec(
            "UPDATE alarms SET due=?, attempts=?, last_error=? WHERE key=? AND name=? AND due=?",
            (due, attempts, last_error, alarm.key, alarm.name, alarm.due),
        )


def _status(row: tuple[Any, ...]) -> ActorStatus:
    intent = None
    if row[4] is not None:
        data = json.loads(row[4])
        intent = Intent(
            key=row[0],
            message=Message.from_json(data["message"]),
            state=ActorState(data["state"]),
            started=float(data["started"]),
            step=str(data.get("step", "")),
            progress=dict(data.get("progress") or {}),
        )
    return ActorStatus(
        key=row[0],
        state=ActorState(row[1]),
        step=row[2],
        updated=row[3],
        last_result=json.loads(row[5]) if row[5] is not None else None,
        intent=intent,
    )


class KeyStorage(ActorStorage):
    """One actor's slice of the ``kv`` table."""

    def __init__(self, store: StateStore, key: str) -> None:
        self._store = store
        self._key = key

    def get(self, name: str, default: JSON = None) -> JSON:
        rows = self._store._query("SELECT value FROM kv WHERE key=? AND name=?", (self._key, name))
        return json.loads(rows[0][0]) if rows else default

    def put(self, name: str, value: JSON) -> None:
        self._store._exec(
            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (self._key, name, _dumps(value))
        )

    def delete(self, name: str) -> bool:
        return self._store._exec("DELETE FROM kv WHERE key=? AND name=?", (self._key, name)) > 0

    def list(self, prefix: str = "") -> dict[str, JSON]:
        rows = self._store._query(
            "SELECT name, value FROM kv WHERE key=? AND substr(name, 1, ?)=? ORDER BY name",
            (self._key, len(prefix), prefix),
        )
        return {name: json.loads(value) for name, value in rows}

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._store.transaction()
