"""`forkman ci`: the one command for a pipeline.

A run is a sequence of stages, each a small object with a name and
``run(project) -> StageResult``: check (the vendored trees match the lock),
verify (every fork rebuilds from its pinned upstream and patches), audit
(known vulnerabilities, provenance) and the sandboxed tests of the forks that
changed against the merge base. A stage that cannot do its work (a command
that is not installed, an index that cannot be reached) is an ERROR, never a
silent pass: CI fails closed.

The audit and test stages call their subsystem's library when this
installation has it (``forkman.audit``, ``forkman.testing.run``) and otherwise
run ``python -m forkman audit|test`` with this interpreter.
"""

from __future__ import annotations

import enum
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import BadInput, ForkmanError
from ..core.observer import NullObserver, Observer
from ..core.text import shorten
from ..model.lock import LOCK_NAME, GitSource, IndexSource, Lock, LockEntry, parse_lock
from ..model.project import Project, cache_root
from .policy import CiPolicy, base_commit, base_policy, working_tree_policy


class StageStatus(enum.Enum):
    """How a stage ended."""

    OK = "ok"
    """The stage ran and found nothing wrong."""
    FAILED = "failed"
    """The stage ran and found something wrong (findings)."""
    SKIPPED = "skipped"
    """There was nothing for the stage to do (e.g. no fork changed)."""
    ERROR = "error"
    """The stage could not do its work; CI fails closed."""


class Level(enum.Enum):
    """How serious a finding is (the SARIF levels)."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class CiFinding:
    """One thing a stage found wrong."""

    stage: str
    """The stage that found it."""
    rule: str
    """A stable identifier of the kind of finding (e.g. ``modified``, ``rebuild``)."""
    message: str
    """One line for humans."""
    fork: str | None = None
    """The fork concerned, if any."""
    path: str | None = None
    """The file concerned, relative to the project root, if any."""
    level: Level = Level.ERROR
    """How serious it is."""
    hint: str = ""
    """What to run to fix or record it."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "stage": self.stage,
            "rule": self.rule,
            "level": self.level.value,
            "fork": self.fork,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage."""

    name: str
    """The stage's name."""
    status: StageStatus
    """How it ended."""
    summary: str
    """One line for the summary table."""
    findings: tuple[CiFinding, ...] = ()
    """What it found wrong (or why it could not run)."""
    duration: float = 0.0
    """Seconds it took."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "duration": round(self.duration, 3),
            "findings": [f.as_dict() for f in self.findings],
        }


class Stage(Protocol):
    """One step of a CI run."""

    name: str

    def run(self, project: Project) -> StageResult:
        """Do the work; never raise for findings (return them), only for bugs."""
        ...


@dataclass(frozen=True)
class CiReport:
    """The outcome of a CI run."""

    stages: tuple[StageResult, ...]
    """Every stage, in the order they ran."""
    base: str | None = None
    """The merge base the changed forks were computed against (None: all forks)."""
    changed: tuple[str, ...] | None = None
    """The forks that changed against the base (None: all forks were tested)."""
    policy: str = "working tree"
    """Where the security settings came from: ``base REV (COMMIT)`` or ``working tree``."""

    @property
    def ok(self) -> bool:
        """True when no stage failed or errored."""
        return all(s.status in (StageStatus.OK, StageStatus.SKIPPED) for s in self.stages)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 findings, 2 a stage could not run."""
        statuses = {s.status for s in self.stages}
        if StageStatus.ERROR in statuses:
            return 2
        if StageStatus.FAILED in statuses:
            return 1
        return 0

    def findings(self) -> list[CiFinding]:
        """Every finding of every stage."""
        return [f for s in self.stages for f in s.findings]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the ``--format json`` document)."""
        from ..core.version import __version__

        return {
            "tool": "forkman",
            "version": __version__,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "base": self.base,
            "changed_forks": list(self.changed) if self.changed is not None else None,
            "policy": self.policy,
            "stages": [s.as_dict() for s in self.stages],
        }


def _timed(
    name: str, started: float, status: StageStatus, summary: str, findings: Any
) -> StageResult:
    return StageResult(name, status, summary, tuple(findings), time.monotonic() - started)


# -- policy --------------------------------------------------------------------

_POLICY_HINT = (
    "security settings a pull request changes take effect once a maintainer has reviewed "
    "and merged them into the base; until then `forkman ci` runs with the base's"
)


@dataclass
class PolicyStage:
    """Where the run's security settings came from, and what the pull request changed."""

    policy: CiPolicy
    """The policy `run_ci` established before any stage ran."""
    name: str = "policy"

    def run(self, project: Project) -> StageResult:
        started = time.monotonic()
        policy = self.policy
        if policy.error is not None:
            finding = CiFinding(
                self.name, "base-unreadable", policy.error, path="pyproject.toml", hint=policy.hint
            )
            return _timed(self.name, started, StageStatus.ERROR, policy.error, [finding])
        findings = [
            CiFinding(
                self.name,
                "policy-changed",
                f"[tool.forkman] {change.describe()}: not applied in this run "
                f"(the {policy.source} setting is)",
                fork=change.fork,
                path="pyproject.toml",
                hint=_POLICY_HINT,
            )
            for change in policy.changes
        ]
        findings += [
            CiFinding(
                self.name,
                change.rule,
                change.message,
                fork=change.fork,
                path=LOCK_NAME,
                hint="review this change to what the project trusts; it counts once merged",
            )
            for change in policy.lock_changes
        ]
        where = f"security settings from the {policy.source}"
        if not policy.from_base:
            where += " (no base revision: the checked-out settings apply)"
        if findings:
            return _timed(
                self.name,
                started,
                StageStatus.FAILED,
                f"{len(findings)} change(s) to review; {where}",
                findings,
            )
        return _timed(self.name, started, StageStatus.OK, where, [])


