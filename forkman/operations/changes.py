"""The operations on one fork behind :class:`forkman.api.Project`: fork it, change its
patch series, restore it, go on with or undo its sync, edit its files, and wire
the project.

Each sends its fork's actor one message through the :class:`Runner` (one
operation at a time per fork, journaled) and turns the reply into a typed
result of :mod:`forkman.operations.results`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from ..actors import OperationArgs, OperationResult
from ..core.errors import BadInput
from ..model.config import DistPreference
from ..model.project import Project
from .forkops import fork_file
from .handlers import ForkArgs, PatchArgs, RestoreArgs, SyncArgs, SyncMode
from .results import ForkResult, PatchResult, SyncReport, SyncRun
from .workflows import Runner, revendor_stale

R = TypeVar("R", bound=OperationResult)


def fork_one(
    runner: Runner,
    spec: str,
    *,
    name: str | None = None,
    index_url: str | None = None,
    wheel: bool = False,
    prereleases: bool | None = None,
    layout: str | None = None,
) -> ForkResult:
    """Fork `spec`; the other namespace forks whose imports change are vendored again."""
    from .forks import fork_name_for, layout_and_reason, require_initialized

    project = runner.project
    project.require_git()
    require_initialized(project)
    fork_name = fork_name_for(spec, name)
    chosen, why = layout_and_reason(project, fork_name, layout)
    args = ForkArgs(
        spec,
        index_url=index_url,
        prefer=DistPreference.WHEEL if wheel else None,
        prereleases=prereleases,
        layout=layout,
    )
    result = runner.one(fork_name, args)
    made = ForkResult(
        name=fork_name,
        version=str(result["version"]),
        path=str(result["path"]),
        spec=spec,
        layout=chosen,
        layout_reason=why,
        warnings=tuple(str(w) for w in result.get("warnings", [])),
    )
    # the other namespace forks' imports of this one are rewritten now
    return dataclasses.replace(made, revendored=tuple(revendor_stale(runner)))


def _one(runner: Runner, name: str, args: OperationArgs[R]) -> tuple[str, Mapping[str, Any]]:
    """(canonical name, result) of the message `args` sent to fork `name`'s actor."""
    runner.project.require_git()
    fork = runner.project.load_lock().require(name).name
    return fork, runner.one(fork, args)


def patch_fork(runner: Runner, name: str, args: PatchArgs) -> PatchResult:
    """Change fork `name`'s patch series (``args.mode``: record, drop, move, edit, import)."""
    fork, result = _one(runner, name, args)
    files = result.get("patches") or ([result["file"]] if result.get("file") else [])
    return PatchResult(fork, args.mode.value, tuple(str(f) for f in files))


def restore_fork(runner: Runner, name: str) -> tuple[str, ...]:
    """Discard unrecorded edits in fork `name`'s tree; the paths restored."""
    _, result = _one(runner, name, RestoreArgs())
    return tuple(str(p) for p in result["restored"])


def continue_sync(runner: Runner, name: str) -> SyncRun:
    """Go on with fork `name`'s sync stopped at a conflict (the namespace forks follow)."""
    from .sync import SyncOutcome

    fork, result = _one(runner, name, SyncArgs(SyncMode.CONTINUE))
    report = SyncReport.from_reply(result)
    if report.outcome is SyncOutcome.CONFLICT:
        return SyncRun((report,), considered=(fork,))
    return SyncRun((report, *revendor_stale(runner)), considered=(fork,))


def abort_sync(runner: Runner, name: str) -> SyncReport:
    """Undo fork `name`'s sync stopped at a conflict."""
    _, result = _one(runner, name, SyncArgs(SyncMode.ABORT))
    return SyncReport.from_reply(result)


def write_fork_file(project: Project, name: str, path: str, text: str) -> None:
    """Write `text` to file `path` of fork `name`, atomically (an edit or a resolution)."""
    from ..core.fs import atomic_write_text

    target = fork_file(project, name, path)
    if target.is_dir():
        raise BadInput(f"{path!r} of fork {name} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text)


def wire_project(project: Project) -> tuple[str, ...]:
    """Wire every project-layout fork and pack its installable archive; one line each."""
    from ..layouts.wiring import wire_all
    from ..store.txn import lock_file_mutex
    from .forks import wiring_enabled

    if not wiring_enabled(project):
        raise BadInput(
            "[tool.forkman] wire = false: forkman does not wire this project's forks",
            hint="remove `wire = false` from [tool.forkman] to let forkman wire them",
        )
    project.ensure_state_dir()
    with lock_file_mutex(project):
        return tuple(wire_all(project))
