"""Safe unpacking against real hostile archives built with tarfile and zipfile."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from forkman.core.errors import BadInput, UnsafeArchive
from forkman.sources.unpack import ArchiveFormat, UnpackLimits, archive_format, unpack_archive
from tests.support.index import build_sdist, build_wheel

TarEntry = tuple[tarfile.TarInfo, bytes | None]


def tinfo(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    data: bytes = b"x\n",
    mode: int = 0o644,
    link: str = "",
    size: int | None = None,
) -> TarEntry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_700_000_000
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data) if size is None else size
        return info, data
    return info, None


def make_tar(
    path: Path,
    entries: list[TarEntry],
    *,
    fmt: int = tarfile.PAX_FORMAT,
    encoding: str = "utf-8",
) -> Path:
    mode: Literal["w:gz", "w"] = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode, format=fmt, encoding=encoding) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def make_zip(
    path: Path,
    entries: list[tuple[str, bytes, int]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Entries are (name, data, unix mode with file type bits)."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression) as zf:
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        for name, data, mode in entries:
            zi = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))
            zi.create_system = 3
            zi.external_attr = mode << 16
            zi.compress_type = compression
            zf.writestr(zi, data)
    return path


def patch_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Rewrite a name in a finished archive (for bytes zipfile refuses to write)."""
    raw = path.read_bytes()
    assert len(old) == len(new) and raw.count(old) >= 1
    path.write_bytes(raw.replace(old, new))
    return path


REG = stat.S_IFREG | 0o644
SYMLINK = stat.S_IFLNK | 0o777

# -- the hostile battery -------------------------------------------------------------
# Each case builds an archive in a folder and returns (archive, limits); the
# expected fragments are a piece of the member name and a piece of the rule.

Builder = Callable[[Path], Path]


