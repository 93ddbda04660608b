"""The agent surface's durable record: executions, their API calls, and pending plans.

One SQLite database, ``.forkman/agent.sqlite``, in WAL mode. Every write is
one transaction: an execution is recorded when it ends, each call as it is
made, a plan when a write is gated and again when a person decides it. The
sandboxed code never reaches this file (the project is read-only inside the
sandbox); only the host process and ``forkman agent`` write it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import Busy, ForkmanError, NotFound

SCHEMA_VERSION = 1
STORE_NAME = "agent.sqlite"
KEPT_CHARS = 20_000
"""Characters of a result, error or log kept per row."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    duration REAL NOT NULL,
    mode TEXT NOT NULL,
    code TEXT NOT NULL,
    result TEXT,
    error TEXT,
    logs TEXT NOT NULL DEFAULT '',
    tier TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS calls (
    execution INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    method TEXT NOT NULL,
    arguments TEXT NOT NULL,
    outcome TEXT NOT NULL,
    result TEXT,
    plan INTEGER,
    PRIMARY KEY (execution, seq)
);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution INTEGER,
    created REAL NOT NULL,
    method TEXT NOT NULL,
    arguments TEXT NOT NULL,
    status TEXT NOT NULL,
    decided REAL,
    result TEXT
);
"""


def _dump(value: Any, limit: int = KEPT_CHARS) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > limit:
        return json.dumps({"cut": True, "head": text[:limit]})
    return text


@dataclass(frozen=True)
class Plan:
    """A write the agent asked for, kept until a person approves or rejects it."""

    id: int
    execution: int | None
    created: float
    method: str
    arguments: dict[str, Any]
    """``{"args": [...], "kwargs": {...}}`` as the code passed them."""
    status: str
    """``pending``, ``applying``, ``applied``, ``failed`` or ``rejected``."""
    decided: float | None
    result: Any

    def call_text(self) -> str:
        """``fm.sync('demo', dry_run=False)``: the call as the code made it."""
        parts = [repr(a) for a in self.arguments.get("args", [])]
        parts += [f"{k}={v!r}" for k, v in self.arguments.get("kwargs", {}).items()]
        return f"fm.{self.method}({', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        """This plan as JSON data."""
        return {
            "id": self.id,
            "execution": self.execution,
            "created": self.created,
            "method": self.method,
            "arguments": self.arguments,
            "call": self.call_text(),
            "status": self.status,
            "decided": self.decided,
            "result": self.result,
        }


@dataclass(frozen=True)
class CallRecord:
    """One API call an execution made."""

    seq: int
    method: str
    arguments: dict[str, Any]
    outcome: str
    """``done``, ``error``, ``refused`` (validation) or ``planned`` (gated write)."""
    result: Any
    plan: int | None

    def to_json(self) -> dict[str, Any]:
        """This call as JSON data."""
        return {
            "seq": self.seq,
            "method": self.method,
            "arguments": self.arguments,
            "outcome": self.outcome,
            "result": self.result,
            "plan": self.plan,
        }


@dataclass(frozen=True)
class ExecutionRecord:
    """One ``execute`` call: the code, what it returned, its calls."""

    id: int
    started: float
    duration: float
    mode: str
    code: str
    result: Any
    error: Any
    logs: str
    tier: str
    calls: tuple[CallRecord, ...]

    def to_json(self) -> dict[str, Any]:
        """This execution as JSON data."""
        return {
            "id": self.id,
            "started": self.started,
            "duration": self.duration,
            "mode": self.mode,
            "code": self.code,
            "result": self.result,
            "error": self.error,
            "logs": self.logs,
            "tier": self.tier,
            "calls": [c.to_json() for c in self.calls],
        }


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class AgentStore:
    """``.forkman/agent.sqlite``."""

    def __init__(self, state_dir: Path, *, wait: float = 10.0) -> None:
        self.path = state_dir / STORE_NAME
        self._mutex = threading.Lock()
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=wait, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> ForkmanError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return Busy(
                f"the agent record {self.path} is busy",
                hint="another forkman process is writing it; try again",
            )
        return ForkmanError(
            f"the agent record {self.path} cannot be used ({text})",
            hint="move it aside (pending plans in it are lost); forkman did not change it",
        )

    def _migrate(self) -> None:
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                tables = {
                    r[0]
                    for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if "schema_version" in tables:
                    row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
                    if row and row[0] is not None and row[0] > SCHEMA_VERSION:
                        raise ForkmanError(
                            f"the agent record {self.path} was written by a newer forkman",
                            hint="upgrade forkman; the record was not changed",
                        )
                    if row and row[0] == SCHEMA_VERSION:
                        self._db.execute("COMMIT")
                        return
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._mutex:
            try:
                cur = self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            return int(cur.lastrowid or 0)

    # -- executions and calls ------------------------------------------------------

    def begin_execution(self, code: str, mode: str) -> int:
        """Record that an execution starts; its id."""
        return self._write(
            "INSERT INTO executions (started, duration, mode, code) VALUES (?, 0, ?, ?)",
            (time.time(), mode, code),
        )

    def end_execution(
        self, execution: int, *, duration: float, result: Any, error: Any, logs: str, tier: str
    ) -> None:
        """Record how an execution ended."""
        self._write(
            "UPDATE executions SET duration=?, result=?, error=?, logs=?, tier=? WHERE id=?",
            (
                duration,
                None if result is None else _dump(result),
                None if error is None else _dump(error),
                logs[:KEPT_CHARS],
                tier,
                execution,
            ),
        )

    def add_call(
        self,
        execution: int,
        seq: int,
        method: str,
        arguments: dict[str, Any],
        outcome: str,
        result: Any,
        plan: int | None = None,
    ) -> None:
        """Record one API call of an execution."""
        self._write(
            "INSERT INTO calls (execution, seq, method, arguments, outcome, result, plan) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (execution, seq, method, _dump(arguments), outcome, _dump(result), plan),
        )

    def executions(self, limit: int = 20) -> list[ExecutionRecord]:
        """The latest executions, newest first, with their calls."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT id, started, duration, mode, code, result, error, logs, tier "
                "FROM executions ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            out = []
            for row in rows:
                calls = self._db.execute(
                    "SELECT seq, method, arguments, outcome, result, plan FROM calls "
                    "WHERE execution=? ORDER BY seq",
                    (row[0],),
                ).fetchall()
                out.append(
                    ExecutionRecord(
                        id=row[0],
                        started=row[1],
                        duration=row[2],
                        mode=row[3],
                        code=row[4],
                        result=_load(row[5]),
                        error=_load(row[6]),
                        logs=row[7],
                        tier=row[8],
                        calls=tuple(
                            CallRecord(c[0], c[1], json.loads(c[2]), c[3], _load(c[4]), c[5])
                            for c in calls
                        ),
                    )
                )
        return out

    # -- plans ------------------------------------------------------------------------

    def add_plan(self, execution: int | None, method: str, arguments: dict[str, Any]) -> int:
        """Record a pending plan; its id."""
        return self._write(
            "INSERT INTO plans (execution, created, method, arguments, status) "
            "VALUES (?, ?, ?, ?, 'pending')",
            (execution, time.time(), method, json.dumps(arguments, sort_keys=True)),
        )

    def plan(self, plan_id: int) -> Plan:
        """The plan `plan_id`; NotFound when there is none."""
        with self._mutex:
            row = self._db.execute(
                "SELECT id, execution, created, method, arguments, status, decided, result "
                "FROM plans WHERE id=?",
                (plan_id,),
            ).fetchone()
        if row is None:
            raise NotFound(
                f"no plan {plan_id} in {self.path}",
                hint="`forkman agent log` lists the plans and their ids",
            )
        return Plan(
            row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], _load(row[7])
        )

    def plans(self, status: str | None = None) -> list[Plan]:
        """Plans, newest first (only those with `status`, when given)."""
        with self._mutex:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM plans WHERE ? IS NULL OR status=? ORDER BY id DESC",
                    (status, status),
                )
            ]
        return [self.plan(i) for i in ids]

    def claim(self, plan_id: int, status: str) -> Plan:
        """Move a pending plan to `status` (``applying`` or ``rejected``), atomically: two
        people deciding the same plan cannot both win."""
        plan = self.plan(plan_id)
        with self._mutex:
            cur = self._db.execute(
                "UPDATE plans SET status=?, decided=? WHERE id=? AND status='pending'",
                (status, time.time(), plan_id),
            )
        if cur.rowcount != 1:
            current = self.plan(plan_id).status
            raise ForkmanError(
                f"plan {plan_id} ({plan.call_text()}) is {current}, not pending",
                hint="`forkman agent log` shows what became of it",
            )
        return self.plan(plan_id)

    def finish(self, plan_id: int, status: str, result: Any) -> None:
        """Record the outcome of an approved plan (``applied`` or ``failed``)."""
        self._write(
            "UPDATE plans SET status=?, decided=?, result=? WHERE id=?",
            (status, time.time(), _dump(result), plan_id),
        )
