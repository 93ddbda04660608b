"""Content hashes of vendored trees.

A tree hash pins every file of a directory: its relative path, its kind
(regular, executable, symlink) and the sha256 of its content (or of the link
target). Like git, it ignores empty directories and every mode bit but the
executable one, so a tree committed to git and checked out elsewhere hashes
the same. Unlike git's object ids it is sha256 throughout.

    tree hash = "sha256:" + sha256( for each entry, sorted by path bytes:
                                    kind " " sha256hex " " path "\\0" )

with kind one of ``f`` (regular file), ``x`` (executable file), ``l`` (symlink).

Python bytecode caches (``__pycache__`` directories) are never part of a
tree: running the code would otherwise "modify" it. They are judged apart,
through git (:func:`forkman.gate.check.bytecode_findings`): bytecode git tracks or
does not ignore is a finding of ``check`` and fails ``verify``. Nothing else
is left out: dotfiles, files git's ignore rules name, executable bits and
symlinks are all part of the hash.

Hashing every file on every `forkman check` would be slow on large trees, so
:class:`StatCache` remembers each file's digest together with its stat
signature and only re-reads files whose signature changed (the same idea as
git's index). Entries modified within the last seconds are never trusted from
the cache, which closes the "racy clean" window of coarse timestamps.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.fs import file_sha256

_CHUNK = 1 << 20
_RACY_SECONDS = 2.0
_CACHE_FORMAT = 2


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One file of a tree."""

    path: str
    """Path relative to the tree root, with forward slashes."""
    kind: str
    """``f`` regular file, ``x`` executable file, ``l`` symlink."""
    digest: str
    """sha256 hex of the content, or of the link target for a symlink."""


@dataclass(frozen=True)
class SpecialFile:
    """Something in a tree that is neither a file, a directory nor a symlink."""

    path: str
    """Path relative to the tree root."""
    what: str
    """A short description (fifo, socket, device)."""


Manifest = dict[str, TreeEntry]


def file_digest(path: Path | str) -> str:
    """The sha256 hex digest of a file's content (:func:`forkman.core.fs.file_sha256`)."""
    return file_sha256(Path(path))


def bytes_digest(data: bytes) -> str:
    """The sha256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def hash_manifest(entries: Iterable[TreeEntry]) -> str:
    """The tree hash of a set of entries."""
    h = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path.encode("utf-8", "surrogateescape")):
        h.update(f"{entry.kind} {entry.digest} {entry.path}\0".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


class StatCache:
    """Digests of files keyed by absolute path, valid while their stat signature holds."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._data: dict[str, tuple[int, int, int, int, str]] = {}
        self._dirty = False
        if path is not None:
            from ..model.statetrust import read_cache

            # sealed (see forkman.model.statetrust): a cache this user's forkman did not write
            # for this file is ignored, so no one else can vouch for a file's digest
            raw = read_cache(path, "statcache")
            if isinstance(raw, list) and len(raw) == 2 and raw[0] == _CACHE_FORMAT:
                with contextlib.suppress(TypeError, ValueError):
                    self._data = {str(k): (v[0], v[1], v[2], v[3], v[4]) for k, v in raw[1].items()}

    def digest(self, path: str, st: os.stat_result) -> str:
        """The digest of the regular file at `path` whose stat is `st`."""
        sig = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        hit = self._data.get(path)
        if hit is not None and hit[:4] == sig:
            return hit[4]
        digest = file_digest(path)
        if time.time() - max(st.st_mtime, st.st_ctime) > _RACY_SECONDS:
            self._data[path] = (*sig, digest)
            self._dirty = True
        return digest

    def save(self) -> None:
        """Persist the cache if it changed (atomically; a lost cache only costs time)."""
        if self._path is None or not self._dirty:
            return
        from ..model.statetrust import write_cache

        if write_cache(self._path, "statcache", [_CACHE_FORMAT, self._data]):
            self._dirty = False


def scan_tree(
    root: Path,
    cache: StatCache | None = None,
    *,
    exclude: Mapping[str, None] | None = None,
) -> tuple[Manifest, list[SpecialFile]]:
    """Walk `root` and return its manifest and anything that is not a file or link.

    `exclude` names top-level entries (relative paths) to leave out.
    """
    manifest: Manifest = {}
    special: list[SpecialFile] = []
    root_s = os.fspath(root)
    stack: list[tuple[str, str]] = [(root_s, "")]
    while stack:
        directory, rel_prefix = stack.pop()
        try:
            it = os.scandir(directory)
        except FileNotFoundError:
            continue
        with it:
            for entry in it:
                rel = rel_prefix + entry.name
                if exclude is not None and rel in exclude:
                    continue
                if entry.is_symlink():
                    target = os.readlink(entry.path)
                    manifest[rel] = TreeEntry(rel, "l", bytes_digest(os.fsencode(target)))
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    kind = "x" if st.st_mode & 0o111 else "f"
                    digest = cache.digest(entry.path, st) if cache else file_digest(entry.path)
                    manifest[rel] = TreeEntry(rel, kind, digest)
                else:
                    st = entry.stat(follow_symlinks=False)
                    special.append(SpecialFile(rel, _describe_mode(st.st_mode)))
    return manifest, special


def tree_hash(root: Path, cache: StatCache | None = None) -> str:
    """The tree hash of the directory `root`."""
    manifest, special = scan_tree(root, cache)
    if special:
        raise ValueError(f"{root}: not a plain tree: {special[0].path} is a {special[0].what}")
    return hash_manifest(manifest.values())


def _describe_mode(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"
