"""Safe unpacking of upstream archives (sdists, wheels, git exports).

An archive from the internet is hostile until proven otherwise. Unpacking
happens in two phases:

1. **Validate everything first.** Every member is read from the archive's
   directory and checked against the rules below before a single byte is
   written. A rule broken anywhere rejects the whole archive.
2. **Write into a staging directory** created beside ``dest``, enforcing the
   size limits again while writing (headers can lie), then rename the staging
   directory to ``dest``. On any failure the staging directory is removed, so
   a rejected archive leaves no trace.

Rules (each rejection names the member and the rule): no absolute paths,
drive letters, backslashes or ``..`` components; no ``.git`` component (it
would nest a repository in the consumer's repository); no control characters
or non-UTF-8 bytes in names; no duplicate names and no names that collide
case-insensitively (they would overwrite each other on macOS and Windows);
no hard links, device files, fifos, or setuid/setgid/sticky bits; symlinks
only with relative targets that resolve inside the tree (following chains of
links), and nothing placed under a symlinked directory; limits on member
count, per-file and total size, and zip compression ratio.

Written files get mode 0o644, or 0o755 when the member had any exec bit;
directories get 0o755.
"""

from __future__ import annotations

import contextlib
import enum
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, assert_never

from ..core.errors import BadInput, UnsafeArchive
from ..core.fs import fsync_dir

__all__ = ["ArchiveFormat", "UnpackLimits", "archive_format", "unpack_archive"]

_MiB = 1024 * 1024
_CHUNK = 1 << 16
_MAX_LINK_DEPTH = 40
_MAX_LINK_TARGET = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")
# Bidirectional overrides make a name display differently from what it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@dataclass(frozen=True)
class UnpackLimits:
    """Bounds that stop archive bombs."""

    max_file_size: int = 256 * _MiB
    """Largest uncompressed size of one member, in bytes."""
    max_total_size: int = 1024 * _MiB
    """Largest uncompressed size of all members together, in bytes."""
    max_members: int = 100_000
    """Most members an archive may have."""
    max_ratio: float = 200.0
    """Highest uncompressed:compressed ratio of a zip member ..."""
    ratio_min_size: int = 1 * _MiB
    """... checked only for members at least this large when uncompressed."""


class ArchiveFormat(enum.Enum):
    """The container formats forkman unpacks."""

    TAR = "tar"
    ZIP = "zip"


class _Kind(enum.Enum):
    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class _Member:
    """One validated archive member, under its final (possibly stripped) name."""

    name: str
    """Normalized relative POSIX path in the destination tree."""
    original: str
    """The name as stored in the archive (for messages)."""
    kind: _Kind
    """File, directory or symlink."""
    size: int
    """Declared uncompressed size (files)."""
    executable: bool
    """Whether the member had any exec bit."""
    target: str = ""
    """Link target (symlinks)."""
    ref: tarfile.TarInfo | zipfile.ZipInfo | None = None
    """The archive's own record, to read the data."""


def archive_format(archive: Path) -> ArchiveFormat:
    """The format of `archive`: by its name, else by sniffing its content."""
    name = archive.name.lower()
    if name.endswith((".zip", ".whl")):
        return ArchiveFormat.ZIP
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return ArchiveFormat.TAR
    try:
        if zipfile.is_zipfile(archive):
            return ArchiveFormat.ZIP
        if tarfile.is_tarfile(archive):
            return ArchiveFormat.TAR
    except OSError as exc:
        raise BadInput(f"cannot read archive {archive}: {exc}") from exc
    raise UnsafeArchive(
        f"{archive.name} is not a tar or zip archive",
        hint="forkman unpacks .tar.gz, .tgz, .tar.bz2, .tar.xz, .tar, .zip and .whl files",
    )


