"""What the consumer's git knows about the forks' files.

Every question goes to the consumer's repository through :mod:`forkman.core.git`
(``owned=False``: the user's configuration, nothing a calling hook set).
When git cannot answer (outside a work tree, git missing), each function
says so (None, or "not ok") and its caller decides without git.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import GitError
from ..core.git import finish, run, spawn
from ..model.lock import LockEntry
from .findings import Finding, FindingKind
from .manifest import members_of
from .quickcheck import repo_top

# Pathspecs mean what forkman writes, whatever pathspec settings the environment holds.
_PATHSPECS = {"GIT_GLOB_PATHSPECS": "0", "GIT_NOGLOB_PATHSPECS": "0", "GIT_ICASE_PATHSPECS": "0"}
_LITERAL = {**_PATHSPECS, "GIT_LITERAL_PATHSPECS": "1"}
_MAGIC = {**_PATHSPECS, "GIT_LITERAL_PATHSPECS": "0"}


def _paths(root: Path, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
    """The NUL-separated paths `git ARGS` prints in `root`, or None when git cannot answer."""
    try:
        proc = run(*args, cwd=root, env=env, check=False)
    except (GitError, OSError):
        return None
    if proc.returncode != 0:
        return None
    return [os.fsdecode(p) for p in proc.stdout.split(b"\0") if p]


def git_paths(root: Path, args: Sequence[str]) -> list[str] | None:
    """The NUL-separated paths `git ARGS` prints in `root` (pathspecs literal), or None."""
    return _paths(root, args, _LITERAL)


def ignored_untracked(root: Path, entries: Sequence[LockEntry]) -> dict[str, set[str]]:
    """Per fork, its files (relative to its path) that git ignores and does not track.

    Bytecode caches are left out (they are judged by :func:`bytecode_findings`).
    Outside a git work tree (or when git cannot answer) there is nothing to say.
    """
    folders = sorted({e.path for e in entries})
    if not folders:
        return {}
    found = git_paths(
        root, ["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--", *folders]
    )
    out: dict[str, set[str]] = {}
    for path in found or ():
        if "__pycache__" in path.split("/"):
            continue
        for entry in entries:
            prefix = entry.path + "/"
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            members = members_of(entry)
            if members is None or rel.split("/", 1)[0] in members:
                out.setdefault(entry.name, set()).add(rel)
    return out


_GLOB_SPECIAL = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})


def bytecode_findings(root: Path, entries: Sequence[LockEntry]) -> list[Finding]:
    """Bytecode under the forks' paths that git tracks, or that git does not ignore.

    Tree hashes leave ``__pycache__`` out (running the code writes it), so
    bytecode is judged here: a ``.pyc`` git tracks (or would commit, not being
    ignored) can carry other code than the source beside it, and Python runs it
    (an unchecked-hash pyc is never compared with its source). Bytecode git
    ignores is this interpreter's own cache and is not judged. Outside a git
    work tree (or when git cannot answer) nothing tells them apart, so every
    bytecode file found is a finding.
    """
    folders = sorted({e.path for e in entries})
    if not folders:
        return []
    files = _git_bytecode(root, folders)
    if files is None:
        files = _disk_bytecode(root, folders)
    findings = []
    for path in sorted(set(files)):
        owner = None
        for entry in entries:
            members = members_of(entry)
            prefix = entry.path + "/"
            if not path.startswith(prefix):
                continue
            if members is None or path[len(prefix) :].split("/", 1)[0] in members:
                owner = entry.name
        findings.append(
            Finding(
                FindingKind.BYTECODE,
                owner,
                path,
                "committed or not ignored by git; Python may run it instead of the source",
            )
        )
    return findings


def _git_bytecode(root: Path, folders: Sequence[str]) -> list[str] | None:
    """Files in ``__pycache__`` under `folders` that git tracks or does not ignore."""
    specs = [f":(glob){f.translate(_GLOB_SPECIAL)}/**/__pycache__/**" for f in folders]
    return _paths(
        root, ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *specs], _MAGIC
    )


def _disk_bytecode(root: Path, folders: Sequence[str]) -> list[str]:
    """Every file in a ``__pycache__`` folder under `folders`."""
    found = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            rel = Path(dirpath).relative_to(root).as_posix()
            if "__pycache__" in rel.split("/"):
                links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                found += [f"{rel}/{name}" for name in filenames + links]
    return found


class GitView:
    """What the consumer's git knows about the fork paths, asked concurrently.

    ``git status`` (limited to the fork paths) says which paths differ from
    HEAD in the index or the work tree, or hold untracked files; ``git
    ls-tree HEAD`` gives the committed tree id of each fork directory. A fork
    whose path git reports clean and whose committed tree id is the one
    already proven (by a full hash) to match its lock entry needs no hashing.
    Both run while the caller works (:func:`forkman.core.git.spawn`); :meth:`wait`
    collects them.
    """

    def __init__(self, root: Path, paths: list[str]) -> None:
        self.ok = False
        self.dirty: list[str] = []
        self.trees: dict[str, str] = {}
        self._procs: list[tuple[int, int]] = []
        top = repo_top(root)
        # status paths are relative to the repository's top, which may be above `root`
        rel = "." if top is None else os.path.relpath(root.resolve(), top).replace(os.sep, "/")
        self._base = "" if rel == "." else rel + "/"
        if not paths or top is None:
            return
        # One pathspec per top-level folder: git matches every index entry against
        # every pathspec, so a pathspec per fork would cost more than the status itself.
        spec = ["--", *sorted({p.split("/", 1)[0] for p in paths})]
        commands = [
            ["status", "--porcelain=v1", "-z", "--untracked-files=all", *spec],
            ["ls-tree", "-z", "HEAD", "--", *paths],
        ]
        try:
            for command in commands:
                self._procs.append(spawn(["git", "-C", os.fspath(root), *command]))
        except OSError:
            self.wait()  # reaps what started; the view stays "not ok"

    def wait(self) -> None:
        """Collect git's answers (once); :attr:`ok` tells whether both came."""
        procs, self._procs = self._procs, []
        results = [finish(*proc) for proc in procs]
        if len(results) != 2 or any(code != 0 for code, _ in results):
            return
        (_, status_out), (_, tree_out) = results
        records = status_out.split(b"\0")
        i = 0
        while i < len(records):
            rec = records[i]
            i += 1
            if len(rec) < 4:
                continue
            self.dirty.append(os.fsdecode(rec[3:]))
            if rec[:1] in (b"R", b"C"):
                i += 1  # the original name of a rename or copy follows
        for rec in tree_out.split(b"\0"):
            meta, _, path = rec.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == b"tree":
                self.trees[os.fsdecode(path)] = parts[2].decode()
        self.ok = True

    def clean_tree(self, path: str) -> str | None:
        """The committed tree id of `path` when git reports nothing changed under it."""
        if not self.ok:
            return None
        full = self._base + path.rstrip("/")
        prefix = full + "/"
        if any(d == full or d.startswith(prefix) for d in self.dirty):
            return None
        return self.trees.get(path)