# -- check ---------------------------------------------------------------------

_HINT_MARKERS = {"lock": "forkman.lock", "patch": "patch files", "missing": "unfork"}


def _check_hint(fork: str | None, kind: str, hints: Sequence[str]) -> str:
    """The hint of a check report that tells how to record or undo one finding."""
    if fork and not kind.startswith(("patch", "missing")):
        return next((h for h in hints if h.startswith(f"{fork}:")), "")
    marker = next((m for k, m in _HINT_MARKERS.items() if kind.startswith(k)), "fork it")
    return next((h for h in hints if marker in h), "")


@dataclass
class CheckStage:
    """Do the vendored trees, patch files and lock match what forkman recorded?"""

    name: str = "check"

    def run(self, project: Project) -> StageResult:
        from ..core.paths import protected_names
        from ..gate.check import check

        started = time.monotonic()
        config = project.config
        vendoring = config.section("vendoring")
        protected = vendoring.get("protected-files", [])
        destination = vendoring.get("destination")
        report = check(
            project.root,
            vendor_dir=config.vendor_dir,
            patches_dir=config.patches_dir,
            protected=protected_names(protected, "[tool.forkman.vendoring].protected-files"),
            destination=str(destination).rstrip("/") if destination is not None else None,
            declared=[n for n, p in config.forks.items() if "requirement" in p.raw],
        )
        hints = report.hints()
        findings = [
            CiFinding(
                self.name,
                f.kind.value.replace(" ", "-"),
                f"{f.fork + ': ' if f.fork else ''}{f.message()}",
                fork=f.fork,
                path=f.path,
                hint=_check_hint(f.fork, f.kind.value, hints),
            )
            for f in report.findings
        ]
        if report.ok:
            return _timed(
                self.name,
                started,
                StageStatus.OK,
                f"{report.forks_checked} fork(s) match {LOCK_NAME}",
                [],
            )
        return _timed(
            self.name,
            started,
            StageStatus.FAILED,
            f"{len(findings)} unrecorded change(s) in {report.forks_checked} fork(s)",
            findings,
        )


# -- verify --------------------------------------------------------------------

_CACHE_HINT = (
    "verify rebuilds each fork from its pinned upstream file. Run `forkman verify` once "
    "with network to fill the verified download cache ({cache}), keep that directory "
    "between CI runs (e.g. with actions/cache or GitLab's cache:), then run "
    "`forkman ci --offline`"
)


def cached_release(source: IndexSource) -> Path | None:
    """The verified download cache's copy of `source`'s file, if present."""
    from ..sources.index import cached_file

    return cached_file(source.sha256, source.filename)


def _git_commit_cached(source: GitSource) -> bool:
    from ..sources.git import mirror_path

    mirror = mirror_path(source.url)
    if not (mirror / "HEAD").is_file():
        return False
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{source.commit}^{{commit}}"],
        cwd=mirror,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