def unpack_archive(
    archive: Path,
    dest: Path,
    *,
    strip_top: bool | None = None,
    limits: UnpackLimits = UnpackLimits(),
) -> None:
    """Unpack `archive` into the new directory `dest`, or raise and leave no trace.

    `strip_top`: ``None`` strips the single top-level directory when every
    member is under one (sdists) and keeps the layout otherwise (wheels);
    ``True`` requires such a directory; ``False`` never strips.
    """
    if dest.exists() or dest.is_symlink():
        raise BadInput(f"cannot unpack into {dest}: it already exists")
    fmt = archive_format(archive)
    created_parent = _first_missing(dest.parent)
    try:
        with _open(archive, fmt) as reader:
            members = reader.validated(limits, strip_top)
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
            try:
                _write_all(reader, members, staging, limits)
                os.rename(staging, dest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        fsync_dir(dest.parent)
    except BaseException:
        if created_parent is not None:
            _remove_empty_parents(dest.parent, created_parent)
        raise


def _remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove `path` and its parents up to `stop` (included), while they are empty."""
    for candidate in [path, *path.parents]:
        try:
            candidate.rmdir()
        except OSError:
            return
        if candidate == stop:
            return


def _first_missing(path: Path) -> Path | None:
    """The outermost ancestor of `path` (or `path`) that does not exist yet."""
    missing: Path | None = None
    for candidate in [path, *path.parents]:
        if candidate.exists():
            break
        missing = candidate
    return missing


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    """A member as listed by the archive, before validation of its name."""

    name: str
    kind: _Kind
    size: int
    mode: int
    target: str
    ref: tarfile.TarInfo | zipfile.ZipInfo


class _Reader:
    """Lists and reads the members of one open archive."""

    def __init__(self, archive: Path, fmt: ArchiveFormat) -> None:
        self.archive = archive
        self.fmt = fmt
        self._tar: tarfile.TarFile | None = None
        self._zip: zipfile.ZipFile | None = None
        try:
            match fmt:
                case ArchiveFormat.TAR:
                    self._tar = tarfile.open(  # noqa: SIM115 - closed by close()
                        archive, "r:*", encoding="utf-8", errors="surrogateescape"
                    )
                case ArchiveFormat.ZIP:
                    self._zip = zipfile.ZipFile(archive)
                case _:
                    assert_never(fmt)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise UnsafeArchive(f"{archive.name} is not a readable archive: {exc}") from exc

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._zip is not None:
            self._zip.close()

    # listing
    def _raw_members(self, limits: UnpackLimits) -> Iterator[_Raw]:
        count = 0
        try:
            if self._tar is not None:
                while (info := self._tar.next()) is not None:
                    count += 1
                    self._check_count(count, limits)
                    yield self._tar_raw(info)
            elif self._zip is not None:
                infos = self._zip.infolist()
                if len(infos) > limits.max_members:
                    self._check_count(len(infos), limits)
                for zinfo in infos:
                    yield self._zip_raw(zinfo, limits)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise UnsafeArchive(f"{self.archive.name} is corrupt: {exc}") from exc

    def _check_count(self, count: int, limits: UnpackLimits) -> None:
        if count > limits.max_members:
            raise UnsafeArchive(
                f"{self.archive.name} has more than {limits.max_members} members",
                hint="an archive with that many files is treated as an archive bomb",
            )

    def _tar_raw(self, info: tarfile.TarInfo) -> _Raw:
        name = info.name
        if info.islnk():
            raise _reject(name, "hard links are not allowed")
        if info.ischr() or info.isblk():
            raise _reject(name, "device files are not allowed")
        if info.isfifo():
            raise _reject(name, "fifos are not allowed")
        if info.isreg():
            kind = _Kind.FILE
        elif info.isdir():
            kind = _Kind.DIR
        elif info.issym():
            kind = _Kind.SYMLINK
        else:
            raise _reject(name, f"unsupported member type {info.type!r}")
        return _Raw(name, kind, info.size, info.mode, info.linkname, info)

    def _zip_raw(self, zinfo: zipfile.ZipInfo, limits: UnpackLimits) -> _Raw:
        name = self._zip_name(zinfo)
        if zinfo.flag_bits & 0x1:
            raise _reject(name, "encrypted members are not allowed")
        mode = (zinfo.external_attr >> 16) & 0xFFFF if zinfo.create_system == 3 else 0
        fmt = stat.S_IFMT(mode)
        target = ""
        if fmt in (stat.S_IFCHR, stat.S_IFBLK):
            raise _reject(name, "device files are not allowed")
        if fmt == stat.S_IFIFO:
            raise _reject(name, "fifos are not allowed")
        if fmt == stat.S_IFSOCK:
            raise _reject(name, "sockets are not allowed")
        if fmt == stat.S_IFLNK:
            kind = _Kind.SYMLINK
            if zinfo.file_size > _MAX_LINK_TARGET:
                raise _reject(name, "symlink target is too long")
            assert self._zip is not None
            raw = self._zip.read(zinfo)[: _MAX_LINK_TARGET + 1]
            try:
                target = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _reject(name, "symlink target is not valid UTF-8") from None
        elif zinfo.is_dir():
            kind = _Kind.DIR
        else:
            kind = _Kind.FILE
            if (
                zinfo.file_size >= limits.ratio_min_size
                and zinfo.file_size > limits.max_ratio * max(zinfo.compress_size, 1)
            ):
                ratio = zinfo.file_size / max(zinfo.compress_size, 1)
                raise _reject(
                    name,
                    f"compression ratio {ratio:.0f}:1 exceeds {limits.max_ratio:.0f}:1 (zip bomb)",
                )
        return _Raw(
            name.rstrip("/") if kind is _Kind.DIR else name,
            kind,
            zinfo.file_size,
            mode,
            target,
            zinfo,
        )

    @staticmethod
    def _zip_name(zinfo: zipfile.ZipInfo) -> str:
        name = zinfo.orig_filename  # keeps NUL bytes that `filename` silently cuts
        if zinfo.flag_bits & 0x800:
            return name
        # Without the UTF-8 flag zipfile decoded the name as cp437; many tools
        # write UTF-8 without setting the flag, so recover the raw bytes.
        raw = name.encode("cp437")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "surrogateescape")

    # validation
    def validated(self, limits: UnpackLimits, strip_top: bool | None) -> list[_Member]:
        raws: list[tuple[str, tuple[str, ...], _Raw]] = []
        total = 0
        for raw in self._raw_members(limits):
            parts = _check_name(raw.name)
            if raw.kind is _Kind.FILE:
                if raw.size > limits.max_file_size:
                    raise _reject(
                        raw.name,
                        f"size {raw.size} bytes exceeds the per-file limit of "
                        f"{limits.max_file_size} bytes",
                    )
                total += raw.size
                if total > limits.max_total_size:
                    raise _reject(
                        raw.name,
                        f"total uncompressed size exceeds the limit of "
                        f"{limits.max_total_size} bytes",
                    )
            if raw.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
                raise _reject(raw.name, "setuid, setgid and sticky bits are not allowed")
            if raw.kind is _Kind.SYMLINK:
                _check_link_target(raw.name, raw.target)
            if not parts:  # "." or "./": the archive's root itself
                if raw.kind is not _Kind.DIR:
                    raise _reject(raw.name, "a non-directory member names the archive root")
                continue
            raws.append((raw.name, parts, raw))
        strip = _decide_strip(raws, strip_top, self.archive.name)
        members: list[_Member] = []
        for original, parts, raw in raws:
            final = parts[1:] if strip else parts
            if not final:
                continue  # the stripped top-level directory itself
            members.append(
                _Member(
                    name="/".join(final),
                    original=original,
                    kind=raw.kind,
                    size=raw.size,
                    executable=bool(raw.mode & 0o111),
                    target=raw.target,
                    ref=raw.ref,
                )
            )
        _check_tree(members)
        return members

    # reading data
    def open_member(self, member: _Member) -> IO[bytes]:
        if self._tar is not None:
            assert isinstance(member.ref, tarfile.TarInfo)
            fh = self._tar.extractfile(member.ref)
            if fh is None:
                raise _reject(member.original, "member has no data")
            return fh
        assert self._zip is not None and isinstance(member.ref, zipfile.ZipInfo)
        return self._zip.open(member.ref)


@contextlib.contextmanager
def _open(archive: Path, fmt: ArchiveFormat) -> Iterator[_Reader]:
    reader = _Reader(archive, fmt)
    try:
        yield reader
    finally:
        reader.close()


def _reject(member: str, rule: str) -> UnsafeArchive:
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


def _check_name(name: str) -> tuple[str, ...]:
    """The normalized components of `name`, or raise naming the broken rule."""
    if "\x00" in name:
        raise _reject(name, "NUL byte in name")
    for ch in name:
        if "\udc80" <= ch <= "\udcff":
            raise _reject(name, "name is not valid UTF-8")
        if ch in "\n\r":
            raise _reject(name, "newline or carriage return in name")
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI:
            raise _reject(name, f"control character U+{ord(ch):04X} in name")
    if "\\" in name:
        raise _reject(name, "backslash in name (a Windows path separator)")
    if _DRIVE.match(name):
        raise _reject(name, "Windows drive letter in name")
    if name.startswith("/"):
        raise _reject(name, "absolute path")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise _reject(name, "path traversal ('..' component)")
        if part.casefold() == ".git":
            raise _reject(name, "'.git' path component (would nest a git repository)")
        parts.append(part)
    return tuple(parts)


def _check_link_target(name: str, target: str) -> None:
    if not target:
        raise _reject(name, "symlink with an empty target")
    if "\x00" in target or any(unicodedata.category(c) in ("Cc", "Cs") for c in target):
        raise _reject(name, "control character or invalid UTF-8 in symlink target")
    if target.startswith("/") or _DRIVE.match(target) or "\\" in target:
        raise _reject(name, f"symlink target {target!r} is absolute")


def _decide_strip(
    raws: list[tuple[str, tuple[str, ...], _Raw]], strip_top: bool | None, archive: str
) -> bool:
    if strip_top is False:
        return False
    tops = {parts[0] for _, parts, _ in raws}
    nested = any(len(parts) > 1 for _, parts, _ in raws)
    top_is_dir = all(raw.kind is _Kind.DIR for _, parts, raw in raws if len(parts) == 1)
    single = len(tops) == 1 and nested and top_is_dir
    if strip_top is True and not single:
        raise UnsafeArchive(
            f"{archive} does not have a single top-level directory to strip",
            hint="an sdist keeps everything under <name>-<version>/",
        )
    return single


def _check_tree(members: list[_Member]) -> None:
    """Rules about the tree as a whole: duplicates, collisions, links, nesting."""
    by_name: dict[str, _Member] = {}
    folded: dict[str, str] = {}
    implicit_dirs: dict[str, str] = {}  # parent path -> a member that needs it

    def fold(path: str) -> str:
        return unicodedata.normalize("NFC", path).casefold()

    for m in members:
        if m.name in by_name:
            raise _reject(m.original, "duplicate name")
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
            raise _reject(shown, f"name collides with {other!r} on case-insensitive filesystems")
        folded[key] = path
    for parent, child in implicit_dirs.items():
        holder = by_name.get(parent)
        if holder is None or holder.kind is _Kind.DIR:
            continue
        if holder.kind is _Kind.SYMLINK:
            raise _reject(child, f"placed under the symlink {holder.original!r}")
        raise _reject(child, f"placed under {holder.original!r}, which is a file")
    links = {name: m.target for name, m in by_name.items() if m.kind is _Kind.SYMLINK}
    for name, m in by_name.items():
        if m.kind is _Kind.SYMLINK:
            _resolve_inside(name, m.original, links)


def _resolve_inside(name: str, original: str, links: dict[str, str]) -> None:
    """Follow link `name` (and every link on its way) and require it to stay inside."""
    parent = posixpath.dirname(name)
    pending = [p for p in links[name].split("/") if p not in ("", ".")]
    current: list[str] = [p for p in parent.split("/") if p]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not current:
                raise _reject(original, f"symlink target {links[name]!r} points outside the tree")
            current.pop()
            continue
        candidate = "/".join([*current, part])
        if candidate in links:
            hops += 1
            if hops > _MAX_LINK_DEPTH:
                raise _reject(original, "symlink loop or chain too long")
            target = links[candidate]
            if target.startswith("/"):
                raise _reject(original, "symlink chain reaches an absolute target")
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue  # resolve relative to the link's own directory (`current`)
        current.append(part)


# -- writing -------------------------------------------------------------------------


def _write_all(reader: _Reader, members: list[_Member], root: Path, limits: UnpackLimits) -> None:
    os.chmod(root, 0o755)  # noqa: S103 - the documented directory mode
    total = 0
    dirs = [m for m in members if m.kind is _Kind.DIR]
    files = [m for m in members if m.kind is _Kind.FILE]
    links = [m for m in members if m.kind is _Kind.SYMLINK]
    made: set[Path] = {root}

    def ensure_dir(path: Path) -> None:
        if path not in made:
            path.mkdir(parents=True, exist_ok=True)
            made.update([path, *path.parents])

    for m in dirs:
        ensure_dir(root / m.name)
    for m in files:
        path = root / m.name
        ensure_dir(path.parent)
        total = _write_file(reader, m, path, total, limits)
    # Links last: nothing is ever written through one.
    for m in links:
        path = root / m.name
        ensure_dir(path.parent)
        os.symlink(m.target, path)
    for dirpath, _dirnames, _files in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 - the documented directory mode


def _write_file(reader: _Reader, m: _Member, path: Path, total: int, limits: UnpackLimits) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    try:
        with reader.open_member(m) as src:
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > m.size:
                        raise _reject(m.original, "member holds more data than its header says")
                    if written > limits.max_file_size:
                        raise _reject(m.original, "per-file size limit exceeded while writing")
                    if total > limits.max_total_size:
                        raise _reject(m.original, "total size limit exceeded while writing")
                    out.write(chunk)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise _reject(m.original, f"data is corrupt or its header lies: {exc}") from exc
    if written != m.size:
        raise _reject(m.original, "member holds less data than its header says")
    os.chmod(path, 0o755 if m.executable else 0o644)
    return total