def _zip_lying_sizes(d: Path) -> Path:
    path = make_zip(d / "lies.zip", [("pkg/big.txt", b"A" * 50_000, REG)])
    raw = bytearray(path.read_bytes())
    # Claim 10 bytes uncompressed in both the local and the central header.
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(sig)
        raw[at + offset : at + offset + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def _header_only_huge_tar(d: Path) -> Path:
    """A tar whose header announces 300 MiB (the data is never needed to reject it)."""
    info, _ = tinfo("pkg/huge.bin", size=300 * 1024 * 1024)
    path = d / "huge.tar"
    path.write_bytes(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + b"\0" * 1024)
    return path


HOSTILE: dict[str, tuple[Builder, UnpackLimits, str, str]] = {
    "tar traversal": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/a.txt"), tinfo("pkg/../../evil.txt")]),
        UnpackLimits(),
        "evil.txt",
        "traversal",
    ),
    "zip traversal": (
        lambda d: make_zip(d / "a.zip", [("../evil.txt", b"x", REG)]),
        UnpackLimits(),
        "evil.txt",
        "traversal",
    ),
    "tar absolute path": (
        lambda d: make_tar(d / "a.tar", [tinfo("/tmp/evil-abs.txt")]),
        UnpackLimits(),
        "evil-abs.txt",
        "absolute",
    ),
    "zip absolute path": (
        lambda d: make_zip(d / "a.zip", [("/etc/evil-abs", b"x", REG)]),
        UnpackLimits(),
        "evil-abs",
        "absolute",
    ),
    "zip drive letter": (
        lambda d: make_zip(d / "a.zip", [("C:/evil-drive.txt", b"x", REG)]),
        UnpackLimits(),
        "evil-drive",
        "drive letter",
    ),
    "zip backslash": (
        lambda d: make_zip(d / "a.zip", [("pkg\\..\\evil-bs.txt", b"x", REG)]),
        UnpackLimits(),
        "evil-bs",
        "backslash",
    ),
    "tar symlink absolute": (
        lambda d: make_tar(
            d / "a.tar.gz", [tinfo("pkg/etc-link", tarfile.SYMTYPE, link="/etc/passwd")]
        ),
        UnpackLimits(),
        "etc-link",
        "absolute",
    ),
    "tar symlink escapes": (
        lambda d: make_tar(
            d / "a.tar.gz",
            [tinfo("pkg/a.txt"), tinfo("pkg/up-link", tarfile.SYMTYPE, link="../../outside")],
        ),
        UnpackLimits(),
        "up-link",
        "outside",
    ),
    "tar symlink chain escapes": (
        # `here` -> "." is harmless alone; `chain` -> "here/.." looks inside
        # lexically but resolves to the tree's parent.
        lambda d: make_tar(
            d / "a.tar",
            [
                tinfo("here", tarfile.SYMTYPE, link="."),
                tinfo("chain", tarfile.SYMTYPE, link="here/../x"),
            ],
        ),
        UnpackLimits(),
        "chain",
        "outside",
    ),
    "tar symlink loop": (
        lambda d: make_tar(
            d / "a.tar",
            [
                tinfo("loop-a", tarfile.SYMTYPE, link="loop-b"),
                tinfo("loop-b", tarfile.SYMTYPE, link="loop-a"),
            ],
        ),
        UnpackLimits(),
        "loop-",
        "loop",
    ),
    "tar member under symlinked dir": (
        lambda d: make_tar(
            d / "a.tar.gz",
            [
                tinfo("pkg/sub/", tarfile.DIRTYPE, mode=0o755),
                tinfo("pkg/via", tarfile.SYMTYPE, link="sub"),
                tinfo("pkg/via/planted.txt"),
            ],
        ),
        UnpackLimits(),
        "planted.txt",
        "under the symlink",
    ),
    "zip symlink escapes": (
        lambda d: make_zip(d / "a.zip", [("pkg/zlink", b"../../../etc", SYMLINK)]),
        UnpackLimits(),
        "zlink",
        "outside",
    ),
    "zip symlink absolute": (
        lambda d: make_zip(d / "a.zip", [("zabs", b"/etc/shadow", SYMLINK)]),
        UnpackLimits(),
        "zabs",
        "absolute",
    ),
    "tar hard link": (
        lambda d: make_tar(
            d / "a.tar.gz",
            [tinfo("pkg/a.txt"), tinfo("pkg/hard", tarfile.LNKTYPE, link="pkg/a.txt")],
        ),
        UnpackLimits(),
        "pkg/hard",
        "hard link",
    ),
    "tar char device": (
        lambda d: make_tar(d / "a.tar", [tinfo("pkg/null-dev", tarfile.CHRTYPE)]),
        UnpackLimits(),
        "null-dev",
        "device",
    ),
    "tar block device": (
        lambda d: make_tar(d / "a.tar", [tinfo("pkg/sda", tarfile.BLKTYPE)]),
        UnpackLimits(),
        "sda",
        "device",
    ),
    "zip char device": (
        lambda d: make_zip(d / "a.zip", [("zdev", b"", stat.S_IFCHR | 0o644)]),
        UnpackLimits(),
        "zdev",
        "device",
    ),
    "tar fifo": (
        lambda d: make_tar(d / "a.tar", [tinfo("pkg/pipe", tarfile.FIFOTYPE)]),
        UnpackLimits(),
        "pipe",
        "fifo",
    ),
    "tar setuid": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/suid-bin", mode=0o4755)]),
        UnpackLimits(),
        "suid-bin",
        "setuid",
    ),
    "tar setgid": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/sgid-bin", mode=0o2755)]),
        UnpackLimits(),
        "sgid-bin",
        "setgid",
    ),
    "tar sticky dir": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/sticky/", tarfile.DIRTYPE, mode=0o1777)]),
        UnpackLimits(),
        "sticky",
        "sticky",
    ),
    "zip setuid": (
        lambda d: make_zip(d / "a.zip", [("zsuid", b"x", stat.S_IFREG | 0o4755)]),
        UnpackLimits(),
        "zsuid",
        "setuid",
    ),
    "tar file over default per-file limit (header only)": (
        _header_only_huge_tar,
        UnpackLimits(),
        "huge.bin",
        "per-file limit",
    ),
    "tar file over per-file limit": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/big.bin", data=b"a" * 2000)]),
        UnpackLimits(max_file_size=1000),
        "big.bin",
        "per-file limit",
    ),
    "tar total over limit": (
        lambda d: make_tar(
            d / "a.tar.gz",
            [tinfo("pkg/one.bin", data=b"a" * 900), tinfo("pkg/two.bin", data=b"b" * 900)],
        ),
        UnpackLimits(max_total_size=1500),
        "two.bin",
        "total uncompressed size",
    ),
    "tar too many members": (
        lambda d: make_tar(d / "a.tar", [tinfo(f"pkg/f{i}.txt") for i in range(12)]),
        UnpackLimits(max_members=10),
        "a.tar",
        "more than 10 members",
    ),
    "zip too many members": (
        lambda d: make_zip(d / "a.zip", [(f"f{i}", b"x", REG) for i in range(12)]),
        UnpackLimits(max_members=10),
        "a.zip",
        "more than 10 members",
    ),
    "zip bomb ratio": (
        lambda d: make_zip(d / "bomb.zip", [("pkg/zeros.bin", b"\0" * (2 * 1024 * 1024), REG)]),
        UnpackLimits(),
        "zeros.bin",
        "compression ratio",
    ),
    "zip headers lie about sizes": (
        _zip_lying_sizes,
        UnpackLimits(),
        "big.txt",
        "header",
    ),
    "tar duplicate names": (
        lambda d: make_tar(
            d / "a.tar.gz", [tinfo("pkg/dup.txt", data=b"1"), tinfo("pkg/dup.txt", data=b"2")]
        ),
        UnpackLimits(),
        "dup.txt",
        "duplicate",
    ),
    "zip duplicate names": (
        lambda d: make_zip(d / "a.zip", [("zdup.txt", b"1", REG), ("zdup.txt", b"2", REG)]),
        UnpackLimits(),
        "zdup.txt",
        "duplicate",
    ),
    "tar case collision": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/README"), tinfo("pkg/readme")]),
        UnpackLimits(),
        "readme",
        "case-insensitive",
    ),
    "tar case collision of directories": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/Src/a.py"), tinfo("pkg/src/b.py")]),
        UnpackLimits(),
        "src",
        "case-insensitive",
    ),
    "tar file used as directory": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/plain"), tinfo("pkg/plain/inner.txt")]),
        UnpackLimits(),
        "inner.txt",
        "which is a file",
    ),
    "tar .git component": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/.git/config", data=b"[core]\n")]),
        UnpackLimits(),
        ".git/config",
        "'.git'",
    ),
    "zip .GIT component (any case)": (
        lambda d: make_zip(d / "a.zip", [("sub/.GIT/hooks/post-checkout", b"x", REG)]),
        UnpackLimits(),
        "post-checkout",
        "'.git'",
    ),
    "zip NUL in name": (
        lambda d: patch_bytes(
            make_zip(d / "a.zip", [("nul@name.txt", b"x", REG)]), b"nul@name", b"nul\0name"
        ),
        UnpackLimits(),
        "name.txt",
        "NUL",
    ),
    "tar newline in name": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/new\nline.txt")]),
        UnpackLimits(),
        "line.txt",
        "newline",
    ),
    "tar carriage return in name": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/carriage\rreturn.txt")]),
        UnpackLimits(),
        "return.txt",
        "carriage return",
    ),
    "tar escape character in name": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/esc\x1b[31mred.txt")]),
        UnpackLimits(),
        "red.txt",
        "control character",
    ),
    "tar bidi override in name": (
        lambda d: make_tar(d / "a.tar.gz", [tinfo("pkg/harmless\u202etxt.exe")]),
        UnpackLimits(),
        "harmless",
        "control character",
    ),
    "tar non-UTF-8 name": (
        lambda d: make_tar(
            d / "a.tar", [tinfo("pkg/caf\xe9.txt")], fmt=tarfile.GNU_FORMAT, encoding="latin-1"
        ),
        UnpackLimits(),
        "caf",
        "not valid UTF-8",
    ),
    "zip non-UTF-8 name": (
        lambda d: patch_bytes(
            make_zip(d / "a.zip", [("bad-@-name.txt", b"x", REG)]), b"-@-", b"-\xff-"
        ),
        UnpackLimits(),
        "name.txt",
        "not valid UTF-8",
    ),
}


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_rejected_without_trace(tmp_path: Path, case: str) -> None:
    build, limits, member, rule = HOSTILE[case]
    src = tmp_path / "archives"
    src.mkdir()
    archive = build(src)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "dest"
    before = _snapshot(tmp_path)

    with pytest.raises(UnsafeArchive) as info:
        unpack_archive(archive, dest, limits=limits)

    message = info.value.message
    assert member in message, message
    assert rule in message, message
    assert not dest.exists() and not dest.is_symlink()
    assert list(out.iterdir()) == []  # no staging directory left behind
    assert _snapshot(tmp_path) == before  # nothing written anywhere else
    assert info.value.exit_code == 2


