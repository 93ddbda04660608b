"""The stages of `forkman ci` that run other subsystems: audit and the sandboxed tests.

Each calls its subsystem's library (:mod:`forkman.audit`,
:mod:`forkman.testing.run`) with the run's settings. A stand-in command
(``argv``, which prints what ``forkman audit --format json`` or ``forkman test``
print) may replace the library; it reads the checked-out pyproject.toml, so it
is refused when the run uses the base's security settings. A stage that cannot
do its work is an ERROR, never a silent pass: CI fails closed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ForkmanError
from ..core.observer import NullObserver, Observer
from ..core.text import shorten
from ..model.lock import Lock
from ..model.project import Project
from .report import CiFinding, Level, StageResult, StageStatus, timed


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


_FAILING_STATES = frozenset({"open", "ignore-expired"})


def audit_findings(
    report: Mapping[str, Any], lock: Lock, stage: str = "audit"
) -> tuple[list[CiFinding], list[CiFinding]]:
    """(vulnerabilities, forks not audited) of an audit report's forkman part."""
    vulns: list[CiFinding] = []
    unaudited: list[CiFinding] = []
    forks = report.get("forks", [])
    for fork in forks if isinstance(forks, list) else []:
        if not isinstance(fork, Mapping):
            continue
        name = str(fork.get("name", ""))
        entry = lock.get(name)
        path = entry.path if entry else None
        for vuln in fork.get("vulnerabilities", []) or []:
            if not isinstance(vuln, Mapping) or vuln.get("state") not in _FAILING_STATES:
                continue
            fixes = ", ".join(vuln.get("fix_versions", []) or []) or "none yet"
            summary = shorten(str(vuln.get("summary") or ""), 120) or "(no summary)"
            vulns.append(
                CiFinding(
                    stage,
                    str(vuln.get("id", "vulnerability")),
                    f"{name} {fork.get('version', '')}: {vuln.get('id')}: {summary} "
                    f"(fixed in: {fixes})",
                    fork=name,
                    path=path,
                    hint=f"sync to a fixed version (`forkman sync {name}`), or record a patch "
                    "that declares it fixes it; `forkman audit` explains",
                )
            )
        reasons = fork.get("unaudited") or []
        if fork.get("status") == "unaudited" or reasons:
            unaudited.append(
                CiFinding(
                    stage,
                    "unaudited",
                    f"{name} {fork.get('version', '')} could not be audited: "
                    + ("; ".join(str(r) for r in reasons) or "no source could audit it"),
                    fork=name,
                    path=path,
                    hint="`forkman db update` imports the advisory database audit reads",
                )
            )
    return vulns, unaudited


@dataclass
class AuditStage:
    """Known vulnerabilities of every fork (`forkman audit`)."""

    argv: Sequence[str] | None = None
    """Run this command instead of the library (it prints `forkman audit --format json`)."""
    observer: Observer = field(default_factory=NullObserver)
    """Where progress goes."""
    name: str = "audit"

    def _report(self, project: Project, started: float) -> Mapping[str, Any] | StageResult:
        """The forkman part of the audit report, or the result of a stage that could not run."""
        if self.argv is None:
            from ..audit import audit_project
            from ..audit.vulnerabilities import report_dict

            return report_dict(audit_project(project, record=False, observer=self.observer))
        if _differs_from_working_tree(project):
            return _policy_not_passable(self.name, "audit", started)
        argv = list(self.argv)
        proc = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)
        try:
            doc = json.loads(proc.stdout)
        except json.JSONDecodeError:
            doc = None
        if proc.returncode not in (0, 1) or not isinstance(doc, Mapping):
            return timed(
                self.name,
                started,
                StageStatus.ERROR,
                f"`forkman audit` could not run (exit {proc.returncode})",
                [
                    CiFinding(
                        self.name,
                        "audit-error",
                        _tail(proc.stderr or proc.stdout) or f"exit code {proc.returncode}",
                    )
                ],
            )
        part = doc.get("forkman", doc)
        return part if isinstance(part, Mapping) else {}

    def run(self, project: Project) -> StageResult:
        started = time.monotonic()
        lock = project.load_lock()
        if not len(lock):
            return timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
        report = self._report(project, started)
        if isinstance(report, StageResult):
            return report
        vulns, unaudited = audit_findings(report, lock, self.name)
        audited = len(report.get("forks", []) or [])
        if audited < len(lock) and not unaudited:
            unaudited.append(
                CiFinding(
                    self.name,
                    "unaudited",
                    f"the audit covered {audited} of {len(lock)} fork(s)",
                )
            )
        parts = []
        if vulns:
            parts.append(f"{len(vulns)} open vulnerabilit{'y' if len(vulns) == 1 else 'ies'}")
        if unaudited:
            parts.append(f"{len(unaudited)} fork(s) not audited")
        status = StageStatus.FAILED if vulns else StageStatus.ERROR if unaudited else StageStatus.OK
        summary = ", ".join(parts) or f"{audited} fork(s), no open vulnerabilities"
        return timed(self.name, started, status, summary, [*vulns, *unaudited])


