"""`forkman check`: do the vendored trees still match the lock? (fast, offline)

For each fork the vendored tree is hashed (re-reading only files whose stat
signature changed, see :class:`forkman.store.treehash.StatCache`) and compared with
the lock. A fork that differs is explained file by file against the cached
manifest of its last recorded state: modified, added, deleted, renamed,
mode changed, symlink changed. Files an installer left in a project-layout
fork's ``build/`` or ``*.egg-info/`` (untracked, not recorded) are reported
as installer leftovers, to remove rather than record; recorded files git
ignores and does not track are reported too (a fresh clone would lack them).
Patch files are checked against their recorded hashes, the lock against its
canonical form (a hand edit shows), and the vendor directory for trees that
no lock entry claims.

This module imports only the standard library and forkman's lock/tree code,
so that a pre-commit hook pays no start-up cost for the rest of forkman.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import LockError
from ..model.lock import (
    LOCK_NAME,
    Lock,
    LockEntry,
    dump_lock,
    load_lock_data,
    lock_from_data,
    parse_lock,
)
from ..store.treehash import (
    StatCache,
    TreeEntry,
    bytes_digest,
    file_digest,
    hash_manifest,
    scan_tree,
)


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
        forks = sorted({f.fork for f in self.findings if f.fork and f.kind in _TREE_KINDS})
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


_TREE_KINDS = frozenset(
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


def members_of(entry: LockEntry) -> list[str] | None:
    """For a namespace-layout fork, the top-level names it owns under its path.

    None for every other layout: a fork of the project layout owns its whole
    path, whatever tables its lock entry carries.
    """
    if entry.layout != "namespace":
        return None
    ns = entry.sections.get("namespace")
    if isinstance(ns, dict) and isinstance(ns.get("members"), list):
        return [str(m) for m in ns["members"]]
    return None


def other_modules_of(entry: LockEntry) -> list[str] | None:
    """For a namespace-layout fork, the other forks' modules its imports were rewritten for."""
    ns = entry.sections.get("namespace")
    if entry.layout != "namespace" or not isinstance(ns, dict):
        return None
    transform = ns.get("transform")
    others = transform.get("other-modules", []) if isinstance(transform, dict) else []
    return sorted(str(m) for m in others)


def scan_fork(
    root: Path, entry: LockEntry, cache: StatCache | None
) -> tuple[dict[str, TreeEntry], list[str]]:
    """Manifest of a fork's vendored tree (only its members for the namespace layout)."""
    base = root / entry.path
    members = members_of(entry)
    if members is None:
        manifest, special = scan_tree(base, cache)
        return manifest, [s.path for s in special]
    manifest = {}
    special_paths: list[str] = []
    for member in members:
        path = base / member
        if path.is_dir() and not path.is_symlink():
            sub, special = scan_tree(path, cache)
            for rel, e in sub.items():
                manifest[f"{member}/{rel}"] = TreeEntry(f"{member}/{rel}", e.kind, e.digest)
            special_paths += [f"{member}/{s.path}" for s in special]
        elif path.is_symlink():
            target = os.fsencode(os.readlink(path))
            manifest[member] = TreeEntry(member, "l", bytes_digest(target))
        elif path.exists():
            st = path.stat()
            digest = cache.digest(str(path), st) if cache else file_digest(path)
            manifest[member] = TreeEntry(member, "x" if st.st_mode & 0o111 else "f", digest)
    return manifest, special_paths


def manifest_path(state_dir: Path, name: str) -> Path:
    """Where the manifest of fork `name`'s last recorded vendored tree is cached."""
    return state_dir / "forks" / f"{name}.manifest"


def save_manifest(state_dir: Path, name: str, manifest: dict[str, TreeEntry]) -> None:
    """Cache the manifest of fork `name`'s recorded vendored tree (for per-file reports).

    JSON: it is only believed when it hashes to the lock's tree (see :func:`check_fork`).
    """
    from ..core.fs import atomic_write_bytes

    data = {p: [e.kind, e.digest] for p, e in manifest.items()}
    atomic_write_bytes(manifest_path(state_dir, name), json.dumps(data).encode())


