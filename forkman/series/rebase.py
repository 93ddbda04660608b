"""Carry patch commits onto another commit with real three-way merges (git cherry-pick).

A :class:`SeriesRebase` opens a temporary linked worktree of a fork's bare
history under ``.forkman/tmp/`` and cherry-picks one patch commit at a time
(``git cherry-pick --no-commit``: git's own merge machinery, the patch's
parent as merge base). Each pick ends one of three ways:

- clean: a new commit with the patch's message and author;
- empty: upstream already contains the change (the merge result equals the
  commit it was picked onto), so the patch is absorbed;
- conflict: git left standard conflict markers in the worktree; the caller
  copies the worktree out and stops.

The worktree is removed (and its metadata pruned) when the rebase closes, so
nothing of it outlives the operation; after a crash, the next rebase forgets
the dead one's leftovers first (a git killed while adding a worktree leaves
half-written metadata that makes every later ``git worktree add`` fail).
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..store.history import ForkHistory


class PickKind(enum.Enum):
    """How carrying one patch went."""

    CLEAN = "clean"
    """Merged; a new commit was made."""
    EMPTY = "empty"
    """The merge changed nothing: upstream already has the patch."""
    CONFLICT = "conflict"
    """Git left conflict markers."""


@dataclass(frozen=True)
class PickOutcome:
    """The result of carrying one patch commit."""

    kind: PickKind
    """Clean, empty or conflict."""
    commit: str | None
    """The new commit (clean picks only)."""
    conflicts: tuple[str, ...] = ()
    """Paths (relative to the fork's root) with conflicts."""


@dataclass(frozen=True)
class CommitInfo:
    """Author, date and message of a commit."""

    author: str
    """``Name <email>``."""
    date: str
    """The author date (ISO 8601)."""
    message: str
    """The full message."""


def commit_info(history: ForkHistory, rev: str) -> CommitInfo:
    """Author, author date and message of `rev`."""
    out = history.git("log", "-1", "--format=%an <%ae>%x00%aI%x00%B", rev)
    author, date, message = out.split("\0", 2)
    return CommitInfo(author, date, message.rstrip("\n") + "\n")


def forget_dead_worktrees(history: ForkHistory) -> list[str]:
    """Remove the metadata of worktrees that are gone or were never finished; their names.

    A live worktree has its ``gitdir``, ``commondir`` and ``HEAD`` files and a
    ``.git`` file where ``gitdir`` points; anything less was left by a process
    that died (a fork's rebases run one at a time, under its actor).
    """
    admin = history.git_dir / "worktrees"
    if not admin.is_dir():
        return []
    removed = []
    for entry in sorted(admin.iterdir()):
        try:
            target = Path((entry / "gitdir").read_text().strip())
            alive = (
                target.is_file()
                and (entry / "commondir").read_text().strip() != ""
                and (entry / "HEAD").read_text().strip() != ""
            )
        except OSError:
            alive = False
        if not alive:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


class SeriesRebase:
    """A temporary worktree in which patch commits are cherry-picked one by one."""

    def __init__(self, history: ForkHistory, tmp_parent: Path, onto: str) -> None:
        self.history = history
        tmp_parent.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="rebase-", dir=tmp_parent)) / "tree"
        self.head = onto
        forget_dead_worktrees(history)
        self._head_tree: str | None = None
        history.git("worktree", "add", "-q", "--detach", str(self.workdir), onto)
        pointer = (self.workdir / ".git").read_text().strip()
        self._env = {
            "GIT_DIR": pointer.removeprefix("gitdir:").strip(),
            "GIT_WORK_TREE": str(self.workdir),
        }

    def __enter__(self) -> SeriesRebase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _git(self, *args: str, check: bool = True) -> str:
        return self.history.git(*args, env=self._env, cwd=self.workdir, check=check)

    def pick(self, patch: str, *, message: str | None = None) -> PickOutcome:
        """Cherry-pick `patch` onto the current head (message: override the commit's)."""
        import git as gitpython

        from ..core.git import environment

        cmd = gitpython.Git(str(self.workdir))
        status, _out, _err = cmd.execute(
            ["git", "cherry-pick", "--no-commit", "--no-rerere-autoupdate", patch],
            env=environment(owned=True, extra=self._env),
            with_extended_output=True,
            with_exceptions=False,
        )
        if status != 0:
            unmerged = self._git("diff", "--name-only", "-z", "--diff-filter=U")
            conflicts = tuple(sorted(p for p in unmerged.split("\0") if p))
            if not conflicts:
                raise RuntimeError(f"git cherry-pick failed: {_err}")
            return PickOutcome(PickKind.CONFLICT, None, conflicts)
        tree = self._git("write-tree").strip()
        if self._head_tree is None:
            self._head_tree = self.history.tree_of(self.head)
        if tree == self._head_tree:
            return PickOutcome(PickKind.EMPTY, None)
        info = commit_info(self.history, patch)
        commit = self.history.commit(
            tree, [self.head], message or info.message, author=info.author, date=info.date
        )
        self.advance(commit, tree)
        return PickOutcome(PickKind.CLEAN, commit)

    def advance(self, commit: str, tree: str | None = None) -> None:
        """Move the worktree's head to `commit` (whose tree is what the index holds)."""
        self._git("update-ref", "--no-deref", "HEAD", commit)
        self.head = commit
        self._head_tree = tree

    def export(self, dest: Path) -> None:
        """Copy the worktree's files (conflict markers included) to `dest`."""
        shutil.copytree(
            self.workdir,
            dest,
            symlinks=True,
            ignore=lambda d, names: [".git"] if Path(d) == self.workdir else [],
        )

    def take(self, dest: Path) -> None:
        """Move the worktree's files to `dest` (the worktree is finished with)."""
        (self.workdir / ".git").unlink()
        os.replace(self.workdir, dest)

    def close(self) -> None:
        """Remove the worktree and forget it."""
        if (self.workdir / ".git").exists():
            self._git("cherry-pick", "--quit", check=False)
        shutil.rmtree(self.workdir.parent, ignore_errors=True)
        self.history.git("worktree", "prune", check=False)
