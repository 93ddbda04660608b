"""Workflows over many forks, behind :class:`forkman.api.Project`.

The fork actors (:mod:`forkman.actors`) do one operation on one fork. The
workflows here combine them the way every caller (the CLI, ``watch``, ``ci``,
library users) must: a sync first makes the forks the configuration declares
(:func:`adopt_declared`), a change of namespace forks vendors the others
again (:func:`revendor_stale`), an interactive sync is a dry run, then a
confirmation, then the sync of exactly what was confirmed (:func:`sync_forks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from packaging.utils import canonicalize_name

from ..actors import ForkReply, OperationArgs, OperationResult
from ..actors.interface import Reply
from ..core.errors import BadInput, ForkmanError
from ..core.observer import BatchObserver, NullObserver, Observer
from ..model.lock import Layout
from ..model.project import Project
from .declared import declared_forks, expected_modules
from .forks import is_exact_pin, require_fork
from .handlers import ForkArgs, PatchArgs, PatchMode, SyncArgs, SyncMode
from .results import ErrorInfo, ForkResult, InitResult, PatchResult, SyncReport, SyncRun
from .sync import SyncOutcome, stale_namespace_forks
from .vendor import layout_for

R = TypeVar("R", bound=OperationResult)
Confirm = Callable[[SyncReport], bool]
"""Asked with the dry run of one fork's sync: True takes that release."""


@dataclass(frozen=True)
class Runner:
    """Sends operations to a project's fork actors (the one door to them for the API)."""

    project: Project
    """The consumer project."""
    observer: Observer = field(default_factory=NullObserver)
    """Where progress goes."""
    engine: str = "embedded"
    """``embedded`` or ``ray``."""
    jobs: int | None = None
    """Forks worked on at once (None: the number of cores)."""
    wait: float = 0.0
    """Seconds to queue behind another command working on a fork."""

    @contextmanager
    def _view(self) -> Iterator[Observer]:
        if isinstance(self.observer, BatchObserver):
            with self.observer.batch() as view:
                yield view
        else:
            with nullcontext(self.observer) as view:
                yield view

    def run(
        self,
        names: Sequence[str],
        args: OperationArgs[R] | None = None,
        *,
        jobs: int | None = None,
        per_fork: Mapping[str, OperationArgs[R]] | None = None,
    ) -> dict[str, ForkReply[R]]:
        """Send `args` (or a fork's `per_fork` message) to each fork's actor; replies by name."""
        from ..actors import run_for_forks

        with self._view() as view:
            return run_for_forks(
                self.project,
                names,
                args,
                jobs=jobs if jobs is not None else self.jobs,
                engine=self.engine,
                observer=view,
                wait=self.wait,
                per_fork=per_fork,
            )

    def one(self, name: str, args: OperationArgs[R]) -> Mapping[str, Any]:
        """Send `args` to one fork's actor; its result, or its error raised as it was raised."""
        reply = self.run([name], args)[name]
        error = reply.exception()
        if error is not None:
            raise error
        for warning in reply.result.get("warnings", []):
            self.observer.warning(str(warning))
        return reply.result

    def sync_reports(self, replies: Mapping[str, Reply]) -> list[SyncReport]:
        """Sync reports from actor replies, by fork name; a failed reply is a failed report."""
        out = []
        for name, reply in sorted(replies.items()):
            error = reply.exception()
            if error is None:
                out.append(SyncReport.from_reply(reply.result))
            else:
                out.append(SyncReport.failed(name, error))
        return out


def init_project(project: Project, *, index_url: str | None = None) -> InitResult:
    """Add ``[tool.forkman]`` to pyproject.toml, write an empty lock if there is none."""
    from ..model.config import edit_pyproject, init_table
    from ..model.lock import Lock, write_lock

    project.require_git()
    added = False

    def change(doc: Any) -> None:
        nonlocal added
        added = init_table(doc, index_url=index_url)

    edit_pyproject(project.pyproject, change)
    if not project.lock_path.exists():
        write_lock(project.lock_path, Lock())
    project.ensure_state_dir()
    from ..model.project import ignore_bytecode

    # bytecode under a fork that git does not ignore is a finding of `check`
    ignored = tuple(ignore_bytecode(project))
    return InitResult(added=added, lock=project.lock_path.name, ignored=ignored)


