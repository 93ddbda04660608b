"""The rules an archive's members must follow before anything is written.

:mod:`forkman.sources.unpack` lists an archive's members (:class:`RawMember`)
and hands them here: each name, link target and the tree as a whole are
checked (see that module for the rules); a broken rule is an
:class:`~forkman.core.errors.UnsafeArchive` naming the member (:func:`reject`).
"""

from __future__ import annotations

import enum
import posixpath
import re
import tarfile
import unicodedata
import zipfile
from dataclasses import dataclass

from ..core.errors import UnsafeArchive

_MAX_LINK_DEPTH = 40
_DRIVE = re.compile(r"^[A-Za-z]:")
# Bidirectional overrides make a name display differently from what it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


class Kind(enum.Enum):
    """What a member is (anything else is refused)."""

    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Member:
    """One validated archive member, under its final (possibly stripped) name."""

    name: str
    """Normalized relative POSIX path in the destination tree."""
    original: str
    """The name as stored in the archive (for messages)."""
    kind: Kind
    """File, directory or symlink."""
    size: int
    """Declared uncompressed size (files)."""
    executable: bool
    """Whether the member had any exec bit."""
    target: str = ""
    """Link target (symlinks)."""
    ref: tarfile.TarInfo | zipfile.ZipInfo | None = None
    """The archive's own record, to read the data."""


@dataclass(frozen=True)
class RawMember:
    """A member as listed by the archive, before validation of its name."""

    name: str
    kind: Kind
    size: int
    mode: int
    target: str
    ref: tarfile.TarInfo | zipfile.ZipInfo


def reject(member: str, rule: str) -> UnsafeArchive:
    """The error that refuses the archive for `member` breaking `rule`."""
    try:
        raw = member.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = member.encode("utf-8", "backslashreplace")
    shown = repr(raw.decode("utf-8", "backslashreplace"))
    return UnsafeArchive(
        f"archive member {shown} rejected: {rule}",
        hint="the archive was not unpacked and nothing was written; "
        "if the upstream release really contains this, report it upstream",
    )


def check_name(name: str) -> tuple[str, ...]:
    """The normalized components of `name`, or raise naming the broken rule."""
    if "\x00" in name:
        raise reject(name, "NUL byte in name")
    for ch in name:
        if "\udc80" <= ch <= "\udcff":
            raise reject(name, "name is not valid UTF-8")
        if ch in "\n\r":
            raise reject(name, "newline or carriage return in name")
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI:
            raise reject(name, f"control character U+{ord(ch):04X} in name")
    if "\\" in name:
        raise reject(name, "backslash in name (a Windows path separator)")
    if _DRIVE.match(name):
        raise reject(name, "Windows drive letter in name")
    if name.startswith("/"):
        raise reject(name, "absolute path")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise reject(name, "path traversal ('..' component)")
        if part.casefold() == ".git":
            raise reject(name, "'.git' path component (would nest a git repository)")
        parts.append(part)
    return tuple(parts)


def check_link_target(name: str, target: str) -> None:
    """Refuse an empty, absolute or unprintable target of symlink `name`."""
    if not target:
        raise reject(name, "symlink with an empty target")
    if "\x00" in target or any(unicodedata.category(c) in ("Cc", "Cs") for c in target):
        raise reject(name, "control character or invalid UTF-8 in symlink target")
    if target.startswith("/") or _DRIVE.match(target) or "\\" in target:
        raise reject(name, f"symlink target {target!r} is absolute")


def decide_strip(
    raws: list[tuple[str, tuple[str, ...], RawMember]], strip_top: bool | None, archive: str
) -> bool:
    """Whether to strip the single top-level directory (see ``unpack_archive``'s `strip_top`)."""
    if strip_top is False:
        return False
    tops = {parts[0] for _, parts, _ in raws}
    nested = any(len(parts) > 1 for _, parts, _ in raws)
    top_is_dir = all(raw.kind is Kind.DIR for _, parts, raw in raws if len(parts) == 1)
    single = len(tops) == 1 and nested and top_is_dir
    if strip_top is True and not single:
        raise UnsafeArchive(
            f"{archive} does not have a single top-level directory to strip",
            hint="an sdist keeps everything under <name>-<version>/",
        )
    return single


def check_tree(members: list[Member]) -> None:
    """Rules about the tree as a whole: duplicates, collisions, links, nesting."""
    by_name: dict[str, Member] = {}
    folded: dict[str, str] = {}
    implicit_dirs: dict[str, str] = {}  # parent path -> a member that needs it

    def fold(path: str) -> str:
        return unicodedata.normalize("NFC", path).casefold()

    for m in members:
        if m.name in by_name:
            raise reject(m.original, "duplicate name")
        by_name[m.name] = m
        parts = m.name.split("/")
        for i in range(1, len(parts)):
            implicit_dirs.setdefault("/".join(parts[:i]), m.original)
    every_path = set(by_name) | set(implicit_dirs)
    for path in sorted(every_path):
        key = fold(path)
        other = folded.get(key)
        if other is not None and other != path:
            member = by_name.get(path)
            shown = member.original if member else implicit_dirs[path]
            raise reject(shown, f"name collides with {other!r} on case-insensitive filesystems")
        folded[key] = path
    for parent, child in implicit_dirs.items():
        holder = by_name.get(parent)
        if holder is None or holder.kind is Kind.DIR:
            continue
        if holder.kind is Kind.SYMLINK:
            raise reject(child, f"placed under the symlink {holder.original!r}")
        raise reject(child, f"placed under {holder.original!r}, which is a file")
    links = {name: m.target for name, m in by_name.items() if m.kind is Kind.SYMLINK}
    for name, m in by_name.items():
        if m.kind is Kind.SYMLINK:
            resolve_inside(name, m.original, links)


def resolve_inside(name: str, original: str, links: dict[str, str]) -> None:
    """Follow link `name` (and every link on its way) and require it to stay inside."""
    parent = posixpath.dirname(name)
    pending = [p for p in links[name].split("/") if p not in ("", ".")]
    current: list[str] = [p for p in parent.split("/") if p]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not current:
                raise reject(original, f"symlink target {links[name]!r} points outside the tree")
            current.pop()
            continue
        candidate = "/".join([*current, part])
        if candidate in links:
            hops += 1
            if hops > _MAX_LINK_DEPTH:
                raise reject(original, "symlink loop or chain too long")
            target = links[candidate]
            if target.startswith("/"):
                raise reject(original, "symlink chain reaches an absolute target")
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue  # resolve relative to the link's own directory (`current`)
        current.append(part)