def test_rejection_removes_parents_it_created(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar", [tinfo("../evil")])
    dest = tmp_path / "new" / "deeper" / "dest"
    with pytest.raises(UnsafeArchive):
        unpack_archive(archive, dest)
    assert not (tmp_path / "new").exists()


def test_write_phase_failure_removes_staging(tmp_path: Path) -> None:
    # Valid headers, so validation passes; the data check fails while writing.
    archive = _zip_lying_sizes(tmp_path)
    dest = tmp_path / "out" / "dest"
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafeArchive, match=r"big\.txt"):
        unpack_archive(archive, dest)
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", [tinfo("pkg/a.txt")])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="already exists"):
        unpack_archive(archive, dest)
    assert (dest / "keep.txt").read_text() == "mine"


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "download"
    junk.write_bytes(b"<html>not an archive</html>")
    with pytest.raises(UnsafeArchive, match="not a tar or zip"):
        unpack_archive(junk, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_truncated_tar_gz_is_rejected(tmp_path: Path) -> None:
    good = build_sdist(tmp_path, "trunc", "1.0")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UnsafeArchive):
        unpack_archive(cut, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


# -- happy paths ----------------------------------------------------------------------


def test_sdist_top_directory_is_stripped(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "demo-pkg", "1.2.0")
    dest = tmp_path / "vendor" / "demo"
    unpack_archive(sdist, dest)
    assert (dest / "pyproject.toml").is_file()
    assert (dest / "PKG-INFO").is_file()
    assert (dest / "src" / "demo_pkg" / "__init__.py").read_text().startswith('"""The demo-pkg')
    assert not (dest / "demo_pkg-1.2.0").exists()
    assert [p.name for p in (tmp_path / "vendor").iterdir()] == ["demo"]


def test_strip_can_be_disabled(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "demo", "1.0")
    unpack_archive(sdist, tmp_path / "dest", strip_top=False)
    assert (tmp_path / "dest" / "demo-1.0" / "pyproject.toml").is_file()


def test_wheel_is_not_stripped(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    dest = tmp_path / "dest"
    unpack_archive(wheel, dest)
    assert (dest / "demo" / "__init__.py").read_text() == '__version__ = "1.0"\n'
    assert (dest / "demo-1.0.dist-info" / "RECORD").is_file()


def test_strip_required_but_impossible(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    with pytest.raises(UnsafeArchive, match="single top-level directory"):
        unpack_archive(wheel, tmp_path / "dest", strip_top=True)
    assert not (tmp_path / "dest").exists()


def test_modes_are_normalized(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "m.tar.gz",
        [
            tinfo("pkg/", tarfile.DIRTYPE, mode=0o700),
            tinfo("pkg/deep/", tarfile.DIRTYPE, mode=0o777),
            tinfo("pkg/deep/run.sh", data=b"#!/bin/sh\n", mode=0o750),
            tinfo("pkg/deep/owner-exec", mode=0o100),
            tinfo("pkg/secret.txt", mode=0o600),
            tinfo("pkg/world.txt", mode=0o666),
        ],
    )
    dest = tmp_path / "dest"
    unpack_archive(archive, dest)

    def mode(rel: str) -> int:
        return stat.S_IMODE((dest / rel).stat().st_mode)

    assert mode("deep") == 0o755
    assert mode("deep/run.sh") == 0o755
    assert mode("deep/owner-exec") == 0o755
    assert mode("secret.txt") == 0o644
    assert mode("world.txt") == 0o644
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_zip_exec_bit_and_nested_dirs(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "x.zip",
        [
            ("bin/tool", b"#!/bin/sh\necho hi\n", stat.S_IFREG | 0o755),
            ("lib/a/b/c/data.txt", b"deep\n", REG),
            ("lib/a/empty/", b"", stat.S_IFDIR | 0o700),
        ],
    )
    dest = tmp_path / "dest"
    unpack_archive(archive, dest)
    assert stat.S_IMODE((dest / "bin" / "tool").stat().st_mode) == 0o755
    assert (dest / "lib/a/b/c/data.txt").read_text() == "deep\n"
    assert stat.S_IMODE((dest / "lib/a/empty").stat().st_mode) == 0o755


def test_internal_symlinks_are_kept(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "l.tar.gz",
        [
            tinfo("pkg/docs/guide.md", data=b"# guide\n"),
            tinfo("pkg/README.md", tarfile.SYMTYPE, link="docs/guide.md"),
            tinfo("pkg/docs/up", tarfile.SYMTYPE, link="../README.md"),
            tinfo("pkg/alias", tarfile.SYMTYPE, link="docs"),
        ],
    )
    dest = tmp_path / "dest"
    unpack_archive(archive, dest)
    assert os.readlink(dest / "README.md") == "docs/guide.md"
    assert (dest / "README.md").read_text() == "# guide\n"
    assert os.readlink(dest / "docs" / "up") == "../README.md"
    assert (dest / "alias" / "guide.md").read_text() == "# guide\n"


def test_zip_internal_symlink_kept(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "l.zip", [("real.txt", b"data\n", REG), ("link.txt", b"real.txt", SYMLINK)]
    )
    unpack_archive(archive, tmp_path / "dest")
    assert os.readlink(tmp_path / "dest" / "link.txt") == "real.txt"


def test_unicode_names(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "u.tar.gz",
        [tinfo("pkg/données/café.txt", data=b"ok\n"), tinfo("pkg/日本/名前.py", data=b"x = 1\n")],
    )
    zarchive = make_zip(tmp_path / "u.zip", [("données/é.txt", b"ok\n", REG), ("ñ.py", b"", REG)])
    unpack_archive(archive, tmp_path / "t")
    unpack_archive(zarchive, tmp_path / "z")
    assert (tmp_path / "t" / "données" / "café.txt").read_text() == "ok\n"
    assert (tmp_path / "t" / "日本" / "名前.py").read_text() == "x = 1\n"
    assert (tmp_path / "z" / "données" / "é.txt").read_text() == "ok\n"


def test_dot_slash_prefixed_tar(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "d.tar",
        [
            tinfo("./", tarfile.DIRTYPE, mode=0o755),
            tinfo("./proj/", tarfile.DIRTYPE),
            tinfo("./proj/setup.py", data=b"# setup\n"),
        ],
    )
    unpack_archive(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "setup.py").read_text() == "# setup\n"


def test_format_is_sniffed_when_the_name_does_not_say(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "demo", "1.0")
    wheel = build_wheel(tmp_path, "demo", "1.0")
    anon_tar = tmp_path / "blob1"
    anon_zip = tmp_path / "blob2"
    anon_tar.write_bytes(sdist.read_bytes())
    anon_zip.write_bytes(wheel.read_bytes())
    assert archive_format(anon_tar) is ArchiveFormat.TAR
    assert archive_format(anon_zip) is ArchiveFormat.ZIP
    unpack_archive(anon_tar, tmp_path / "t")
    assert (tmp_path / "t" / "pyproject.toml").is_file()


def test_compressed_formats(tmp_path: Path) -> None:
    formats: tuple[tuple[str, Literal["w:bz2", "w:xz", "w:gz"]], ...] = (
        (".tar.bz2", "w:bz2"),
        (".tar.xz", "w:xz"),
        (".tgz", "w:gz"),
    )
    for suffix, mode in formats:
        path = tmp_path / f"a{suffix}"
        with tarfile.open(path, mode) as tar:
            info, data = tinfo("proj/mod.py", data=b"print(1)\n")
            tar.addfile(info, io.BytesIO(data or b""))
        unpack_archive(path, tmp_path / f"out{suffix}")
        assert (tmp_path / f"out{suffix}" / "mod.py").read_text() == "print(1)\n"
