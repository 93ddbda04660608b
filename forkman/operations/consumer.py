"""What forkman does in the consumer's own git repository: stage the files of a fork
its ignore rules would leave out, wire project-layout forks into pyproject.toml,
and read the consumer's git identity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import git
from ..core.errors import GitError
from ..core.observer import NullObserver, Observer
from ..gate.check import ignored_hint
from ..model.lock import LockEntry
from ..model.project import Project
from ..store.txn import ForkTransaction, lock_file_mutex


def wiring_enabled(project: Project) -> bool:
    """Whether project-layout forks are wired into pyproject.toml (``[tool.forkman] wire``)."""
    return project.config.raw.get("wire", True) is not False


def write_wiring(txn: ForkTransaction, project: Project, edit: Any) -> None:
    """Write a wiring edit (pyproject.toml, forkman-requirements.txt) inside `txn`."""
    if not edit.changed:
        return
    from ..layouts.wiring import REQUIREMENTS_FILE

    if edit.pyproject_text != project.pyproject.read_text(encoding="utf-8"):
        txn.write_file(project.pyproject, edit.pyproject_text.encode())
    requirements = project.root / REQUIREMENTS_FILE
    if edit.requirements_text is None:
        if requirements.exists():
            txn.replace_path(requirements, None)
    else:
        txn.write_file(requirements, edit.requirements_text.encode())


def ignored_by_git(project: Project, paths: list[str], *, tracked: bool = True) -> list[str]:
    """Which of `paths` (relative to the project root) the consumer's git ignores.

    Without `tracked`, files git tracks are left out (their ignore rules no longer apply).
    """
    if not paths:
        return []
    proc = git.run(
        "check-ignore",
        *(["--no-index"] if tracked else []),
        "-z",
        "--stdin",
        cwd=project.root,
        input=b"\0".join(p.encode("utf-8", "surrogateescape") for p in paths) + b"\0",
        check=False,
    )
    if proc.returncode not in (0, 1):
        return []
    return sorted(p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p)


def keep_ignored(
    project: Project,
    entry: LockEntry,
    manifest: Mapping[str, object],
    observer: Observer = NullObserver(),
) -> list[str]:
    """Stage (``git add -f``) the files of fork `entry` that the consumer's git ignores.

    A release may ship files the consumer's ignore rules name (packaging's
    ``tests/.pytest_cache/``, a package folder called ``lib``): ``git add``
    would leave them out, and a fresh clone would not match the lock. forkman
    never drops a file of a release (a dropped module could change what runs),
    so it stages the ones git does not track yet, and says so. `manifest`: the
    fork's files relative to its path. The paths staged; when git cannot
    stage them the warning gives the command, and `forkman check` names them
    until they are tracked.
    """
    paths = [f"{entry.path}/{p}" for p in manifest]
    with lock_file_mutex(project):  # one `git add` of forkman's at a time on the index
        ignored = ignored_by_git(project, paths, tracked=False)
        if not ignored:
            return []
        proc = git.run(
            "add",
            "-f",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            cwd=project.root,
            env={"GIT_LITERAL_PATHSPECS": "1"},
            input=b"\0".join(p.encode("utf-8", "surrogateescape") for p in ignored) + b"\0",
            check=False,
        )
    shown = ", ".join(ignored[:3]) + (f" and {len(ignored) - 3} more" if len(ignored) > 3 else "")
    if proc.returncode == 0:
        observer.warning(
            f"{len(ignored)} file(s) of {entry.path} are ignored by this repository's git "
            f"({shown}): forkman staged them with `git add -f` so that a commit, and every "
            "fresh clone, has them"
        )
        return ignored
    error = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    observer.warning(
        f"{len(ignored)} file(s) of {entry.path} are ignored by this repository's git "
        f"({shown}) and could not be staged ({error[-1] if error else 'git add failed'}); "
        + ignored_hint(ignored)
    )
    return []


def default_author(project: Project) -> str:
    """``Name <email>`` from the consumer repository's git identity."""
    try:
        proc = git.run("var", "GIT_AUTHOR_IDENT", cwd=project.root, check=False)
    except GitError:  # no git at all
        return "forkman <forkman@localhost>"
    ident = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or "<" not in ident:
        return "forkman <forkman@localhost>"
    return ident[: ident.rindex(">") + 1]
