"""What `forkman check` reports: findings, their kinds, and the hints that go with them."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..model.lock import LOCK_NAME


class FindingKind(enum.Enum):
    """What kind of unrecorded difference a finding is."""

    MODIFIED = "modified"
    ADDED = "added"
    DELETED = "deleted"
    RENAMED = "renamed"
    MODE = "mode changed"
    SYMLINK = "symlink changed"
    SPECIAL = "special file"
    TREE_CHANGED = "tree changed"
    MISSING_FORK = "missing fork"
    UNTRACKED_FORK = "untracked fork"
    UNOWNED = "owned by no fork"
    PATCH_EDITED = "patch edited"
    PATCH_MISSING = "patch missing"
    PATCH_UNRECORDED = "patch unrecorded"
    LOCK_EDITED = "lock edited"
    LOCK_INVALID = "lock invalid"
    SYNC_PAUSED = "sync paused at a conflict"
    BYTECODE = "bytecode"
    NOT_FORKED = "not forked"
    LEFTOVER = "installer leftover"
    IGNORED = "ignored by git"


@dataclass(frozen=True)
class Finding:
    """One unrecorded difference."""

    kind: FindingKind
    """What is wrong."""
    fork: str | None
    """The fork concerned (None for project-wide findings)."""
    path: str
    """The file concerned, relative to the project root."""
    detail: str = ""
    """Extra detail (e.g. the new name of a renamed file)."""

    def message(self) -> str:
        """One line for humans."""
        text = f"{self.kind.value}: {self.path}"
        if self.detail:
            text += f" ({self.detail})"
        return text


@dataclass
class CheckReport:
    """The outcome of a check."""

    findings: list[Finding] = field(default_factory=list)
    """Everything that differs from the lock."""
    forks_checked: int = 0
    """How many forks were looked at."""

    @property
    def ok(self) -> bool:
        """True when nothing differs."""
        return not self.findings

    def hints(self) -> list[str]:
        """What to run to record or undo the findings."""
        hints: list[str] = []
        forks = sorted({f.fork for f in self.findings if f.fork and f.kind in TREE_KINDS})
        for name in forks:
            hints.append(
                f"{name}: record the edits as a patch with `forkman patch {name} -m MESSAGE`, "
                f"or discard them with `forkman restore {name}`"
            )
        kinds = {f.kind for f in self.findings}
        if kinds & {
            FindingKind.PATCH_EDITED,
            FindingKind.PATCH_MISSING,
            FindingKind.PATCH_UNRECORDED,
        }:
            hints.append(
                "patch files must change through forkman: `forkman patches NAME` shows the "
                "series; restore the file from git, or import it with `forkman patch NAME --import`"
            )
        if kinds & {FindingKind.LOCK_EDITED, FindingKind.LOCK_INVALID}:
            hints.append(
                "forkman.lock is written by forkman only: restore it with "
                "`git checkout -- forkman.lock`"
            )
        for f in self.findings:
            if f.kind is FindingKind.SYNC_PAUSED:
                hints.append(
                    f"{f.fork}: resolve the conflict markers, then `forkman sync {f.fork} "
                    f"--continue`; or undo the sync with `forkman sync {f.fork} --abort`"
                )
        if FindingKind.MISSING_FORK in kinds:
            hints.append("restore the tree from git, or remove the fork with `forkman unfork NAME`")
        if FindingKind.UNTRACKED_FORK in kinds:
            hints.append("fork it with `forkman fork`, or move the directory out of the vendor dir")
        if FindingKind.NOT_FORKED in kinds:
            hints.append(
                "declared forks are made by `forkman sync --all` (or `forkman sync NAME`); "
                "until then their vendored files are owned by no fork and nothing checks them"
            )
        if FindingKind.UNOWNED in kinds:
            hints.append(
                "a name in a namespace folder belongs to a fork or to the project: remove it, "
                "or list it in protected-files of [tool.forkman.vendoring] (the project's own)"
                + (
                    "; after `forkman migrate vendoring`, `forkman sync --all` makes the forks "
                    "that own them"
                    if FindingKind.NOT_FORKED in kinds
                    else ""
                )
            )
        leftovers = [f for f in self.findings if f.kind is FindingKind.LEFTOVER]
        if leftovers:
            hints.append(leftover_hint([f.path for f in leftovers]))
        ignored = [f.path for f in self.findings if f.kind is FindingKind.IGNORED]
        if ignored:
            hints.append(ignored_hint(ignored))
        if FindingKind.BYTECODE in kinds:
            hints.append(
                "bytecode is never part of a fork: Python may run it instead of the source "
                "beside it. Remove it from git (`git rm -r --cached PATH`) and ignore "
                "__pycache__/ in .gitignore"
            )
        return hints

    def to_json(self) -> str:
        """The report as JSON (for `--format json`)."""
        return json.dumps(
            {
                "ok": self.ok,
                "forks_checked": self.forks_checked,
                "findings": [
                    {**asdict(f), "kind": f.kind.value, "message": f.message()}
                    for f in self.findings
                ],
                "hints": self.hints(),
            },
            indent=2,
        )


TREE_KINDS = frozenset(
    {
        FindingKind.MODIFIED,
        FindingKind.ADDED,
        FindingKind.DELETED,
        FindingKind.RENAMED,
        FindingKind.MODE,
        FindingKind.SYMLINK,
        FindingKind.SPECIAL,
        FindingKind.TREE_CHANGED,
    }
)

_HINT_PATHS = 10


def leftover_hint(paths: Sequence[str]) -> str:
    """What to run to remove installer leftovers (folders end with ``/``)."""
    import shlex

    folders = [shlex.quote(p) for p in paths if p.endswith("/")]
    files = [shlex.quote(p) for p in paths if not p.endswith("/")]
    commands = []
    if folders:
        commands.append("rm -r -- " + " ".join(folders))
    if files:
        commands.append("rm -- " + " ".join(files))
    return (
        "installer leftovers are not edits to record: pip or setuptools wrote them when a "
        "fork was installed from its folder (forks are now installed from an archive, see "
        "`forkman wire`); remove them, from the project root: `" + "` and `".join(commands) + "`"
    )


def ignored_hint(paths: Sequence[str]) -> str:
    """What to run so that git commits the forks' files it ignores."""
    import shlex

    shown = " ".join(shlex.quote(p) for p in paths[:_HINT_PATHS])
    more = len(paths) - _HINT_PATHS
    return (
        "git ignores these files of the forks and does not track them, so a commit leaves "
        f"them out and a fresh clone does not match {LOCK_NAME}: add them with "
        f"`git add -f -- {shown}`"
        + (f" and the {more} more that `forkman check --format json` lists" if more > 0 else "")
    )
