"""The git history of one fork.

Each fork has a bare repository under ``.forkman/forks/<name>.git``:

- branch ``upstream``: one commit per imported upstream release (the pristine
  tree as unpacked), tagged ``upstream/<version>``;
- branch ``patched``: the vendored tree: a base commit (the upstream tree, or
  its transformation for the namespace layout) whose parent is the upstream
  commit, then one commit per patch of the series.

Commits are built with plumbing and a private index file, never touching
anyone's HEAD or work tree, so a crash can at worst leave unreferenced
objects. The repository is derived state: it can be deleted and rebuilt from
the lock, the download cache and the patch files (see :func:`rebuild`).

Every git invocation goes through :func:`forkman.core.git.run` as a
repository forkman keeps (``owned=True``): an environment that ignores the
user's and the system's git configuration, a fixed identity, no hook and no
fsmonitor command whatever the repository's own config says (it lives in the
state folder, see :mod:`forkman.model.statetrust`), and attributes that
disable end-of-line conversion and filters, so what is committed is byte for
byte what was unpacked.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..core import git as _git
from ..core.errors import ForkmanError

# Highest-precedence attributes: store and check out bytes exactly as they are.
_ATTRIBUTES = "* -text -filter -ident -working-tree-encoding\n"
# Bytecode caches are never part of a tree (as in forkman's tree hashes): running
# the vendored code writes them, which must not read as an edit.
_NO_BYTECODE = ":(exclude,glob)**/__pycache__/**"
_CONFIG = f"""[core]
\tautocrlf = false
\tfilemode = true
\tsymlinks = true
\texcludesFile = {os.devnull}
\tquotePath = false
[gc]
\tauto = 0
"""


class HistoryError(ForkmanError):
    """The fork's git history is missing or damaged."""


