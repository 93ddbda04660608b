"""Installable archives of project-layout forks, built outside the vendor directory.

Installers build a local directory requirement in place: setuptools writes
``build/`` and rewrites ``*.egg-info`` inside ``vendor/NAME``, and a fork
made from a wheel is a directory no installer accepts at all. So the wiring
does not point installers at ``vendor/NAME`` but at an archive forkman makes
from it, under ``.forkman/dist/NAME/``:

* a fork of an sdist (or a git tree) becomes a source archive
  ``NAME.tar.gz`` holding the vendored tree under ``NAME-VERSION/``. The
  installer unpacks it into its own scratch folder and builds there: nothing
  is written into ``vendor/``. The file name carries no version on purpose:
  pip caches the wheels it builds from local archives named ``NAME-VERSION``
  by their path, and would install a stale build after the fork changed;
* a fork of a wheel becomes that wheel again (the release's own file name),
  its ``RECORD`` written anew for the vendored files, so a patched wheel is a
  valid wheel.

Making either runs no code of the fork: it is packing files. Both are
deterministic (sorted entries, fixed timestamps and owners, modes reduced to
the executable bit), so the same tree gives the same bytes, and an archive
is only written when its bytes change (installers that cache local archives
by modification time rebuild exactly when the fork changed).

Beside each archive, ``.forkman/dist/NAME/record.json`` records the tree hash
it was made from and its sha256: ``forkman doctor`` compares both with the
lock and the file. The archives are a cache of the vendored trees (``.forkman``
is not committed): ``forkman wire`` makes them after a clone, and every
forkman command that changes a wired fork's tree makes its archive again.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ..core.errors import BadInput
from ..core.fs import atomic_write_bytes, file_sha256
from ..model.lock import IndexSource, LockEntry
from ..store.treehash import TreeEntry, hash_manifest, scan_tree

DIST_DIR = ".forkman/dist"
"""Where the archives live, relative to the project root."""

_EPOCH = 315532800  # 1980-01-01, the earliest time a zip file can hold
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ForkArchive:
    """The installable archive of one fork, as recorded beside it."""

    name: str
    """The fork's canonical name."""
    path: str
    """The archive, relative to the project root."""
    kind: str
    """``sdist`` or ``wheel``."""
    tree: str
    """The tree hash of the vendored tree it was made from."""
    sha256: str
    """The sha256 hex digest of the archive."""


def _norm(name: str) -> str:
    return str(canonicalize_name(name)).replace("-", "_")


def is_wheel_fork(entry: LockEntry) -> bool:
    """Whether fork `entry` was made from a wheel (its tree is an unpacked wheel)."""
    return isinstance(entry.source, IndexSource) and entry.source.filename.endswith(".whl")


def archive_path(entry: LockEntry) -> str:
    """Where fork `entry`'s archive is made, relative to the project root."""
    folder = f"{DIST_DIR}/{canonicalize_name(entry.name)}"
    if is_wheel_fork(entry):
        assert isinstance(entry.source, IndexSource)
        filename = os.path.basename(entry.source.filename)
        if "/" in filename or filename in ("", ".", "..") or any(c.isspace() for c in filename):
            raise BadInput(f"{entry.name}: unusable wheel file name {entry.source.filename!r}")
        return f"{folder}/{filename}"
    return f"{folder}/{_norm(entry.name)}.tar.gz"


def _record_path(root: Path, name: str) -> Path:
    return root / DIST_DIR / str(canonicalize_name(name)) / "record.json"