def revendor_stale(runner: Runner) -> list[SyncReport]:
    """Vendor again the namespace forks whose imports no longer match the namespace.

    A namespace fork follows the namespace: run after everything that adds or
    removes namespace forks. The results are sync reports (synced, conflict,
    failed); nothing when no fork is stale.
    """
    stale = stale_namespace_forks(runner.project)
    if not stale:
        return []
    return runner.sync_reports(runner.run(stale, SyncArgs(SyncMode.REVENDOR)))


@dataclass(frozen=True)
class Adoption:
    """What :func:`adopt_declared` did."""

    forked: tuple[ForkResult, ...] = ()
    """The declared forks made."""
    revendored: tuple[SyncReport, ...] = ()
    """Namespace forks vendored again (synced)."""
    imported: tuple[PatchResult, ...] = ()
    """Waiting patch files imported into the new forks' series."""
    failed: tuple[SyncReport, ...] = ()
    """Declared forks that could not be made or whose patches were not imported, and
    re-vendorings that did not finish."""


def _records_no_constraint(spec: str) -> bool:
    """Whether forking `spec` leaves pyproject.toml alone (an exact pin, or a bare name)."""
    from ..sources.index import parse_requirement

    try:
        specifier = parse_requirement(spec)[1]
    except Exception:  # a git spec or a bad one: forked alone, its error reported there
        return False
    return not specifier or is_exact_pin(specifier)


def adopt_declared(runner: Runner, only: Sequence[str] | None = None) -> Adoption:
    """Fork what ``[tool.forkman.forks.NAME] requirement`` declares and the lock lacks.

    This is how a configuration written by `forkman migrate vendoring` (or by
    hand) becomes forks: the first sync fetches each declared release, all at
    once. Namespace forks take over the names the tool they replace left in
    the namespace folder, and are vendored knowing every other declared
    namespace fork's modules (:mod:`forkman.operations.declared`); any that still misses
    one is vendored again. Then the patch files waiting in each new fork's
    series folder (written by the migration) are imported as its series. A
    failed import leaves the fork made and its files waiting.
    """
    project = runner.project
    wanted = None if only is None else {canonicalize_name(n) for n in only}
    declared = [d for d in declared_forks(project) if wanted is None or d.name in wanted]
    if not declared:
        return Adoption()
    expect = expected_modules(project, declared)
    per_fork = {
        d.name: ForkArgs(
            spec=d.spec,
            layout=d.layout,
            # a migrated namespace's tree was written by the tool forkman takes over from
            adopt=layout_for(project, d.name, d.layout) is Layout.NAMESPACE,
            expect_modules=tuple(expect),
        )
        for d in declared
    }
    # forks that edit pyproject.toml (a range recorded as the constraint, project-layout
    # wiring) are made one after the other: each edit reads what the one before wrote
    together = all(a.adopt and _records_no_constraint(a.spec) for a in per_fork.values())
    replies = runner.run(
        [d.name for d in declared], jobs=None if together else 1, per_fork=per_fork
    )
    failed: list[SyncReport] = []
    forked: list[ForkResult] = []
    for fork in declared:
        reply = replies[fork.name]
        error = reply.exception()
        if error is not None:
            failed.append(SyncReport.failed(fork.name, error))
            continue
        warnings = tuple(str(w) for w in reply.result.get("warnings", []))
        for warning in warnings:
            runner.observer.warning(warning)
        forked.append(
            ForkResult(
                name=fork.name,
                version=str(reply.result["version"]),
                path=str(reply.result["path"]),
                spec=fork.spec,
                layout=fork.layout or "",
                warnings=warnings,
            )
        )
    revendored: list[SyncReport] = []
    for report in revendor_stale(runner):
        (revendored if report.outcome is SyncOutcome.SYNCED else failed).append(report)
    imported, not_imported = _import_waiting(runner, [f.name for f in forked])
    return Adoption(tuple(forked), tuple(revendored), tuple(imported), tuple(failed + not_imported))