class ForkHistory:
    """A fork's bare repository."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    # -- plumbing ---------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the repository exists."""
        return (self.git_dir / "HEAD").is_file()

    def git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> str:
        """Run a git command against this repository and return its stdout.

        A failure is a :class:`HistoryError` (with `check`), else an empty output.
        """
        return self._run(*args, env=env, cwd=cwd, check=check).decode("utf-8", "surrogateescape")

    def _run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
        input: bytes | None = None,
    ) -> bytes:
        proc = _git.run(
            *args,
            cwd=cwd,
            owned=True,
            env={"GIT_DIR": str(self.git_dir), **(env or {})},
            input=input,
            check=False,
        )
        if proc.returncode == 0:
            return proc.stdout
        if not check:
            return b""
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise HistoryError(f"git {' '.join(args[:2])} failed in {self.git_dir.name}: {stderr}")

    @classmethod
    def create(cls, git_dir: Path) -> ForkHistory:
        """Initialise an empty bare repository at `git_dir`."""
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        history = cls(git_dir)
        _git.run("init", "-q", "--bare", "-b", "patched", str(git_dir), owned=True)
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "attributes").write_text(_ATTRIBUTES)
        with open(git_dir / "config", "a", encoding="utf-8") as config:
            config.write(_CONFIG)  # what `git config` would add, without six processes
        return history

    def rev(self, ref: str) -> str | None:
        """The commit id `ref` points at, or None."""
        out = self.git("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False).strip()
        return out or None

    def update_ref(self, ref: str, new: str | None, old: str | None = None) -> None:
        """Point `ref` at `new` (delete it when None), atomically, checking `old`."""
        if new is None:
            if self.rev(ref) is not None:
                self.git("update-ref", "-d", ref)
            return
        args = ["update-ref", ref, new]
        if old is not None:
            args.append(old)
        self.git(*args)

    def remove_stale_ref_locks(self) -> list[str]:
        """Remove the ``*.lock`` files a killed git left beside refs; the refs they guarded.

        Only for recovery, when no live process can be writing this repository
        (the caller holds the fork's owner lock and the writer is dead): git
        refuses to move a ref while its lock file exists.
        """
        removed = []
        candidates = [self.git_dir / "packed-refs.lock", self.git_dir / "HEAD.lock"]
        refs = self.git_dir / "refs"
        if refs.is_dir():
            candidates += sorted(refs.rglob("*.lock"))
        for path in candidates:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path.relative_to(self.git_dir).as_posix().removesuffix(".lock"))
        return removed

    def update_refs(self, refs: Mapping[str, str | None]) -> None:
        """Move (None: delete) several refs in one git ref transaction: all or none."""
        lines = "".join(
            f"update {ref} {new}\n" if new else f"delete {ref}\n" for ref, new in refs.items()
        )
        self._run("update-ref", "--stdin", input=lines.encode())

    # -- trees and commits --------------------------------------------------------
    def snapshot(self, tree_dir: Path, members: Sequence[str] | None = None) -> str:
        """Write the content of `tree_dir` (or only `members` of it) as a tree; its id.

        ``__pycache__`` folders are left out, as forkman's tree hashes leave them out.
        """
        fd, index = tempfile.mkstemp(prefix="index-", dir=self.git_dir)
        os.close(fd)
        os.unlink(index)
        env = {"GIT_INDEX_FILE": index, "GIT_WORK_TREE": str(tree_dir)}
        try:
            paths = list(members) if members is not None else ["."]
            if paths:
                self.git("add", "-A", "-f", "--", *paths, _NO_BYTECODE, env=env, cwd=tree_dir)
            return self.git("write-tree", env=env).strip()
        finally:
            if os.path.exists(index):
                os.unlink(index)

    def commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        *,
        author: str | None = None,
        date: str | None = None,
    ) -> str:
        """Create a commit object (no ref is moved)."""
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        env: dict[str, str] = {}
        if author:
            name, _, email = author.partition("<")
            env["GIT_AUTHOR_NAME"] = name.strip() or "forkman"
            env["GIT_AUTHOR_EMAIL"] = email.rstrip(">").strip() or "forkman@localhost"
        if date:
            env["GIT_AUTHOR_DATE"] = date
            env["GIT_COMMITTER_DATE"] = date
        args += ["-m", message]
        return self.git(*args, env=env).strip()

    def tree_of(self, rev: str) -> str:
        """The tree id of commit `rev`."""
        return self.git("rev-parse", f"{rev}^{{tree}}").strip()

    def checkout(self, rev: str, dest: Path, paths: Sequence[str] | None = None) -> None:
        """Write the tree of `rev` (or only `paths` of it) into the new or empty folder `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        fd, index = tempfile.mkstemp(prefix="index-", dir=self.git_dir)
        os.close(fd)
        os.unlink(index)
        env = {"GIT_INDEX_FILE": index, "GIT_WORK_TREE": str(dest)}
        try:
            self.git("read-tree", rev, env=env)
            if paths is None:
                self.git("checkout-index", "-a", "-f", env=env, cwd=dest)
            elif paths:
                self.git("checkout-index", "-f", "--", *paths, env=env, cwd=dest)
        finally:
            if os.path.exists(index):
                os.unlink(index)

    def diff(self, old: str, new: str, *, paths: Sequence[str] = ()) -> str:
        """A git diff between two trees or commits (binary-safe, full index)."""
        args = ["diff", "--binary", "--full-index", "--no-renames", "--no-color", old, new]
        if paths:
            args += ["--", *paths]
        return self.git(*args)

    # -- the fork's two lines -----------------------------------------------------
    def import_upstream(self, tree_dir: Path, version: str, description: str) -> str:
        """Commit a pristine upstream tree on ``upstream`` and tag it; the commit id."""
        tree = self.snapshot(tree_dir)
        parent = self.rev("refs/heads/upstream")
        parents = [parent] if parent else []
        commit = self.commit(tree, parents, f"Import upstream {version}\n\n{description}\n")
        self.update_refs({"refs/heads/upstream": commit, f"refs/tags/upstream/{version}": commit})
        return commit

    def upstream_versions(self) -> list[str]:
        """Versions imported so far, oldest first."""
        out = self.git(
            "for-each-ref",
            "--sort=creatordate",
            "--format=%(refname:strip=3)",
            "refs/tags/upstream/",
        )
        return [line for line in out.splitlines() if line]

    def log(self, base: str, tip: str) -> list[str]:
        """Commit ids from `base` (exclusive) to `tip`, oldest first."""
        out = self.git("rev-list", "--reverse", f"{base}..{tip}")
        return out.split()