@dataclass
class VerifyStage:
    """Rebuild every fork from its pinned upstream and patches, and compare."""

    offline: bool = False
    """Use only the verified download cache and local git mirrors; never the network."""
    observer: Observer = field(default_factory=NullObserver)
    """Where progress goes."""
    name: str = "verify"

    def _unavailable(self, project: Project, entry: LockEntry) -> CiFinding | None:
        """Why `entry` cannot be rebuilt here (None: its source is at hand)."""
        hint = _CACHE_HINT.format(cache=cache_root() / "downloads")
        source = entry.source
        if isinstance(source, IndexSource):
            if cached_release(source) is not None:
                return None
            if self.offline:
                return CiFinding(
                    self.name,
                    "not-in-offline-cache",
                    f"{entry.name}: {source.filename} is not in the offline cache; "
                    "cannot verify it without the index",
                    fork=entry.name,
                    hint=hint,
                )
            from ..sources.index import fetch_exact

            try:
                fetch_exact(
                    source,
                    index_urls=project.config.index_urls,
                    observer=self.observer,
                    limits=project.config.network,
                )
            except ForkmanError as exc:
                from ..core.errors import NetworkError

                if not isinstance(exc, NetworkError):
                    return None  # verify reports integrity problems itself
                return CiFinding(
                    self.name,
                    "index-unreachable",
                    f"{entry.name}: verify needs {source.filename} from {source.index_url}, "
                    f"which cannot be reached ({exc.message})",
                    fork=entry.name,
                    hint=hint,
                )
            return None
        if self.offline and not _git_commit_cached(source):
            return CiFinding(
                self.name,
                "not-in-offline-cache",
                f"{entry.name}: commit {source.commit[:12]} of {source.url} is not in the "
                "local git mirror; cannot verify it without the network",
                fork=entry.name,
                hint="run `forkman verify` once with network to fill the git mirror "
                f"({cache_root() / 'git'}), keep it between CI runs, then `forkman ci --offline`",
            )
        return None

    def run(self, project: Project) -> StageResult:
        from ..operations.verify import verify

        started = time.monotonic()
        lock = project.load_lock()
        findings: list[CiFinding] = []
        ready: list[str] = []
        for entry in lock:
            missing = self._unavailable(project, entry)
            if missing is None:
                ready.append(entry.name)
            else:
                findings.append(missing)
        failed = 0
        if ready:
            for result in verify(project, ready, observer=self.observer, offline=self.offline):
                if not result.ok:
                    failed += 1
                    stage = result.stage.value if result.stage else "rebuild"
                    findings.append(
                        CiFinding(
                            self.name,
                            stage,
                            f"{result.name}: {stage}: {result.message}",
                            fork=result.name,
                            path=lock.forks[result.name].path,
                            hint=result.hint
                            or f"`forkman verify {result.name}` shows the same failure",
                        )
                    )
        unverifiable = len(lock) - len(ready)
        if not len(lock):
            return _timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
        parts = [f"{len(ready) - failed}/{len(lock)} fork(s) rebuild bit for bit"]
        if failed:
            parts.append(f"{failed} differ")
        if unverifiable:
            where = "offline cache" if self.offline else "network"
            parts.append(f"{unverifiable} could not be verified (no {where})")
        status = (
            StageStatus.FAILED if failed else StageStatus.ERROR if unverifiable else StageStatus.OK
        )
        return _timed(self.name, started, status, ", ".join(parts), findings)


# -- audit and test: the other subsystems, through their library or their command ---------
#
# Each stage calls the subsystem's library when this installation has it, and
# otherwise runs its `forkman` command with this interpreter. Neither at hand:
# the stage is an ERROR (fail closed), never a silent pass.


def command_available(name: str) -> bool:
    """Whether this forkman installation has the command `name`."""
    from ..cli import COMMANDS

    return name in COMMANDS


def _library(module: str, attribute: str) -> Any | None:
    """`module.attribute` of forkman when this installation has it, else None."""
    try:
        return getattr(importlib.import_module(module), attribute, None)
    except ImportError:
        return None


