"""Operations over several forks behind :class:`forkman.api.Project`: each fork's
message to its actor, and each reply turned into a typed result.

Also :func:`fork_file`: the one place a path given by a caller (an agent, say)
becomes a file of a fork, confined to what that fork owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..core.errors import BadInput, NotFound, SecurityError
from ..model.project import Project
from .handlers import AuditReportArgs, TestArgs, UnforkArgs, VerifyArgs
from .results import AuditRun, ErrorInfo, TestResult, UnforkResult, UnforkRun
from .workflows import Runner, error_of, revendor_stale

if TYPE_CHECKING:
    from .verify import VerifyResult


def fork_file(project: Project, name: str, path: str) -> Path:
    """The file `path` (relative to the fork's folder) of fork `name`, confined to the fork.

    Refused: absolute paths, ``..``, empty paths, a path through a symbolic
    link, a name another namespace fork (or the project) owns, and a fork
    folder that leads out of the project.
    """
    from ..gate.check import members_of
    from .forks import require_fork

    entry = require_fork(project, name)
    rel = PurePosixPath(path.replace("\\", "/"))
    if rel.is_absolute() or not rel.parts or ".." in rel.parts or rel.parts[0] == "":
        raise BadInput(
            f"{path!r} is not a path inside fork {entry.name}",
            hint=f"give a path relative to {entry.path}, e.g. 'pkg/__init__.py'",
        )
    members = members_of(entry)
    if members is not None and rel.parts[0] not in members:
        raise BadInput(
            f"{path!r} is not one of namespace fork {entry.name}'s files",
            hint=f"its names in {entry.path}: {', '.join(members) or 'none'}",
        )
    root = project.root / entry.path
    if not root.resolve().is_relative_to(project.root.resolve()):
        raise SecurityError(
            f"fork {entry.name}'s folder {entry.path} leads out of the project",
            hint=f"replace the symbolic link on the way to {entry.path} by the fork's tree",
        )
    # no symbolic link on the way: a link could lead outside the fork
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise BadInput(f"{path!r} of fork {entry.name} goes through a symbolic link")
    return root.joinpath(*rel.parts)


def unfork_forks(runner: Runner, names: Sequence[str]) -> UnforkRun:
    """Remove forks `names` one after the other, then vendor stale namespace forks again."""
    from .forks import require_fork

    if not names:
        raise BadInput("name at least one fork to remove", hint="fm.unfork('attrs')")
    project = runner.project
    project.require_git()
    wanted = list(dict.fromkeys(require_fork(project, n).name for n in names))
    results = []
    # one after the other: each removal edits the lock and pyproject.toml the next one reads
    for name in wanted:
        reply = runner.run([name], UnforkArgs())[name]
        error = reply.exception()
        if error is None:
            results.append(
                UnforkResult(name, str(reply.result["version"]), str(reply.result["path"]))
            )
        else:
            results.append(UnforkResult(name, error=ErrorInfo.from_error(error)))
    # the other namespace forks import the removed ones from the top level again
    return UnforkRun(tuple(results), tuple(revendor_stale(runner)))


def verify_forks(runner: Runner, wanted: Sequence[str]) -> tuple[VerifyResult, ...]:
    """Rebuild each fork in `wanted` through its actor; a fork that could not run raises."""
    from . import verify as _verify

    replies = runner.run(wanted, VerifyArgs())
    results = []
    for name in wanted:
        reply = replies[name]
        error = error_of(reply, name)
        if error is not None:
            raise error
        r = reply.result
        results.append(
            _verify.VerifyResult(
                name,
                bool(r["ok"]),
                _verify.VerifyStage(r["stage"]) if r.get("stage") else None,
                str(r.get("message") or ""),
                str(r.get("hint") or ""),
            )
        )
    return tuple(results)


def test_forks(
    runner: Runner, wanted: Sequence[str], *, no_sandbox: bool = False
) -> tuple[TestResult, ...]:
    """Test each fork in `wanted` through its actor, from one warm fork server stopped after."""
    from .handlers import stop_test_server

    if not wanted:
        raise NotFound("the project has no forks", hint="fork something first: forkman fork NAME")
    if no_sandbox:
        runner.observer.warning(
            "the sandbox is disabled: the tests run with your network, files and secrets"
        )
    try:
        replies = runner.run(wanted, TestArgs(no_sandbox))
    finally:
        stop_test_server()
    results = []
    for name in wanted:
        reply = replies[name]
        error = reply.exception()
        if error is not None:
            message = reply.error or error.message
            results.append(
                TestResult(name, "error", False, message, error=ErrorInfo.from_error(error))
            )
        else:
            results.append(TestResult.from_reply(name, reply.result))
    return tuple(results)


def audit_forks(
    runner: Runner, wanted: Sequence[str], *, online: bool = False, database: Path | None = None
) -> AuditRun:
    """Audit each fork in `wanted` through its actor; one whose audit cannot run is unaudited."""
    from ..audit.vulnerabilities import (
        AuditReport,
        ForkAudit,
        ForkStatus,
        audit_project,
        database_from_json,
        fork_audit_from_json,
        now_rfc3339,
    )

    project = runner.project
    if not wanted:
        return AuditRun(audit_project(project, (), online=online, database=database))
    # each fork's audit is a message to its actor (recorded in the lock there)
    args = AuditReportArgs(online, str(database) if database else None)
    replies = runner.run(wanted, args)
    lock = project.load_lock()
    forks = []
    errors: list[tuple[str, ErrorInfo]] = []
    for name in wanted:
        reply = replies[name]
        error = reply.exception()
        if error is None:
            forks.append(fork_audit_from_json(reply.result["fork"]))
            continue
        errors.append((name, ErrorInfo.from_error(error)))
        entry = lock.forks.get(name)
        forks.append(
            ForkAudit(
                name=name,
                version=entry.version if entry else "?",
                status=ForkStatus.UNAUDITED,
                unaudited=(f"the audit could not run: {error.message}",),
                path=entry.path if entry else "",
            )
        )
    done = [replies[n].result for n in wanted if replies[n].ok]
    report = AuditReport(
        when=str(done[0]["when"]) if done else now_rfc3339(),
        database=database_from_json(done[0]["database"]) if done else None,
        sources=tuple(done[0]["sources"]) if done else (),
        forks=tuple(forks),
    )
    return AuditRun(report, tuple(errors))
