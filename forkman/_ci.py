"""`forkman ci`: the one command for a pipeline.

A run is a sequence of stages, each a small object with a name and
``run(project) -> StageResult``: check (the vendored trees match the lock),
verify (every fork rebuilds from its pinned upstream and patches), audit
(known vulnerabilities, provenance) and the sandboxed tests of the forks that
changed against the merge base. A stage that cannot do its work (a command
that is not installed, an index that cannot be reached) is an ERROR, never a
silent pass: CI fails closed.

The audit and test stages run ``python -m forkman audit|test`` with this
interpreter: the command line is their stable contract, and a crash in them
cannot take the CI run down with it.
"""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._errors import BadInput, ForkmanError
from ._lock import LOCK_NAME, GitSource, IndexSource, Lock, LockEntry, parse_lock
from ._observer import NullObserver, Observer
from ._project import Project, cache_root


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
        from . import __version__

        return {
            "tool": "forkman",
            "version": __version__,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "base": self.base,
            "changed_forks": list(self.changed) if self.changed is not None else None,
            "stages": [s.as_dict() for s in self.stages],
        }


def _timed(
    name: str, started: float, status: StageStatus, summary: str, findings: Any
) -> StageResult:
    return StageResult(name, status, summary, tuple(findings), time.monotonic() - started)


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
        from ._check import check

        started = time.monotonic()
        config = project.config
        report = check(project.root, vendor_dir=config.vendor_dir, patches_dir=config.patches_dir)
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
    path = cache_root() / "downloads" / source.sha256.lower() / source.filename
    return path if path.is_file() and not path.is_symlink() else None


def _git_commit_cached(source: GitSource) -> bool:
    from .sources.git import mirror_path

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

    def _unavailable(self, entry: LockEntry) -> CiFinding | None:
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
            from .sources.index import fetch_exact

            try:
                fetch_exact(source, observer=self.observer)
            except ForkmanError as exc:
                from ._errors import NetworkError

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
        from ._verify import verify

        started = time.monotonic()
        lock = project.load_lock()
        findings: list[CiFinding] = []
        ready: list[str] = []
        for entry in lock:
            missing = self._unavailable(entry)
            if missing is None:
                ready.append(entry.name)
            else:
                findings.append(missing)
        failed = 0
        if ready:
            for result in verify(project, ready, observer=self.observer):
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
                            hint=f"`forkman verify {result.name}` shows the same failure",
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


# -- audit and test: the forkman commands of the other subsystems ------------------


def command_available(name: str) -> bool:
    """Whether this forkman installation has the command `name`."""
    from .cli import COMMANDS

    return name in COMMANDS


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


def _json_items(data: Any) -> list[Mapping[str, Any]]:
    """The records of a JSON report: a list, or the first list-valued key of a mapping."""
    if isinstance(data, list):
        return [d for d in data if isinstance(d, Mapping)]
    if isinstance(data, Mapping):
        for key in ("findings", "vulnerabilities", "results", "forks", "dependencies"):
            value = data.get(key)
            if isinstance(value, list):
                return [d for d in value if isinstance(d, Mapping)]
    return []