def forkman_argv(project: Project, *args: str) -> list[str]:
    """How to run `forkman ARGS` on `project` with this interpreter."""
    return [sys.executable, "-m", "forkman", "--project", str(project.root), *args]


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _missing_command(stage: str, command: str, started: float) -> StageResult:
    return _timed(
        stage,
        started,
        StageStatus.ERROR,
        f"`forkman {command}` is not available in this installation",
        [
            CiFinding(
                stage,
                "command-unavailable",
                f"`forkman {command}` is not available in this installation, so the "
                f"{stage} stage cannot run; CI fails closed",
                hint="install a forkman release that provides it, or run `forkman ci` "
                "from the same environment as your other forkman commands",
            )
        ],
    )


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
        audit_project = None if self.argv else _library("forkman.audit", "audit_project")
        report_dict = _library("forkman.audit.vulnerabilities", "report_dict")
        if audit_project is not None and report_dict is not None:
            report = audit_project(project, record=False, observer=self.observer)
            data: Mapping[str, Any] = report_dict(report)
            return data
        if self.argv is None and not command_available("audit"):
            return _missing_command(self.name, "audit", started)
        if _differs_from_working_tree(project):
            return _policy_not_passable(self.name, "audit", started)
        argv = list(self.argv or forkman_argv(project, "audit", "--format", "json"))
        proc = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)
        try:
            doc = json.loads(proc.stdout)
        except json.JSONDecodeError:
            doc = None
        if proc.returncode not in (0, 1) or not isinstance(doc, Mapping):
            return _timed(
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
            return _timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
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
        return _timed(self.name, started, status, summary, [*vulns, *unaudited])


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
    return _timed(
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

    def _library_outcomes(self, project: Project, run_tests: Any, names: list[str]) -> list[Any]:
        from ..sandbox import ForkServer

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
        run_tests = None if self.argv else _library("forkman.testing.run", "run_tests")
        if run_tests is not None:
            return self._library_outcomes(project, run_tests, names)
        if self.argv is None and not command_available("test"):
            return _missing_command(self.name, "test", started)
        if _differs_from_working_tree(project):
            return _policy_not_passable(self.name, "test", started)
        prefix = list(self.argv or forkman_argv(project, "test"))
        argv = [*prefix, "--all"] if every else [*prefix, *names]
        proc = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)
        parsed = [m for line in proc.stdout.splitlines() if (m := _TEST_LINE.match(line))]
        if not parsed and proc.returncode != 0:
            return _timed(
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
            return _timed(self.name, started, StageStatus.SKIPPED, "no fork changed", [])
        lock = project.load_lock()
        if not len(lock):
            return _timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
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
        return _timed(self.name, started, status, summary, findings)


# -- which forks changed ------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def base_from_environment() -> str | None:
    """The merge request's target branch that CI providers announce, if any."""
    for var in ("GITHUB_BASE_REF", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def resolve_base(root: Path, base: str) -> str | None:
    """The merge base of HEAD and `base` (tried as given and as ``origin/<base>``)."""
    for candidate in (base, f"origin/{base}"):
        proc = _git(root, "merge-base", candidate, "HEAD")
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return None


def changed_forks(project: Project, merge_base: str, lock: Lock) -> list[str]:
    """Forks whose vendored tree, patches or lock entry differ from `merge_base`."""
    config = project.config
    changed: set[str] = set()
    paths = {entry.name: entry.path.rstrip("/") + "/" for entry in lock}
    patches = {entry.name: f"{config.patches_dir}/{entry.name}/" for entry in lock}
    proc = _git(
        project.root,
        "diff",
        "--name-only",
        "--no-renames",
        merge_base,
        "--",
        LOCK_NAME,
        *sorted({p.split("/", 1)[0] for p in paths.values()} | {config.patches_dir}),
    )
    if proc.returncode != 0:
        raise BadInput(f"cannot diff against {merge_base}: {proc.stderr.strip()}")
    files = proc.stdout.splitlines()
    for name in lock.forks:
        if any(f.startswith(paths[name]) or f.startswith(patches[name]) for f in files):
            changed.add(name)
    if LOCK_NAME in files:
        old = _git(project.root, "show", f"{merge_base}:{LOCK_NAME}")
        try:
            before = parse_lock(old.stdout) if old.returncode == 0 else Lock()
        except ForkmanError:
            before = Lock()
        for entry in lock:
            if before.get(entry.name) != entry:
                changed.add(entry.name)
    return sorted(changed)


# -- the run --------------------------------------------------------------------


@dataclass(frozen=True)
class CiOptions:
    """What `forkman ci` was asked to do."""

    base: str | None = None
    """The revision to compare against to find changed forks (None: from the environment)."""
    offline: bool = False
    """Use only local caches; never the network."""


def _establish_policy(
    project: Project, options: CiOptions, observer: Observer, lock: Lock
) -> tuple[CiPolicy, str | None]:
    """The run's security policy and merge base (None: no base, every fork is tested)."""
    base = options.base or base_from_environment()
    if base is None:
        return working_tree_policy(project.config), None
    merge_base = resolve_base(project.root, base)
    if merge_base is None:
        if options.base is not None:
            raise BadInput(
                f"--base {base!r} is not a revision of this repository",
                hint="fetch it first (e.g. `git fetch origin main`) or pass a commit",
            )
        observer.warning(f"base {base!r} from the environment is unknown; no fork is tested")
        error = (
            f"the base {base!r} the CI environment announces is not a revision of this "
            "repository, so its security settings cannot be read and no fork's tests run"
        )
        hint = (
            'check the history out in full (`fetch-depth: 0` on GitHub, `GIT_DEPTH: "0"` '
            "on GitLab), or pass --base REV"
        )
        return CiPolicy(project.config, "working tree", error=error, hint=hint), None
    try:
        policy = base_policy(
            project.root,
            project.config,
            lock,
            base_commit(project.root, base) or merge_base,
            merge_base,
        )
    except ForkmanError as exc:
        error = f"cannot read the security settings of the base {base!r}: {exc.message}"
        policy = CiPolicy(project.config, f"base {base}", error=error, hint=exc.hint or "")
    return policy, merge_base


def _not_tested(results: Sequence[StageResult], policy: CiPolicy) -> dict[str, Any]:
    """The fields of a ForkTestStage that keep forks whose check or verify failed untested."""
    blocked = "the base's security settings could not be read" if policy.error else None
    failed: dict[str, list[str]] = {}
    for result in results:
        if result.name not in (CheckStage.name, VerifyStage.name):
            continue
        for f in result.findings:
            if f.level is not Level.ERROR:
                continue
            if f.fork:
                stages = failed.setdefault(f.fork, [])
                if result.name not in stages:
                    stages.append(result.name)
            elif result.status is StageStatus.ERROR and blocked is None:
                blocked = f"{result.name} could not run"
    return {
        "not_tested": {n: f"{'/'.join(s)} failed" for n, s in failed.items()},
        "blocked": blocked,
    }


def run_ci(
    project: Project,
    options: CiOptions = CiOptions(),
    observer: Observer = NullObserver(),
    *,
    stages: Sequence[Stage] | None = None,
) -> CiReport:
    """Run every stage on `project` (or `stages` after the policy stage), in order.

    With a base revision, every stage reads the base's security settings (see
    :mod:`forkman.ci.policy`); the first stage reports where they came from and
    what the checked-out tree changed. Forks whose check or verify failed are
    not tested.
    """
    project.require_git()
    from ..model.config import has_config

    if not has_config(project.pyproject) and not project.lock_path.exists():
        from ..core.errors import ProjectError

        raise ProjectError(
            f"{project.root} is not a forkman project: its pyproject.toml has no "
            "[tool.forkman] and there is no forkman.lock",
            hint="run `forkman init` to start one",
        )
    lock = project.load_lock()
    policy, merge_base = _establish_policy(project, options, observer, lock)
    run_on = project.with_config(policy.config) if policy.from_base else project
    changed = changed_forks(run_on, merge_base, lock) if merge_base is not None else None
    if stages is None:
        stages = [
            CheckStage(),
            VerifyStage(offline=options.offline, observer=observer),
            AuditStage(observer=observer),
            ForkTestStage(forks=changed, observer=observer),
        ]
    results: list[StageResult] = []
    for stage in [PolicyStage(policy), *stages]:
        if isinstance(stage, ForkTestStage):
            stage = replace(stage, **_not_tested(results, policy))
        observer.step("ci", f"{stage.name}: running")
        started = time.monotonic()
        try:
            result = stage.run(run_on)
        except ForkmanError as exc:
            result = _timed(
                stage.name,
                started,
                StageStatus.ERROR,
                exc.message,
                [CiFinding(stage.name, "error", exc.message, hint=exc.hint or "")],
            )
        observer.step("ci", f"{stage.name}: {result.status.value}")
        results.append(result)
    return CiReport(
        tuple(results),
        base=merge_base,
        changed=tuple(changed) if changed is not None else None,
        policy=policy.source,
    )
