"""The result types of the public API (:mod:`forkman.api`) and their JSON form.

Every result is a frozen dataclass. :func:`to_json` turns any of them (and
the core's own frozen results the API returns, e.g.
:class:`~forkman.operations.patches.PatchInfo`) into plain JSON values; the result
types defined here also have a ``to_json()`` method.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..core.errors import ForkmanError, error_from_json
from .sync import ConflictInfo, SyncOutcome


def to_json(value: Any) -> Any:
    """`value` as plain JSON data: dataclasses become objects, enums their value.

    Example::

        >>> to_json(fm.status())
        [{"name": "attrs", "version": "23.1.0", ...}]
    """
    if isinstance(value, ForkmanError):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [to_json(v) for v in items]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Json:
    """Gives a result dataclass a ``to_json()`` method."""

    def to_json(self) -> dict[str, Any]:
        """This result as plain JSON data (see :func:`forkman.to_json`)."""
        data = to_json(self)
        assert isinstance(data, dict)
        return data


@dataclass(frozen=True)
class ErrorInfo(_Json):
    """A :class:`~forkman.ForkmanError` as data: one fork's failure among others' results."""

    kind: str
    """The error's class name, e.g. ``NotFound``."""
    message: str
    """What went wrong."""
    hint: str | None = None
    """What to do about it."""
    exit_code: int = 2
    """The exit code the CLI gives it (1: refused for a finding)."""
    type: str = ""
    """The error's qualified class name (``forkman.core.errors.NotFound``)."""

    @classmethod
    def from_error(cls, error: ForkmanError) -> ErrorInfo:
        """The data of `error`."""
        data = error.to_json()
        return cls(data["kind"], error.message, error.hint, error.exit_code, data["type"])

    def error(self) -> ForkmanError:
        """The error again, with its class, hint and exit code."""
        return error_from_json(dataclasses.asdict(self))


@dataclass(frozen=True)
class ForkInfo(_Json):
    """One fork as the lock records it (:meth:`forkman.Project.forks`)."""

    name: str
    """The fork's name."""
    version: str
    """The upstream version it is at."""
    path: str
    """The vendored tree, relative to the project root."""
    layout: str
    """``project`` or ``namespace``."""
    source: str
    """Where it comes from (the requirement, or ``git+URL@REF``)."""
    patches: tuple[str, ...]
    """The patch series' files, in order."""
    fixes: tuple[str, ...]
    """Vulnerability ids its patches fix."""


@dataclass(frozen=True)
class CheckResult(_Json):
    """Whether the vendored trees match forkman.lock (:meth:`forkman.Project.check`)."""

    ok: bool
    """True when nothing differs."""
    forks_checked: int
    """How many forks were looked at."""
    findings: tuple[Any, ...]
    """Every unrecorded difference (:class:`forkman.gate.check.Finding`)."""
    hints: tuple[str, ...]
    """What to run to record or undo the findings."""


@dataclass(frozen=True)
class InitResult(_Json):
    """What :meth:`forkman.Project.init` did."""

    added: bool
    """Whether ``[tool.forkman]`` was added (False: it was there)."""
    lock: str
    """The lock file's name."""
    ignored: tuple[str, ...] = ()
    """Lines added to the project's ``.gitignore`` (bytecode patterns)."""


@dataclass(frozen=True)
class ForkResult(_Json):
    """A fork made (:meth:`forkman.Project.fork`, or a declared fork adopted by a sync)."""

    name: str
    """The fork's name."""
    version: str
    """The upstream version forked."""
    path: str
    """Where it is vendored, relative to the project root."""
    spec: str
    """What was forked."""
    layout: str = ""
    """``project`` or ``namespace`` (empty when not reported)."""
    layout_reason: str = ""
    """Why that layout."""
    warnings: tuple[str, ...] = ()
    """What the user should know."""
    revendored: tuple[SyncReport, ...] = ()
    """Namespace forks vendored again because their imports changed."""

    @property
    def exit_code(self) -> int:
        """0, or the code of the re-vendoring of other forks (2 failed, 1 conflicts)."""
        return SyncRun(self.revendored).exit_code