def read_record(root: Path, name: str) -> ForkArchive | None:
    """What was recorded when fork `name`'s archive was made (None: never, or unreadable)."""
    try:
        data = json.loads(_record_path(root, name).read_text(encoding="utf-8"))
        return ForkArchive(
            name=str(data["name"]),
            path=str(data["path"]),
            kind=str(data["kind"]),
            tree=str(data["tree"]),
            sha256=str(data["sha256"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _files(tree: Path) -> list[tuple[TreeEntry, Path]]:
    manifest, special = scan_tree(tree)
    if special:
        raise BadInput(f"{tree}: {special[0].path} is a {special[0].what}; cannot pack it")
    return [(e, tree / e.path) for e in sorted(manifest.values(), key=lambda e: e.path)]


def sdist_bytes(tree: Path, name: str, version: str) -> bytes:
    """A deterministic source archive of `tree` (under ``NAME-VERSION/``)."""
    top = f"{_norm(name)}-{version}"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry, path in _files(tree):
            info = tarfile.TarInfo(f"{top}/{entry.path}")
            info.mtime = _EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind == "l":
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                info.mode = 0o777
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if entry.kind == "x" else 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_bytes(tree: Path) -> bytes:
    """A deterministic wheel of the unpacked wheel `tree`, with its RECORD made anew."""
    files = _files(tree)
    records = [
        p.parent.name
        for e, p in files
        if e.path.count("/") == 1 and e.path.endswith(".dist-info/RECORD")
    ]
    wheels = [
        e.path for e, _ in files if e.path.count("/") == 1 and e.path.endswith(".dist-info/WHEEL")
    ]
    if len(wheels) != 1:
        raise BadInput(
            f"{tree}: not an unpacked wheel (expected one *.dist-info/WHEEL, found {len(wheels)})",
            hint="a fork made from a wheel keeps its .dist-info folder; restore it from git",
        )
    distinfo = wheels[0].split("/", 1)[0]
    record_name = f"{distinfo}/RECORD"
    if any(r != distinfo for r in records):
        raise BadInput(f"{tree}: more than one .dist-info folder")
    body = [(e, p) for e, p in files if e.path != record_name]
    if any(e.kind == "l" for e, _ in body):
        raise BadInput(f"{tree}: a wheel cannot hold symbolic links")
    # the dist-info folder goes last, as the wheel specification recommends
    body.sort(key=lambda ep: (ep[0].path.startswith(distinfo + "/"), ep[0].path))
    out = io.BytesIO()
    lines = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, path in body:
            data = path.read_bytes()
            info = zipfile.ZipInfo(entry.path, date_time=_ZIP_TIME)
            info.external_attr = ((0o755 if entry.kind == "x" else 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
            lines.append(f"{_csv(entry.path)},{_record_hash(data)},{len(data)}")
        lines.append(f"{_csv(record_name)},,")
        info = zipfile.ZipInfo(record_name, date_time=_ZIP_TIME)
        info.external_attr = (0o644 | 0o100000) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, "".join(line + "\n" for line in lines))
    return out.getvalue()


def _csv(path: str) -> str:
    if any(c in path for c in ',"\n\r'):
        return '"' + path.replace('"', '""') + '"'
    return path


def pack(tree: Path, entry: LockEntry) -> bytes:
    """The archive bytes fork `entry`'s vendored `tree` packs to."""
    if is_wheel_fork(entry):
        return wheel_bytes(tree)
    return sdist_bytes(tree, entry.name, entry.version)


def build_archive(root: Path, entry: LockEntry) -> ForkArchive:
    """Make fork `entry`'s archive from its vendored tree under project `root`.

    Written atomically and only when its bytes change; its record follows it.
    """
    tree = root / entry.path
    if not tree.is_dir():
        raise BadInput(f"{entry.name}: {entry.path} is missing; nothing to pack")
    rel = archive_path(entry)
    data, kind = pack(tree, entry), "wheel" if is_wheel_fork(entry) else "sdist"
    manifest, _ = scan_tree(tree)
    made = ForkArchive(
        name=str(canonicalize_name(entry.name)),
        path=rel,
        kind=kind,
        tree=hash_manifest(manifest.values()),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    target = root / rel
    folder = target.parent
    try:
        current: str | None = file_sha256(target)
    except OSError:
        current = None
    if read_record(root, entry.name) != made or current != made.sha256:
        for old in folder.glob("*") if folder.is_dir() else []:
            if old.name != target.name and old.name != "record.json" and old.is_file():
                old.unlink()  # the archive of another release of this fork
        if current != made.sha256:
            atomic_write_bytes(target, data)
        record = {k: getattr(made, k) for k in ("name", "path", "kind", "tree", "sha256")}
        atomic_write_bytes(
            _record_path(root, entry.name), (json.dumps(record, indent=1) + "\n").encode()
        )
    return made


def remove_archive(root: Path, name: str) -> None:
    """Remove fork `name`'s archive and its record (the installers then fail, loudly)."""
    folder = root / DIST_DIR / str(canonicalize_name(name))
    if folder.is_dir():
        for path in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
