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
directories get 0o755. The rules themselves are in :mod:`.archive_rules`.
"""

from __future__ import annotations

import contextlib
import enum
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, assert_never

from ..core.errors import BadInput, UnsafeArchive
from ..core.fs import fsync_dir
from .archive_rules import (
    Kind,
    Member,
    RawMember,
    check_link_target,
    check_name,
    check_tree,
    decide_strip,
    reject,
)

__all__ = ["ArchiveFormat", "UnpackLimits", "archive_format", "unpack_archive"]

_MiB = 1024 * 1024
_CHUNK = 1 << 16
_MAX_LINK_TARGET = 4096


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
    def _raw_members(self, limits: UnpackLimits) -> Iterator[RawMember]:
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

    def _tar_raw(self, info: tarfile.TarInfo) -> RawMember:
        name = info.name
        if info.islnk():
            raise reject(name, "hard links are not allowed")
        if info.ischr() or info.isblk():
            raise reject(name, "device files are not allowed")
        if info.isfifo():
            raise reject(name, "fifos are not allowed")
        if info.isreg():
            kind = Kind.FILE
        elif info.isdir():
            kind = Kind.DIR
        elif info.issym():
            kind = Kind.SYMLINK
        else:
            raise reject(name, f"unsupported member type {info.type!r}")
        return RawMember(name, kind, info.size, info.mode, info.linkname, info)

    def _zip_raw(self, zinfo: zipfile.ZipInfo, limits: UnpackLimits) -> RawMember:
        name = self._zip_name(zinfo)
        if zinfo.flag_bits & 0x1:
            raise reject(name, "encrypted members are not allowed")
        mode = (zinfo.external_attr >> 16) & 0xFFFF if zinfo.create_system == 3 else 0
        fmt = stat.S_IFMT(mode)
        target = ""
        if fmt in (stat.S_IFCHR, stat.S_IFBLK):
            raise reject(name, "device files are not allowed")
        if fmt == stat.S_IFIFO:
            raise reject(name, "fifos are not allowed")
        if fmt == stat.S_IFSOCK:
            raise reject(name, "sockets are not allowed")
        if fmt == stat.S_IFLNK:
            kind = Kind.SYMLINK
            if zinfo.file_size > _MAX_LINK_TARGET:
                raise reject(name, "symlink target is too long")
            assert self._zip is not None
            raw = self._zip.read(zinfo)[: _MAX_LINK_TARGET + 1]
            try:
                target = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise reject(name, "symlink target is not valid UTF-8") from None
        elif zinfo.is_dir():
            kind = Kind.DIR
        else:
            kind = Kind.FILE
            if (
                zinfo.file_size >= limits.ratio_min_size
                and zinfo.file_size > limits.max_ratio * max(zinfo.compress_size, 1)
            ):
                ratio = zinfo.file_size / max(zinfo.compress_size, 1)
                raise reject(
                    name,
                    f"compression ratio {ratio:.0f}:1 exceeds {limits.max_ratio:.0f}:1 (zip bomb)",
                )
        return RawMember(
            name.rstrip("/") if kind is Kind.DIR else name,
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
    def validated(self, limits: UnpackLimits, strip_top: bool | None) -> list[Member]:
        raws: list[tuple[str, tuple[str, ...], RawMember]] = []
        total = 0
        for raw in self._raw_members(limits):
            parts = check_name(raw.name)
            if raw.kind is Kind.FILE:
                if raw.size > limits.max_file_size:
                    raise reject(
                        raw.name,
                        f"size {raw.size} bytes exceeds the per-file limit of "
                        f"{limits.max_file_size} bytes",
                    )
                total += raw.size
                if total > limits.max_total_size:
                    raise reject(
                        raw.name,
                        f"total uncompressed size exceeds the limit of "
                        f"{limits.max_total_size} bytes",
                    )
            if raw.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
                raise reject(raw.name, "setuid, setgid and sticky bits are not allowed")
            if raw.kind is Kind.SYMLINK:
                check_link_target(raw.name, raw.target)
            if not parts:  # "." or "./": the archive's root itself
                if raw.kind is not Kind.DIR:
                    raise reject(raw.name, "a non-directory member names the archive root")
                continue
            raws.append((raw.name, parts, raw))
        strip = decide_strip(raws, strip_top, self.archive.name)
        members: list[Member] = []
        for original, parts, raw in raws:
            final = parts[1:] if strip else parts
            if not final:
                continue  # the stripped top-level directory itself
            members.append(
                Member(
                    name="/".join(final),
                    original=original,
                    kind=raw.kind,
                    size=raw.size,
                    executable=bool(raw.mode & 0o111),
                    target=raw.target,
                    ref=raw.ref,
                )
            )
        check_tree(members)
        return members

    # reading data
    def open_member(self, member: Member) -> IO[bytes]:
        if self._tar is not None:
            assert isinstance(member.ref, tarfile.TarInfo)
            fh = self._tar.extractfile(member.ref)
            if fh is None:
                raise reject(member.original, "member has no data")
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


# -- writing -------------------------------------------------------------------------


def _write_all(reader: _Reader, members: list[Member], root: Path, limits: UnpackLimits) -> None:
    os.chmod(root, 0o755)  # noqa: S103 - the documented directory mode
    total = 0
    dirs = [m for m in members if m.kind is Kind.DIR]
    files = [m for m in members if m.kind is Kind.FILE]
    links = [m for m in members if m.kind is Kind.SYMLINK]
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


def _write_file(reader: _Reader, m: Member, path: Path, total: int, limits: UnpackLimits) -> int:
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
                        raise reject(m.original, "member holds more data than its header says")
                    if written > limits.max_file_size:
                        raise reject(m.original, "per-file size limit exceeded while writing")
                    if total > limits.max_total_size:
                        raise reject(m.original, "total size limit exceeded while writing")
                    out.write(chunk)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise reject(m.original, f"data is corrupt or its header lies: {exc}") from exc
    if written != m.size:
        raise reject(m.original, "member holds less data than its header says")
    os.chmod(path, 0o755 if m.executable else 0o644)
    return total
