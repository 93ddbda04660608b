"""`forkman ci`: the one command for a pipeline.

A run is a sequence of stages, each a small object with a name and
``run(project) -> StageResult``: check (the vendored trees match the lock),
verify (every fork rebuilds from its pinned upstream and patches), audit
(known vulnerabilities, provenance) and the sandboxed tests of the forks that
changed against the merge base. A stage that cannot do its work (an index
that cannot be reached, a sandbox that cannot start) is an ERROR, never a
silent pass: CI fails closed.

The stages live in :mod:`forkman.ci.stages` (policy, check, verify) and
:mod:`forkman.ci.subsystems` (audit, test); what a run reports in
:mod:`forkman.ci.report`. :meth:`forkman.Project.ci` is the public entry point.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core import git
from ..core.errors import BadInput, ForkmanError
from ..core.observer import NullObserver, Observer
from ..model.lock import LOCK_NAME, Lock, parse_lock
from ..model.project import Project
from .policy import CiPolicy, base_commit, base_policy, working_tree_policy
from .report import CiFinding, CiReport, Level, Stage, StageResult, StageStatus, timed
from .stages import CheckStage, PolicyStage, VerifyStage, cached_release
from .subsystems import AuditStage, ForkTestOutcome, ForkTestStage, audit_findings

__all__ = [
    "AuditStage",
    "CheckStage",
    "CiFinding",
    "CiOptions",
    "CiReport",
    "ForkTestOutcome",
    "ForkTestStage",
    "Level",
    "PolicyStage",
    "Stage",
    "StageResult",
    "StageStatus",
    "VerifyStage",
    "audit_findings",
    "base_from_environment",
    "cached_release",
    "changed_forks",
    "resolve_base",
    "run_ci",
]

# -- which forks changed ------------------------------------------------------------


def _git(root: Path, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``git ARGS`` in the consumer's repository `root`."""
    proc = git.run(*args, cwd=root, check=False)
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "surrogateescape"),
        proc.stderr.decode("utf-8", "replace"),
    )


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
        code, out, _ = _git(root, "merge-base", candidate, "HEAD")
        if code == 0 and out.strip():
            return out.strip()
    return None


def changed_forks(project: Project, merge_base: str, lock: Lock) -> list[str]:
    """Forks whose vendored tree, patches or lock entry differ from `merge_base`."""
    config = project.config
    changed: set[str] = set()
    paths = {entry.name: entry.path.rstrip("/") + "/" for entry in lock}
    patches = {entry.name: f"{config.patches_dir}/{entry.name}/" for entry in lock}
    code, out, err = _git(
        project.root,
        "diff",
        "--name-only",
        "--no-renames",
        merge_base,
        "--",
        LOCK_NAME,
        *sorted({p.split("/", 1)[0] for p in paths.values()} | {config.patches_dir}),
    )
    if code != 0:
        raise BadInput(f"cannot diff against {merge_base}: {err.strip()}")
    files = out.splitlines()
    for name in lock.forks:
        if any(f.startswith(paths[name]) or f.startswith(patches[name]) for f in files):
            changed.add(name)
    if LOCK_NAME in files:
        shown, old, _ = _git(project.root, "show", f"{merge_base}:{LOCK_NAME}")
        try:
            before = parse_lock(old) if shown == 0 else Lock()
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
            result = timed(
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