def load_manifest(state_dir: Path, name: str) -> dict[str, tuple[str, str]] | None:
    """The cached manifest of fork `name`, or None (the caller checks it against the lock)."""
    path = manifest_path(state_dir, name)
    try:
        if path.is_symlink():
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    out: dict[str, tuple[str, str]] = {}
    for p, value in data.items():
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            return None
        out[p] = (value[0], value[1])
    return out


def _diff(
    name: str, prefix: str, expected: dict[str, tuple[str, str]], actual: dict[str, TreeEntry]
) -> list[Finding]:
    findings: list[Finding] = []
    added = {p: e for p, e in actual.items() if p not in expected}
    deleted = {p: v for p, v in expected.items() if p not in actual}
    by_digest: dict[str, str] = {}
    for p, e in added.items():
        by_digest.setdefault(e.digest, p)
    for p, (_kind, digest) in sorted(deleted.items()):
        new = by_digest.pop(digest, None)
        if new is not None:
            added.pop(new)
            findings.append(Finding(FindingKind.RENAMED, name, prefix + p, f"now {prefix + new}"))
        else:
            findings.append(Finding(FindingKind.DELETED, name, prefix + p))
    for p in sorted(added):
        findings.append(Finding(FindingKind.ADDED, name, prefix + p))
    for p, e in sorted(actual.items()):
        want = expected.get(p)
        if want is None:
            continue
        kind, digest = want
        if (kind == "l") != (e.kind == "l"):
            findings.append(Finding(FindingKind.SYMLINK, name, prefix + p, "file <-> symlink"))
        elif digest != e.digest:
            what = FindingKind.SYMLINK if e.kind == "l" else FindingKind.MODIFIED
            findings.append(Finding(what, name, prefix + p))
        elif kind != e.kind:
            findings.append(
                Finding(
                    FindingKind.MODE,
                    name,
                    prefix + p,
                    "executable bit " + ("added" if e.kind == "x" else "removed"),
                )
            )
    return findings