_TEST_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+): (?P<status>[a-z-]+): (?P<message>.*)$")


@dataclass(frozen=True)
class ForkTestOutcome:
    """How one fork's sandboxed test run ended (as `forkman test` reports it)."""

    name: str
    """The fork."""
    status: str
    """``passed``, ``failed``, ``network-disabled``, ``no-tests``, ``timeout``, ``error`` or
    ``not-tested``."""
    message: str
    """One line for humans."""
    hint: str = ""
    """What to do (for an error that said)."""


def _differs_from_working_tree(project: Project) -> bool:
    """Whether `project` runs on other settings than its pyproject's (the base's policy)."""
    from ..model.config import load_config

    try:
        return project.config != load_config(project.pyproject)
    except ForkmanError:
        return True


def _policy_not_passable(stage: str, command: str, started: float) -> StageResult:
    """A subprocess would read the pull request's settings, not the base's: refuse."""
    message = (
        f"`forkman {command}` in a subprocess reads the checked-out pyproject.toml, not the "
        f"base's security settings this run uses, so the {stage} stage cannot run; CI fails closed"
    )
    return timed(
        stage,
        started,
        StageStatus.ERROR,
        f"`forkman {command}` cannot take the base's settings",
        [
            CiFinding(
                stage,
                "policy-not-passable",
                message,
                hint="install a forkman release that provides the library of "
                f"`forkman {command}`, or run `forkman ci` from the same environment",
            )
        ],
    )