@dataclass(frozen=True)
class PatchResult(_Json):
    """What a change of a patch series did (:meth:`forkman.Project.patch` and its forms)."""

    name: str
    """The fork."""
    mode: str
    """``record``, ``drop``, ``move``, ``edit`` or ``import``."""
    files: tuple[str, ...]
    """record: the new patch file; import: the imported ones; else the series after."""


@dataclass(frozen=True)
class SyncReport(_Json):
    """How one fork's sync (or dry run, abort, re-vendoring) ended."""

    name: str
    """The fork."""
    outcome: SyncOutcome
    """synced, up-to-date, pinned, conflict, dry-run, declined, aborted or failed."""
    old_version: str = ""
    """The version before."""
    new_version: str | None = None
    """The version moved (or that would be moved) to."""
    message: str = ""
    """One line for humans."""
    delta: tuple[str, ...] | None = None
    """What upstream changed, one line per kind of change."""
    carried: tuple[str, ...] = ()
    """Subjects of the patches carried onto the new release."""
    dropped: tuple[str, ...] = ()
    """Subjects of the patches upstream already has (dropped)."""
    risks: tuple[Mapping[str, Any], ...] = ()
    """Risky changes in the upstream delta (rule, severity, file, line, message, why)."""
    conflict: ConflictInfo | None = None
    """Where the sync stopped (conflict, or a dry run that would conflict)."""
    error: ErrorInfo | None = None
    """Why it failed (outcome failed)."""

    @classmethod
    def from_reply(cls, data: Mapping[str, Any]) -> SyncReport:
        """The report from a fork actor's sync reply (see ``_operations.sync_result_json``)."""
        c = data.get("conflict")
        delta = data.get("delta")
        return cls(
            name=str(data["name"]),
            outcome=SyncOutcome(data["outcome"]),
            old_version=str(data.get("old_version") or ""),
            new_version=data.get("new_version"),
            message=str(data.get("message") or ""),
            delta=tuple(delta) if delta is not None else None,
            carried=tuple(data.get("carried") or ()),
            dropped=tuple(data.get("dropped") or ()),
            risks=tuple(dict(r) for r in data.get("risks") or ()),
            conflict=None
            if c is None
            else ConflictInfo(
                int(c["number"]),
                str(c["file"]),
                str(c["subject"]),
                tuple(c["files"]),
                tuple(c.get("unmarked") or ()),
            ),
        )

    @classmethod
    def failed(cls, name: str, error: ForkmanError) -> SyncReport:
        """A fork whose sync could not run or stopped on `error`."""
        return cls(
            name=name,
            outcome=SyncOutcome.FAILED,
            message=error.message,
            error=ErrorInfo.from_error(error),
        )