def _paused(state_dir: Path, name: str) -> dict[str, object] | None:
    """What a sync of fork `name` paused at a conflict recorded in its journal, or None.

    Only a journal of this fork, read without following a symlink, counts; its
    members must be plain names (recovery validates the rest before acting).
    """
    journal = state_dir / "txn" / f"{name}.json"
    try:
        if journal.is_symlink():
            return None
        data = json.loads(journal.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fork") != name:
        return None
    paused = data.get("paused")
    if not isinstance(paused, dict):
        return None
    members = paused.get("members")
    if members is not None and not (
        isinstance(members, list)
        and all(isinstance(m, str) and m and "/" not in m and m not in (".", "..") for m in members)
    ):
        return None
    return paused


def paused_sync(state_dir: Path, name: str) -> str | None:
    """The version a sync of fork `name` paused at a conflict is moving to, or None."""
    paused = _paused(state_dir, name)
    return None if paused is None else str(paused.get("version", "?"))


def check_fork(
    root: Path,
    state_dir: Path,
    entry: LockEntry,
    cache: StatCache | None,
    ignored: Collection[str] = (),
) -> list[Finding]:
    """Findings for one fork's vendored tree.

    `ignored`: the fork's files (relative to its path) that the consumer's git
    ignores and does not track (see :func:`ignored_untracked`).
    """
    version = paused_sync(state_dir, entry.name)
    if version is not None:
        return [
            Finding(
                FindingKind.SYNC_PAUSED,
                entry.name,
                entry.path,
                f"the sync to {version} waits for a conflict resolution",
            )
        ]
    base = root / entry.path
    if not base.is_dir():
        return [
            Finding(
                FindingKind.MISSING_FORK,
                entry.name,
                entry.path,
                "the lock has an entry but the tree is gone",
            )
        ]
    manifest, special = scan_fork(root, entry, cache)
    if not special and not ignored and hash_manifest(manifest.values()) == entry.vendored_tree:
        return []
    return explain_tree(
        root, entry, manifest, recorded_manifest(state_dir, entry), special=special, ignored=ignored
    )


def recorded_manifest(state_dir: Path, entry: LockEntry) -> dict[str, tuple[str, str]] | None:
    """The cached manifest of `entry`'s recorded tree, if it hashes to the lock's tree."""
    expected = load_manifest(state_dir, entry.name)
    if (
        expected is not None
        and hash_manifest(TreeEntry(p, k, d) for p, (k, d) in expected.items())
        == entry.vendored_tree
    ):
        return expected
    return None


def explain_tree(
    root: Path,
    entry: LockEntry,
    manifest: dict[str, TreeEntry],
    expected: dict[str, tuple[str, str]] | None,
    *,
    special: Sequence[str] = (),
    ignored: Collection[str] = (),
) -> list[Finding]:
    """Findings for fork `entry`'s scanned tree `manifest` against its recorded tree.

    `expected`: the recorded tree's manifest, proven to hash to the lock's
    vendored tree (None when it is not known: then a tree that differs is one
    "tree changed" finding). Installer leftovers (:func:`installer_leftovers`)
    are findings of their own and left out of the comparison; every other
    file is compared. `ignored`: files of the fork the consumer's git ignores
    and does not track; each that is part of the recorded tree is a finding
    (a commit leaves it out, so a fresh clone does not match the lock).
    """
    name, prefix = entry.name, entry.path + "/"
    findings = [Finding(FindingKind.SPECIAL, name, prefix + p) for p in special]
    left = installer_leftovers(root, entry, manifest, expected)
    judged = {p: e for p, e in manifest.items() if p not in left} if left else manifest
    matches = hash_manifest(judged.values()) == entry.vendored_tree
    if not matches:
        if expected is not None:
            findings += _diff(name, prefix, expected, judged)
        if not any(f.kind in _TREE_KINDS for f in findings):
            findings.append(
                Finding(
                    FindingKind.TREE_CHANGED,
                    name,
                    entry.path,
                    f"differs from the lock; `forkman verify {name}` lists the files",
                )
            )
    findings += _leftover_findings(name, prefix, left, judged, expected)
    recorded: Collection[str] = judged if matches else (expected or ())
    findings += [
        Finding(
            FindingKind.IGNORED,
            name,
            prefix + p,
            "part of the fork, but git ignores it and does not track it: a fresh clone lacks it",
        )
        for p in sorted(ignored)
        if p in recorded
    ]
    return findings


def fork_tree_findings(root: Path, state_dir: Path, entry: LockEntry) -> list[Finding]:
    """What differs in fork `entry`'s tree on disk (no bytecode, no patch files)."""
    manifest, special = scan_fork(root, entry, None)
    if not special and hash_manifest(manifest.values()) == entry.vendored_tree:
        return []
    return explain_tree(root, entry, manifest, recorded_manifest(state_dir, entry), special=special)


# -- installer leftovers and files git ignores ------------------------------------------

_HINT_PATHS = 10


def _egg_info(name: str) -> bool:
    return name.endswith(".egg-info") and len(name) > len(".egg-info")


def leftover_folder(rel: str) -> str | None:
    """The installer-output folder a path of a fork lies in (relative to the fork), or None.

    pip and setuptools, run on a fork's folder, write ``build/`` at its root and
    ``NAME.egg-info/`` at its root or under ``src/``. Only paths strictly inside
    such a folder count (scanning never follows a symlink, so the folder is a
    real directory); a file or a symlink of that name does not.
    """
    parts = rel.split("/")
    if len(parts) >= 2 and (parts[0] == "build" or _egg_info(parts[0])):
        return parts[0]
    if len(parts) >= 3 and parts[0] == "src" and _egg_info(parts[1]):
        return f"src/{parts[1]}"
    return None


def installer_leftovers(
    root: Path,
    entry: LockEntry,
    manifest: Mapping[str, TreeEntry],
    expected: Mapping[str, tuple[str, str]] | None,
) -> set[str]:
    """The files of `manifest` that an installer left in a project-layout fork's folder.

    A leftover is a file inside a :func:`leftover_folder` that is not part of
    the recorded tree and that the consumer's git does not track (a committed
    file is an edit, whatever its folder). Without the recorded manifest
    (`expected` None, a fresh clone) they are leftovers only when the rest of
    the tree hashes to the lock's vendored tree, which proves none of them is
    recorded. When git cannot answer, nothing is a leftover.
    """
    if members_of(entry) is not None:
        return set()
    candidates = {
        p for p in manifest if leftover_folder(p) and (expected is None or p not in expected)
    }
    if not candidates:
        return set()
    prefix = entry.path + "/"
    folders = sorted({prefix + str(leftover_folder(p)) for p in candidates})
    tracked = _git_paths(root, ["ls-files", "-z", "--cached", "--", *folders])
    if tracked is None:
        return set()
    known = set(tracked)
    left = {p for p in candidates if prefix + p not in known}
    if expected is None and left:
        rest = [e for p, e in manifest.items() if p not in left]
        if hash_manifest(rest) != entry.vendored_tree:
            return set()
    return left


def _leftover_findings(
    name: str,
    prefix: str,
    left: Collection[str],
    judged: Mapping[str, TreeEntry],
    expected: Mapping[str, tuple[str, str]] | None,
) -> list[Finding]:
    """One finding per leftover folder that holds nothing else, else one per leftover file."""
    folders: dict[str, list[str]] = {}
    for p in left:
        folders.setdefault(str(leftover_folder(p)), []).append(p)
    kept = {leftover_folder(p) for p in (*judged, *(expected or ()))}
    findings = []
    for folder, files in sorted(folders.items()):
        if folder in kept:
            findings += [
                Finding(
                    FindingKind.LEFTOVER,
                    name,
                    prefix + p,
                    "an installer wrote it; not part of the fork",
                )
                for p in sorted(files)
            ]
        else:
            findings.append(
                Finding(
                    FindingKind.LEFTOVER,
                    name,
                    f"{prefix}{folder}/",
                    f"{len(files)} file(s) an installer wrote; none is part of the fork",
                )
            )
    return findings


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


def _git_paths(root: Path, args: Sequence[str]) -> list[str] | None:
    """The NUL-separated paths `git ARGS` prints in `root` (pathspecs literal), or None."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_LITERAL_PATHSPECS"] = "1"
    try:
        proc = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, check=False)
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    return [os.fsdecode(p) for p in proc.stdout.split(b"\0") if p]


def ignored_untracked(root: Path, entries: Sequence[LockEntry]) -> dict[str, set[str]]:
    """Per fork, its files (relative to its path) that git ignores and does not track.

    Bytecode caches are left out (they are judged by :func:`bytecode_findings`).
    Outside a git work tree (or when git cannot answer) there is nothing to say.
    """
    folders = sorted({e.path for e in entries})
    if not folders:
        return {}
    found = _git_paths(
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


def _check_patches(root: Path, entry: LockEntry, patches_dir: str) -> list[Finding]:
    """Findings for one fork's patch files."""
    findings: list[Finding] = []
    recorded = set()
    for patch in entry.patches:
        recorded.add(patch.file)
        path = root / patch.file
        if not path.is_file():
            findings.append(Finding(FindingKind.PATCH_MISSING, entry.name, patch.file))
        elif file_digest(path) != patch.sha256:
            findings.append(Finding(FindingKind.PATCH_EDITED, entry.name, patch.file))
    series_dir = root / patches_dir / entry.name
    if series_dir.is_dir():
        for path in sorted(series_dir.glob("*.patch")):
            rel = path.relative_to(root).as_posix()
            if rel not in recorded:
                findings.append(Finding(FindingKind.PATCH_UNRECORDED, entry.name, rel))
    return findings


def lock_fits_config(
    root: Path,
    lock: Lock,
    *,
    vendor_dir: str,
    patches_dir: str,
    destination: str | None,
    protected: Sequence[str] = (),
) -> None:
    """Refuse lock paths the configuration does not put there (LockError naming the fork).

    A project-layout fork lives directly in the vendor folder; a namespace fork
    in the configured destination; every patch file in ``patches-dir/NAME/``;
    none of them behind a symlink that leads out of the project. A protected
    name of the namespace folder is never a fork's member (ConfigError).
    """
    from ..core.errors import ConfigError
    from ..core.paths import is_within, require_inside, require_no_symlink

    for entry in lock:
        where = f"{LOCK_NAME}: [forks.{entry.name}]"
        if entry.layout == "namespace":
            if destination is None or entry.path != destination:
                raise LockError(
                    f"{where} path {entry.path!r} is not the namespace folder "
                    f"([tool.forkman.vendoring] destination = {destination!r})",
                    hint="restore the lock with `git checkout -- forkman.lock`",
                )
            covered = sorted(set(members_of(entry) or ()) & set(protected))
            if covered:
                raise ConfigError(
                    f"[tool.forkman.vendoring].protected-files lists {', '.join(covered)}, "
                    f"which fork {entry.name} owns: protected files never overlap a fork",
                    hint="protected-files names the project's own files in the namespace "
                    "folder; remove the fork's names from it",
                )
        elif entry.path.rpartition("/")[0] != vendor_dir:
            raise LockError(
                f"{where} path {entry.path!r} is not a folder directly in vendor-dir "
                f"({vendor_dir!r})",
                hint="restore the lock with `git checkout -- forkman.lock`",
            )
        require_no_symlink(root, entry.path, f"{where} path", error=LockError)
        series = f"{patches_dir}/{entry.name}"
        for patch in entry.patches:
            if not is_within(patch.file, series) or patch.file == series:
                raise LockError(
                    f"{where} patch file {patch.file!r} is not in its series folder "
                    f"{series}/ (patches-dir = {patches_dir!r})",
                    hint="restore the lock with `git checkout -- forkman.lock`",
                )
            require_inside(root, patch.file, f"{where} patch file", error=LockError)


def unforked(lock: Lock, declared: Sequence[str]) -> list[str]:
    """The `declared` forks (``[tool.forkman.forks.NAME] requirement``) the lock lacks."""
    return sorted(set(declared) - set(lock.forks))


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
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    specs = [f":(glob){f.translate(_GLOB_SPECIAL)}/**/__pycache__/**" for f in folders]
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *specs],
            cwd=root,
            env=env,
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    return [os.fsdecode(p) for p in proc.stdout.split(b"\0") if p]


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