def _import_waiting(
    runner: Runner, forks: Sequence[str]
) -> tuple[list[PatchResult], list[SyncReport]]:
    """Import the patch files waiting in each fork's series folder."""
    project = runner.project
    waiting = {
        fork: [str(p.resolve()) for p in sorted(project.patches_path(fork).glob("*.patch"))]
        for fork in forks
    }
    waiting = {fork: files for fork, files in waiting.items() if files}
    if not waiting:
        return [], []
    replies = runner.run(
        sorted(waiting),
        per_fork={
            fork: PatchArgs(PatchMode.IMPORT, files=tuple(files)) for fork, files in waiting.items()
        },
    )
    imported, failed = [], []
    for series in sorted(waiting):
        reply = replies[series]
        error = reply.exception()
        if error is None:
            files = tuple(str(f) for f in reply.result["patches"])
            imported.append(PatchResult(series, "import", files))
            continue
        folder = project.relpath(project.patches_path(series))
        info = ErrorInfo.from_error(error)
        info = dataclasses.replace(
            info, message=f"its patch files in {folder} were not imported: {error.message}"
        )
        failed.append(SyncReport(series, SyncOutcome.FAILED, message=info.message, error=info))
    return imported, failed


def sync_forks(
    runner: Runner,
    names: Sequence[str] | None,
    *,
    to: str | None = None,
    dry_run: bool = False,
    yes: bool = False,
    confirm: Confirm | None = None,
    accept_publisher_change: bool = False,
    accept_risk: bool = False,
) -> SyncRun:
    """Sync forks `names` (None: every fork), declared forks first; see :meth:`Project.sync`."""
    project = runner.project
    project.require_git()
    if to is not None and (names is None or len(names) != 1):
        raise BadInput("`to` names one release of one fork", hint="forkman sync NAME --to VERSION")
    adoption = adopt_declared(runner, names)
    wanted = {canonicalize_name(n) for n in names or ()}
    if names is not None and any(r.name in wanted for r in adoption.failed):
        # a declared fork could not be made: say why, sync nothing
        return SyncRun(adoption.failed, adoption.forked, adoption.imported, adoption.revendored)
    adopted = {f.name for f in adoption.forked}
    if names is not None:
        chosen = [require_fork(project, n).name for n in names]
    else:
        chosen = sorted(project.load_lock().forks)
    chosen = [n for n in dict.fromkeys(chosen) if n not in adopted]
    results: list[SyncReport] = []
    if chosen:
        results = _sync_chosen(
            runner,
            chosen,
            to=to,
            dry_run=dry_run,
            yes=yes,
            confirm=confirm,
            accept={
                "accept_publisher_change": accept_publisher_change,
                "accept_risk": accept_risk,
            },
        )
        if not dry_run:
            # a release that vendors other modules changes what the other namespace forks rewrite
            results += revendor_stale(runner)
    return SyncRun(
        tuple(list(adoption.failed) + results),
        adoption.forked,
        adoption.imported,
        adoption.revendored,
        tuple(chosen),
    )


def _sync_chosen(
    runner: Runner,
    names: list[str],
    *,
    to: str | None,
    dry_run: bool,
    yes: bool,
    confirm: Confirm | None,
    accept: dict[str, bool],
) -> list[SyncReport]:
    args = SyncArgs(
        to=to,
        yes=yes,
        dry_run=dry_run,
        accept_publisher_change=accept["accept_publisher_change"],
        accept_risk=accept["accept_risk"],
    )
    if confirm is None or yes or dry_run:
        return runner.sync_reports(runner.run(names, args))
    # Review first (a dry run through the actors), ask, then take exactly what was confirmed.
    reviews = runner.sync_reports(runner.run(names, dataclasses.replace(args, dry_run=True)))
    confirmed: dict[str, str] = {}
    for review in reviews:
        if review.outcome is SyncOutcome.DRY_RUN and confirm(review):
            confirmed[review.name] = str(review.new_version)
    results = [r for r in reviews if r.outcome is not SyncOutcome.DRY_RUN]
    results += [
        dataclasses.replace(
            r, outcome=SyncOutcome.DECLINED, message=f"{r.name}: {r.new_version} not taken"
        )
        for r in reviews
        if r.outcome is SyncOutcome.DRY_RUN and r.name not in confirmed
    ]
    if confirmed:
        taken = dataclasses.replace(args, yes=True, expect_versions=confirmed)
        results += runner.sync_reports(runner.run(sorted(confirmed), taken))
    return results


def error_of(reply: Reply, subject: str | None = None) -> ForkmanError | None:
    """`reply`'s error, its message prefixed with `subject` (a fork name) when given."""
    error = reply.exception()
    if error is None or subject is None:
        return error
    data = error.to_json()
    data["message"] = f"{subject}: {error.message}"
    from ..core.errors import error_from_json

    return error_from_json(data)