@dataclass(frozen=True)
class SyncRun(_Json):
    """Everything one :meth:`forkman.Project.sync` call did, fork by fork."""

    results: tuple[SyncReport, ...] = ()
    """One report per fork synced, reviewed, re-vendored or failed."""
    forked: tuple[ForkResult, ...] = ()
    """Declared forks the sync made first (``[tool.forkman.forks.NAME] requirement``)."""
    imported: tuple[PatchResult, ...] = ()
    """Patch files waiting in a declared fork's series folder, imported once it was made."""
    revendored: tuple[SyncReport, ...] = ()
    """Namespace forks vendored again while declared forks were made."""
    considered: tuple[str, ...] = ()
    """The forks whose release was looked at (the declared forks just made aside)."""

    @property
    def exit_code(self) -> int:
        """2 when a fork failed, 1 when one conflicts, was declined or refused, else 0."""
        failed = [r for r in self.results if r.outcome is SyncOutcome.FAILED]
        if any(r.error is None or r.error.exit_code != 1 for r in failed):
            return 2
        bad = (SyncOutcome.CONFLICT, SyncOutcome.DECLINED)
        if failed or any(r.outcome in bad for r in self.results):
            return 1
        return 0

    @property
    def ok(self) -> bool:
        """Whether every fork ended well (nothing failed, conflicts or was declined)."""
        return self.exit_code == 0

    def report(self, name: str) -> SyncReport:
        """The report of fork `name` (KeyError when it has none)."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)


@dataclass(frozen=True)
class UnforkResult(_Json):
    """One fork removed, or why it could not be."""

    name: str
    """The fork."""
    version: str | None = None
    """The version it was at (None when it failed)."""
    path: str | None = None
    """The vendored tree removed."""
    error: ErrorInfo | None = None
    """Why it could not be removed."""


@dataclass(frozen=True)
class UnforkRun(_Json):
    """What :meth:`forkman.Project.unfork` did."""

    results: tuple[UnforkResult, ...]
    """One per fork named."""
    revendored: tuple[SyncReport, ...] = ()
    """Namespace forks vendored again because their imports changed."""

    @property
    def exit_code(self) -> int:
        """2 when a fork could not be removed or re-vendored, else the re-vendoring's code."""
        if any(r.error is not None for r in self.results):
            return 2
        return SyncRun(self.revendored).exit_code


@dataclass(frozen=True)
class TestResult(_Json):
    """One fork's test run (:meth:`forkman.Project.test`)."""

    __test__ = False  # not a pytest test class

    name: str
    """The fork."""
    status: str
    """passed, failed, error, timeout, no-tests."""
    ok: bool
    """Whether the suite passed."""
    message: str
    """One line for humans."""
    tier: str = "-"
    """The sandbox isolation the run had."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """passed, failed, errors, skipped (those the run reported)."""
    failures: tuple[Mapping[str, Any], ...] = ()
    """The first failing tests: id, kind, message."""
    failures_not_listed: int = 0
    """Failing tests beyond those listed."""
    output_log: str | None = None
    """The kept output of the run."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Everything else the run reported (log paths, duration, timeout...)."""
    error: ErrorInfo | None = None
    """Why the run could not happen at all (status error)."""

    @property
    def could_not_run(self) -> bool:
        """Whether the suite could not run (an error or a timeout: exit 2, not a finding)."""
        return self.status in ("error", "timeout")

    @classmethod
    def from_reply(cls, name: str, data: Mapping[str, Any]) -> TestResult:
        """The result from a fork actor's test reply."""
        counts = {k: int(data[k]) for k in ("passed", "failed", "errors", "skipped") if k in data}
        known = {"status", "ok", "message", "tier", "failures", "failures_not_listed"}
        known |= {"output_log", *counts}
        return cls(
            name=name,
            status=str(data.get("status")),
            ok=bool(data.get("ok")),
            message=str(data.get("message") or ""),
            tier=str(data.get("tier") or "-"),
            counts=counts,
            failures=tuple(dict(f) for f in data.get("failures") or ()),
            failures_not_listed=int(data.get("failures_not_listed") or 0),
            output_log=data.get("output_log"),
            details={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class AuditRun(_Json):
    """What :meth:`forkman.Project.audit` found."""

    report: Any
    """The audit (:class:`forkman.audit.vulnerabilities.AuditReport`)."""
    errors: tuple[tuple[str, ErrorInfo], ...] = ()
    """Forks whose audit could not run at all (they are in the report as unaudited)."""

    def exit_code(self, *, allow_unaudited: bool = False) -> int:
        """2 when an audit could not run, 1 for an open vulnerability or an unaudited fork."""
        if self.errors:
            return 2
        code = self.report.exit_code(allow_unaudited=allow_unaudited)
        assert isinstance(code, int)
        return code
