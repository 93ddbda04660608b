"""The stages of `forkman ci` that read the project itself: policy, check and verify.

Each stage is a small object with a name and ``run(project) -> StageResult``.
A stage that cannot do its work (an index that cannot be reached, a release
missing from the offline cache) is an ERROR, never a silent pass: CI fails closed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core import git
from ..core.errors import ForkmanError
from ..core.observer import NullObserver, Observer
from ..model.lock import LOCK_NAME, GitSource, IndexSource, LockEntry
from ..model.project import Project, cache_root
from .policy import CiPolicy
from .report import CiFinding, StageResult, StageStatus, timed

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
            return timed(self.name, started, StageStatus.ERROR, policy.error, [finding])
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
            return timed(
                self.name,
                started,
                StageStatus.FAILED,
                f"{len(findings)} change(s) to review; {where}",
                findings,
            )
        return timed(self.name, started, StageStatus.OK, where, [])


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
        from ..operations.reads import gate_report

        started = time.monotonic()
        report = gate_report(project)
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
            return timed(
                self.name,
                started,
                StageStatus.OK,
                f"{report.forks_checked} fork(s) match {LOCK_NAME}",
                [],
            )
        return timed(
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
    proc = git.run(
        "cat-file", "-e", f"{source.commit}^{{commit}}", cwd=mirror, owned=True, check=False
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
            return timed(self.name, started, StageStatus.SKIPPED, "no forks", [])
        parts = [f"{len(ready) - failed}/{len(lock)} fork(s) rebuild bit for bit"]
        if failed:
            parts.append(f"{failed} differ")
        if unverifiable:
            where = "offline cache" if self.offline else "network"
            parts.append(f"{unverifiable} could not be verified (no {where})")
        status = (
            StageStatus.FAILED if failed else StageStatus.ERROR if unverifiable else StageStatus.OK
        )
        return timed(self.name, started, status, ", ".join(parts), findings)
