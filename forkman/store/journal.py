"""The journals of fork transactions (``.forkman/txn/<fork>.json``), validated.

A journal is never trusted because it exists (a pull request could have
committed one, see :mod:`forkman.model.statetrust`): :func:`load_journal`
validates every journal before recovery, resume or abort touches anything.
Every path must be relative, normalised and inside the project; every target
must be something a transaction of that fork may touch (its vendored folder or
namespace members, its patch series, ``pyproject.toml``, the wiring's
requirements file, its history under ``.forkman/forks/``), backups must lie in
the journal's own folder under ``.forkman/txn/``, refs must be the fork's
history refs, and no path may cross a symlink. An invalid journal is refused
(:class:`JournalError`, exit 2, the journal named), never repaired.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from pathlib import Path
from typing import Any

from ..core.errors import SecurityError
from ..model.lock import Layout, load_lock
from ..model.project import REQUIREMENTS_FILE, Project

ABSENT = "absent"
"""The commit digest of a fork that has no lock entry."""


class JournalError(SecurityError):
    """A journal under ``.forkman/txn/`` that is not one forkman wrote for its fork."""


class _Refused(Exception):
    """Why a journal is refused (made a :class:`JournalError` naming the journal)."""


_JOURNAL_KEYS = frozenset(
    {"fork", "operation", "id", "dir", "steps", "after", "paused", "pause_point"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
_OPERATION = re.compile(r"[a-z][a-z0-9-]{0,63}\Z")
_TXN_ID = re.compile(r"[0-9a-f]{1,64}\Z")
_REF = re.compile(r"refs/(heads|tags)/[A-Za-z0-9._+!-]+(/[A-Za-z0-9._+!-]+)*\Z")
_OID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_BACKUP = re.compile(r"b[0-9]{1,9}\Z")


def _normal(value: object) -> str | None:
    """`value` if it is a relative, normalised path inside the project, else None."""
    if not isinstance(value, str) or not value or "\0" in value or "\\" in value:
        return None
    if value.startswith("/") or posixpath.normpath(value) != value:
        return None
    if value == "." or value == ".." or value.startswith("../"):
        return None
    return value


def _config_dir(value: str) -> str | None:
    norm = posixpath.normpath(value.replace("\\", "/"))
    return _normal(norm)


def _allowed_targets(project: Project, fork: str) -> tuple[set[str], set[str]]:
    """What a transaction of `fork` may replace: exact paths, and folders whose direct
    children it may replace (a patch series' files, a namespace folder's members)."""
    exact = {"pyproject.toml", REQUIREMENTS_FILE, f".forkman/forks/{fork}.git"}
    children: set[str] = set()
    config = project.config
    patches = _config_dir(config.patches_dir)
    if patches is not None:
        exact.add(f"{patches}/{fork}")
        children.add(f"{patches}/{fork}")
    vendor = _config_dir(config.vendor_dir)
    if vendor is not None:
        exact.add(f"{vendor}/{fork}")
    try:
        entry = load_lock(project.lock_path).get(fork)
    except Exception:  # a damaged lock names no path
        entry = None
    if entry is not None and _normal(entry.path) is not None:
        if entry.layout is Layout.NAMESPACE:
            children.add(entry.path)
        else:
            exact.add(entry.path)
    if "vendoring" in config.raw:
        from ..model.vendoring import vendoring_config

        destination = _config_dir(vendoring_config(config).destination)
        if destination is not None:
            children.add(destination)
    return exact, children


def _namespace_member_ok(project: Project, folder: str, member: str) -> bool:
    if member == "__init__.py" or member.startswith("."):
        return False
    if "vendoring" not in project.config.raw:
        return True
    from ..model.vendoring import vendoring_config

    return member not in vendoring_config(project.config).protected_files


def _symlink_on_the_way(project: Project, rel: str, *, last_may_link: bool) -> str | None:
    """The first component of `rel` (from the project root) that is a symlink, or None."""
    here = project.root
    parts = rel.split("/")
    for i, part in enumerate(parts):
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode) and not (last_may_link and i == len(parts) - 1):
            return "/".join(parts[: i + 1])
    return None


def _no_symlink(project: Project, rel: str, *, last_may_link: bool, why: str) -> None:
    """Refuse when `rel` goes through a symlink (`why`: the refusal, up to "the symlink")."""
    where = _symlink_on_the_way(project, rel, last_may_link=last_may_link)
    if where is not None:
        raise _Refused(f"{why} the symlink {where}")


def load_journal(project: Project, journal: Path) -> dict[str, Any]:
    """The journal at `journal`, validated (see the module docstring); JournalError if not.

    FileNotFoundError when there is no journal.
    """
    try:
        return _validated(project, journal)
    except _Refused as exc:
        rel = project.relpath(journal)
        raise JournalError(
            f"refusing the journal {rel}: {exc}; forkman changed nothing",
            hint="forkman writes journals only for its own transactions. If no forkman "
            f"command is running, look at the file and remove it (`rm {rel}`), then "
            "`forkman check` shows the state of the fork",
        ) from None


def _validated(project: Project, journal: Path) -> dict[str, Any]:
    fork = journal.name.removesuffix(".json")
    data = _read(journal)
    folder = _check_header(data, fork)
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise _Refused("its steps are not a list")
    _check_pause(data, steps)
    exact, children = _allowed_targets(project, fork)
    for n, step in enumerate(steps, 1):
        if not isinstance(step, dict):
            raise _Refused(f"step {n} is not an object")
        if set(step) == {"ref", "git_dir", "old"}:
            _check_ref_step(project, n, step, fork)
        elif set(step) == {"target", "backup"}:
            _check_path_step(project, n, step, fork, folder, (exact, children))
        else:
            raise _Refused(f"step {n} is neither a path step nor a ref step")
    _no_symlink(project, folder, last_may_link=False, why="its folder goes through")
    return data


def _read(journal: Path) -> dict[str, Any]:
    """The journal's JSON object: a regular file, only journal keys."""
    st = os.lstat(journal)  # FileNotFoundError: no journal
    if not stat.S_ISREG(st.st_mode):
        raise _Refused("it is a symlink or not a regular file")
    try:
        data = json.loads(journal.read_bytes())
    except (OSError, ValueError) as exc:
        raise _Refused(f"it is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not set(data) <= _JOURNAL_KEYS:
        raise _Refused("it is not a journal object")
    return data


def _check_header(data: dict[str, Any], fork: str) -> str:
    """Check the journal's fork, operation, id, folder and commit digest; its folder."""
    if data.get("fork") != fork or not _NAME.match(fork):
        raise _Refused(f"its fork {data.get('fork')!r} is not the one its name says")
    if not isinstance(data.get("operation"), str) or not _OPERATION.match(data["operation"]):
        raise _Refused("its operation is not a name")
    txn_id = data.get("id")
    if not isinstance(txn_id, str) or not _TXN_ID.match(txn_id):
        raise _Refused("its id is not a transaction id")
    folder = f".forkman/txn/{fork}.{txn_id}"
    if data.get("dir") != folder:
        raise _Refused(f"its folder {data.get('dir')!r} is not {folder}")
    after = data.get("after")
    if after is not None and not (
        after == ABSENT or (isinstance(after, str) and _DIGEST.match(after))
    ):
        raise _Refused("its commit digest is not a digest")
    return folder


def _check_pause(data: dict[str, Any], steps: list[Any]) -> None:
    paused = data.get("paused")
    if paused is None:
        if "pause_point" in data:
            raise _Refused("it has a pause point but no paused state")
        return
    point = data.get("pause_point")
    if not isinstance(paused, dict) or not isinstance(point, int) or not 0 <= point <= len(steps):
        raise _Refused("its pause point is not one of its steps")
    members = paused.get("members")
    if members is not None and not (
        isinstance(members, list) and all(_is_member(m) for m in members)
    ):
        raise _Refused("its paused members are not plain names")


def _check_ref_step(project: Project, n: int, step: dict[str, Any], fork: str) -> None:
    git_dir = f".forkman/forks/{fork}.git"
    ref, old = step["ref"], step["old"]
    if step["git_dir"] != git_dir:
        raise _Refused(f"step {n} moves a ref outside {git_dir}")
    if not isinstance(ref, str) or not _REF.match(ref) or ".." in ref or ref.endswith(".lock"):
        raise _Refused(f"step {n} names {ref!r}, not a history ref of the fork")
    if old is not None and not (isinstance(old, str) and _OID.match(old)):
        raise _Refused(f"step {n} restores {old!r}, not a commit id")
    _no_symlink(project, git_dir, last_may_link=False, why=f"step {n} goes through")


def _check_path_step(
    project: Project,
    n: int,
    step: dict[str, Any],
    fork: str,
    folder: str,
    allowed: tuple[set[str], set[str]],
) -> None:
    exact, children = allowed
    target = _normal(step["target"])
    if target is None:
        raise _Refused(f"step {n} names {step['target']!r}, not a normalised relative path")
    parent, _, name = target.rpartition("/")
    if (
        not (
            target in exact or (parent in children and _namespace_member_ok(project, parent, name))
        )
        or target == ".git"
        or target.startswith((".git/", ".forkman/txn"))
    ):
        raise _Refused(f"step {n} names {target}, which a transaction of {fork} never touches")
    backup = step["backup"]
    if backup is not None:
        if (
            not isinstance(backup, str)
            or backup.rpartition("/")[0] != folder
            or not _BACKUP.match(backup.rpartition("/")[2])
        ):
            raise _Refused(f"step {n} keeps its backup outside {folder}")
        _no_symlink(
            project,
            backup,
            last_may_link=True,
            why=f"step {n}'s backup goes through",
        )
    _no_symlink(
        project,
        target,
        last_may_link=True,
        why=f"step {n} reaches {target} through",
    )


def _is_member(value: object) -> bool:
    return (
        isinstance(value, str)
        and _normal(value) == value
        and "/" not in value
        and not value.startswith(".")
    )


def read_journal(project: Project, fork: str) -> dict[str, Any] | None:
    """The validated journal of `fork`, or None when it has none."""
    try:
        return load_journal(project, project.state_dir / "txn" / f"{fork}.json")
    except FileNotFoundError:
        return None