@dataclass
class ForkTestStage:
    """The sandboxed test suites of the forks that changed (`forkman test`).

    Each fork is tested on its own: one fork's error (a test environment that
    cannot be built, a missing tree) is that fork's result and never hides the
    others'. Forks in `not_tested` (their check or verify failed) are not run.
    """

    forks: Sequence[str] | None
    """The forks to test; None means every fork."""
    argv: Sequence[str] | None = None
    """Run this command (fork names or ``--all`` follow) instead of the library."""
    observer: Observer = field(default_factory=NullObserver)
    """Where progress goes."""
    name: str = "test"
    not_tested: Mapping[str, str] = field(default_factory=dict)
    """Forks that must not be tested, with why (e.g. ``check failed``)."""
    blocked: str | None = None
    """Why no fork may be tested at all (e.g. the base's policy could not be read)."""

    def _library_outcomes(self, project: Project, names: list[str]) -> list[ForkTestOutcome]:
        from ..sandbox import ForkServer
        from ..testing.run import run_tests

        outcomes: list[ForkTestOutcome] = []
        server = ForkServer()  # one server for every fork's run (each fork's error is its own)
        try:
            for name in names:
                try:
                    (o,) = run_tests(project, [name], observer=self.observer, server=server)
                except ForkmanError as exc:
                    outcomes.append(ForkTestOutcome(name, "error", exc.message, exc.hint or ""))
                else:
                    outcomes.append(ForkTestOutcome(o.name, o.status.value, o.message))
        finally:
            server.stop()
        return outcomes

    def _outcomes(
        self, project: Project, started: float, names: list[str], every: bool
    ) -> list[ForkTestOutcome] | StageResult:
        if self.argv is None:
            return self._library_outcomes(project, names)
        if _differs_from_working_tree(project):
            return _policy_not_passable(self.name, "test", started)
        prefix = list(self.argv)
        argv = [*prefix, "--all"] if every else [*prefix, *names]
        proc = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)
        parsed = [m for line in proc.stdout.splitlines() if (m := _TEST_LINE.match(line))]
        if not parsed and proc.returncode != 0:
            return timed(
                self.name,
                started,
                StageStatus.ERROR,
                f"`forkman test` could not run (exit {proc.returncode})",
                [
                    CiFinding(
                        self.name,
                        "test-error",
                        _tail(proc.stderr or proc.stdout, 5) or f"exit code {proc.returncode}",
                    )
                ],
            )
        outcomes = [ForkTestOutcome(m["name"], m["status"], m["message"]) for m in parsed]
        # a command that stopped part-way: the forks it reported keep their results, the
        # others are errors (never a silent pass)
        seen = {o.name for o in outcomes}
        why = _tail(proc.stderr or proc.stdout, 5) or f"exit code {proc.returncode}"
        outcomes += [
            ForkTestOutcome(n, "error", f"`forkman test` reported no result for it: {why}")
            for n in names
            if n not in seen
        ]
        return outcomes

    def run(self, project: Project) -> StageResult:
        started = time.monotonic()
        if self.forks is not None and not self.forks:
            return timed(self.name, started, StageStatus.SKIPPED, "no fork changed", [])
        lock = project.load_lock()
        if not len(lock):
            return timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
        wanted = list(lock.forks) if self.forks is None else list(self.forks)
        skipped = {
            n: (self.blocked or self.not_tested[n])
            for n in wanted
            if self.blocked or n in self.not_tested
        }
        names = [n for n in wanted if n not in skipped]
        outcomes: list[ForkTestOutcome] = []
        if names:
            got = self._outcomes(project, started, names, self.forks is None and not skipped)
            if isinstance(got, StageResult):
                return got
            outcomes = got
        outcomes += [ForkTestOutcome(n, "not-tested", why) for n, why in skipped.items()]
        findings = []
        for o in outcomes:
            if o.status == "passed":
                continue
            entry = lock.get(o.name)
            if o.status == "not-tested":
                message = f"{o.name}: not tested: {o.message}"
                hint = o.hint or "fix what the earlier stage reports; the tests run after that"
            else:
                message = f"{o.name}: {o.status}: {o.message}"
                hint = o.hint or (
                    f"`forkman test {o.name} --show-output` reruns it and prints the "
                    f"suite's output (kept in .forkman/test-logs/{o.name}/)"
                )
            findings.append(
                CiFinding(
                    self.name,
                    o.status,
                    message,
                    fork=o.name,
                    path=entry.path if entry else None,
                    level=Level.WARNING if o.status == "no-tests" else Level.ERROR,
                    hint=hint,
                )
            )
        failing = [f for f in findings if f.level is Level.ERROR]
        what = "every fork" if self.forks is None else f"{len(outcomes)} changed fork(s)"
        if any(f.rule in ("error", "timeout") for f in failing):
            status = StageStatus.ERROR
        elif failing:
            status = StageStatus.FAILED
        else:
            status = StageStatus.OK
        passed = sum(1 for o in outcomes if o.status == "passed")
        summary = f"{passed}/{len(outcomes)} pass ({what})"
        without = sum(1 for f in findings if f.level is not Level.ERROR)
        if without:
            summary += f", {without} without tests"
        if skipped:
            summary += f", {len(skipped)} not tested ({'; '.join(sorted(set(skipped.values())))})"
        return timed(self.name, started, status, summary, findings)