def _item_message(item: Mapping[str, Any]) -> str:
    for key in ("message", "summary", "description", "details"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return value.splitlines()[0]
    return json.dumps(dict(item), sort_keys=True, default=str)[:300]


@dataclass
class AuditStage:
    """Known vulnerabilities and provenance of every fork (`forkman audit`)."""

    argv: Sequence[str] | None = None
    """The command to run (default: ``python -m forkman audit --format json``)."""
    name: str = "audit"

    def run(self, project: Project) -> StageResult:
        started = time.monotonic()
        if self.argv is None and not command_available("audit"):
            return _missing_command(self.name, "audit", started)
        argv = list(self.argv or forkman_argv(project, "audit", "--format", "json"))
        proc = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return _timed(self.name, started, StageStatus.OK, "no known vulnerabilities", [])
        if proc.returncode != 1:
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
        try:
            items = _json_items(json.loads(proc.stdout))
        except json.JSONDecodeError:
            items = []
        findings = [
            CiFinding(
                self.name,
                str(item.get("id") or item.get("kind") or "vulnerability"),
                _item_message(item),
                fork=str(item.get("fork") or item.get("name") or "") or None,
                hint="`forkman audit` explains each finding and the fix",
            )
            for item in items
        ] or [CiFinding(self.name, "vulnerability", _tail(proc.stdout or proc.stderr, 5))]
        return _timed(
            self.name, started, StageStatus.FAILED, f"{len(findings)} finding(s)", findings
        )


@dataclass
class ForkTestStage:
    """The sandboxed test suites of the forks that changed (`forkman test`)."""

    forks: Sequence[str] | None
    """The forks to test; None means every fork."""
    argv: Sequence[str] | None = None
    """The command prefix to run (default: ``python -m forkman test``); fork names follow."""
    name: str = "test"

    def run(self, project: Project) -> StageResult:
        started = time.monotonic()
        if self.forks is not None and not self.forks:
            return _timed(self.name, started, StageStatus.SKIPPED, "no fork changed", [])
        if not len(project.load_lock()):
            return _timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
        if self.argv is None and not command_available("test"):
            return _missing_command(self.name, "test", started)
        prefix = list(self.argv or forkman_argv(project, "test"))
        runs = [[*prefix, "--all"]] if self.forks is None else [[*prefix, n] for n in self.forks]
        findings: list[CiFinding] = []
        errored = False
        for argv in runs:
            fork = None if argv[-1] == "--all" else argv[-1]
            proc = subprocess.run(
                argv, cwd=project.root, capture_output=True, text=True, check=False
            )
            if proc.returncode == 0:
                continue
            errored |= proc.returncode != 1
            findings.append(
                CiFinding(
                    self.name,
                    "tests-failed" if proc.returncode == 1 else "test-error",
                    f"{fork or 'forks'}: "
                    + (_tail(proc.stdout + "\n" + proc.stderr, 1) or f"exit {proc.returncode}"),
                    fork=fork,
                    hint=f"`forkman test {fork or '--all'}` shows the full output",
                )
            )
        what = "every fork" if self.forks is None else f"{len(self.forks)} changed fork(s)"
        if not findings:
            return _timed(self.name, started, StageStatus.OK, f"tests pass for {what}", [])
        status = StageStatus.ERROR if errored else StageStatus.FAILED
        return _timed(
            self.name,
            started,
            status,
            f"{len(findings)} of {len(runs)} test run(s) failed",
            findings,
        )


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


def run_ci(
    project: Project,
    options: CiOptions = CiOptions(),
    observer: Observer = NullObserver(),
    *,
    stages: Sequence[Stage] | None = None,
) -> CiReport:
    """Run every stage on `project` (or `stages`), in order, and collect the results."""
    project.require_git()
    lock = project.load_lock()
    base = options.base or base_from_environment()
    merge_base: str | None = None
    changed: list[str] | None = None
    if base is not None:
        merge_base = resolve_base(project.root, base)
        if merge_base is None:
            if options.base is not None:
                raise BadInput(
                    f"--base {base!r} is not a revision of this repository",
                    hint="fetch it first (e.g. `git fetch origin main`) or pass a commit",
                )
            observer.warning(f"base {base!r} from the environment is unknown; testing every fork")
        else:
            changed = changed_forks(project, merge_base, lock)
    if stages is None:
        stages = [
            CheckStage(),
            VerifyStage(offline=options.offline, observer=observer),
            AuditStage(),
            ForkTestStage(forks=changed),
        ]
    results = []
    for stage in stages:
        observer.step("ci", f"{stage.name}: running")
        started = time.monotonic()
        try:
            result = stage.run(project)
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
        tuple(results), base=merge_base, changed=tuple(changed) if changed is not None else None
    )