def _load_lock_cached(root: Path, text: str) -> tuple[Lock, bool]:
    """Parse lock `text` (cached by content hash); the lock and whether it is canonical."""
    import hashlib

    from ..model.statetrust import read_cache, write_cache

    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    cache_path = root / ".forkman" / "lock.cache"
    # sealed: only a cache this user's forkman wrote for this file is believed
    cached = read_cache(cache_path, "lock.cache")
    if isinstance(cached, list) and len(cached) == 3 and cached[0] == digest:
        try:
            return lock_from_data(cached[1]), bool(cached[2])
        except (LockError, ValueError, TypeError, KeyError, AttributeError):
            pass
    data = load_lock_data(text)
    lock = lock_from_data(data)
    canonical = dump_lock(lock) == text
    if cache_path.parent.is_dir() and not cache_path.parent.is_symlink():
        write_cache(cache_path, "lock.cache", [digest, data, canonical])
    return lock, canonical


class _GitView:
    """What the consumer's git knows about the fork paths, asked concurrently.

    ``git status`` (limited to the fork paths) says which paths differ from
    HEAD in the index or the work tree, or hold untracked files; ``git
    ls-tree HEAD`` gives the committed tree id of each fork directory. A fork
    whose path git reports clean and whose committed tree id is the one
    already proven (by a full hash) to match its lock entry needs no hashing.
    """

    def __init__(self, root: Path, paths: list[str]) -> None:
        import subprocess

        self.ok = False
        self.dirty: list[str] = []
        self.trees: dict[str, str] = {}
        from .quickcheck import repo_top

        top = repo_top(root)
        # status paths are relative to the repository's top, which may be above `root`
        rel = "." if top is None else os.path.relpath(root.resolve(), top).replace(os.sep, "/")
        self._base = "" if rel == "." else rel + "/"
        if not paths or top is None:
            self._procs: list[subprocess.Popen[bytes]] = []
            return
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
        env["GIT_OPTIONAL_LOCKS"] = "0"
        # One pathspec per top-level folder: git matches every index entry against
        # every pathspec, so a pathspec per fork would cost more than the status itself.
        spec = ["--", *sorted({p.split("/", 1)[0] for p in paths})]
        self._procs = [
            subprocess.Popen(
                ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", *spec],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                ["git", "ls-tree", "-z", "HEAD", "--", *paths],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            ),
        ]

    def wait(self) -> None:
        if not self._procs:
            return
        status_out, _ = self._procs[0].communicate()
        tree_out, _ = self._procs[1].communicate()
        if self._procs[0].returncode != 0 or self._procs[1].returncode != 0:
            return
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


def check(
    root: Path,
    *,
    vendor_dir: str = "vendor",
    patches_dir: str = "patches",
    names: Sequence[str] = (),
    use_cache: bool = True,
    protected: Sequence[str] = (),
    destination: str | None = None,
    declared: Sequence[str] = (),
) -> CheckReport:
    """Compare every fork (or `names`) with forkman.lock under project `root`.

    `protected`: the project's own names in namespace folders (``protected-files``);
    any other name there that no fork owns is a finding. `destination`: the
    namespace folder (``[tool.forkman.vendoring] destination``), examined even
    before any namespace fork exists. `declared`: the forks the configuration
    declares (``[tool.forkman.forks.NAME] requirement``); one the lock lacks is
    a finding. The paths are taken as the configuration validated them
    (:func:`forkman.core.paths.config_dirs`); lock paths are checked against them.
    """
    report = CheckReport()
    lock_path = root / LOCK_NAME
    try:
        text = lock_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    lock = Lock()
    if text is not None:
        try:
            lock, canonical = (
                _load_lock_cached(root, text) if use_cache else (parse_lock(text), None)
            )
            if canonical is None:
                canonical = dump_lock(lock) == text
        except LockError as exc:
            report.findings.append(Finding(FindingKind.LOCK_INVALID, None, LOCK_NAME, exc.message))
            return report
        if not canonical:
            report.findings.append(
                Finding(FindingKind.LOCK_EDITED, None, LOCK_NAME, "not as forkman wrote it")
            )
        try:
            lock_fits_config(
                root,
                lock,
                vendor_dir=vendor_dir,
                patches_dir=patches_dir,
                destination=destination,
                protected=protected,
            )
        except LockError as exc:
            report.findings.append(Finding(FindingKind.LOCK_INVALID, None, LOCK_NAME, exc.message))
            return report
    state_dir = root / ".forkman"
    from ..model.statetrust import read_cache, require_trusted_state, write_cache

    require_trusted_state(root)  # state a commit supplied is refused, never read
    warm = use_cache and state_dir.is_dir()
    wanted = set(names)
    unknown = wanted - set(lock.forks)
    if unknown:
        from ..core.errors import NotFound

        raise NotFound(f"no fork named {', '.join(sorted(unknown))} in forkman.lock")
    entries = [e for e in lock if not wanted or e.name in wanted]
    known_trees: dict[str, str] = {}
    if warm:
        loaded = read_cache(state_dir / "gittrees", "gittrees")
        if isinstance(loaded, dict):
            known_trees = {str(k): str(v) for k, v in loaded.items()}
    fast_paths = [e.path for e in entries if members_of(e) is None]
    view = _GitView(root, fast_paths if warm else [])
    report.forks_checked = len(entries)
    if not wanted:
        report.findings += [
            Finding(
                FindingKind.NOT_FORKED,
                name,
                name,
                f"declared in [tool.forkman.forks.{name}] but not in {LOCK_NAME}",
            )
            for name in unforked(lock, declared)
        ]
        report.findings += _untracked_forks(root, lock, vendor_dir)
        report.findings += _unowned_names(root, state_dir, lock, protected, destination)
    for entry in entries:
        report.findings += _check_patches(root, entry, patches_dir)
    bytecode = bytecode_findings(root, entries)
    report.findings += bytecode
    ignored = ignored_untracked(root, entries)
    view.wait()
    cache: StatCache | None = None
    learned = False
    for entry in entries:
        committed = view.clean_tree(entry.path) if members_of(entry) is None else None
        # files git ignores are not in its status: a fork holding any is hashed
        theirs = ignored.get(entry.name, set())
        if (
            committed is not None
            and not theirs
            and known_trees.get(entry.vendored_tree) == committed
        ):
            continue
        if cache is None and warm:
            cache = StatCache(state_dir / "statcache")
        found = check_fork(root, state_dir, entry, cache, theirs)
        report.findings += found
        if committed is not None and not found:
            known_trees[entry.vendored_tree] = committed
            learned = True
    if cache is not None:
        cache.save()
    if learned and not bytecode:
        write_cache(state_dir / "gittrees", "gittrees", known_trees)
    report.findings.sort(key=lambda f: (f.fork or "", f.path, f.kind.value))
    if warm and not wanted:
        from .quickcheck import forget_dirs, record_dirs

        if report.ok and view.ok:
            record_dirs(root, vendor_dir)
        else:
            forget_dirs(root)
    return report


_PACKAGE_FILES = frozenset({"__init__.py", "__pycache__"})


def _paused_members(state_dir: Path, name: str) -> list[str]:
    """The members a sync of namespace fork `name` paused at a conflict put in place."""
    members = (_paused(state_dir, name) or {}).get("members")
    return [str(m) for m in members] if isinstance(members, list) else []


def _unowned_names(
    root: Path,
    state_dir: Path,
    lock: Lock,
    protected: Sequence[str],
    destination: str | None = None,
) -> list[Finding]:
    """Names in namespace folders that no fork owns and the project does not protect.

    The folder's ``__init__.py`` is the project's (it makes the namespace a package).
    The configured `destination` is a namespace folder even before any fork owns a
    name in it (a project migrated from the vendoring tool, not yet synced).
    """
    owned: dict[str, set[str]] = {}
    if destination is not None:
        owned[destination] = set()
    for entry in lock:
        members = members_of(entry)
        if members is not None:
            names = owned.setdefault(entry.path, set())
            names.update(members, _paused_members(state_dir, entry.name))
    findings = []
    for folder, names in sorted(owned.items()):
        try:
            children = sorted(os.listdir(root / folder))
        except OSError:
            continue
        for child in children:
            if child not in names and child not in protected and child not in _PACKAGE_FILES:
                findings.append(Finding(FindingKind.UNOWNED, None, f"{folder}/{child}"))
    return findings


def _untracked_forks(root: Path, lock: Lock, vendor_dir: str) -> list[Finding]:
    findings = []
    claimed = {entry.path for entry in lock}
    vendor = root / vendor_dir
    if vendor.is_dir():
        for child in sorted(vendor.iterdir()):
            rel = child.relative_to(root).as_posix()
            if (
                child.is_dir()
                and not child.name.startswith(".")
                and rel not in claimed
                and not any(c.startswith(rel + "/") for c in claimed)
            ):
                findings.append(Finding(FindingKind.UNTRACKED_FORK, None, rel))
    return findings
