"""Where advisories come from: a folder of OSV files, an OSV ``all.zip``, or its URL."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..core.errors import BadInput, NotFound
from ..core.observer import Observer
from ..model.config import NetworkLimits

_SUFFIXES = (".json", ".yaml", ".yml")


def _iter_folder(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if path.suffix in _SUFFIXES and path.is_file() and not hidden:  # not .github/*.yml
            yield str(path), path.read_bytes()


def _iter_zip(
    archive: Path | IO[bytes], label: str, member_cap: int
) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInput(
            f"{label} is not a zip archive: {exc}",
            hint="pass a folder of OSV files or an OSV all.zip export",
        ) from None
    with zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.endswith(_SUFFIXES):
                continue
            try:
                with zf.open(info) as member:
                    data = member.read(member_cap + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise BadInput(f"{label} is corrupt at {info.filename}: {exc}") from None
            if len(data) > member_cap:
                raise BadInput(
                    f"{label}: {info.filename} is larger than {member_cap} bytes, "
                    "the max-page-size limit",
                    hint="an advisory is a few kilobytes; raise max-page-size in "
                    "[tool.forkman] only if you trust this export",
                )
            yield f"{label}:{info.filename}", data


def _download(url: str, observer: Observer, limits: NetworkLimits) -> IO[bytes]:
    """`url` streamed into an anonymous temporary file (at most ``max-download-size``)."""
    from ..sources import http as _http

    observer.step("db", f"downloading {_http.redact(url)}")
    out = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, closed by the caller
    try:
        _http.download(
            url,
            out.write,
            limits=limits,
            progress=lambda done, total: observer.progress("db", done, total),
            what="advisory export",
            hint="check the URL and your connection, or pass --from with a local copy",
        )
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def iter_source(
    source: str, observer: Observer, limits: NetworkLimits | None = None
) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) of every advisory file in a folder, zip file or zip URL.

    A URL is read within the network limits (``network-timeout``,
    ``max-download-size``); each advisory in a zip is at most ``max-page-size``.
    """
    limits = limits if limits is not None else NetworkLimits()
    if source.startswith(("http://", "https://")):
        with _download(source, observer, limits) as archive:
            yield from _iter_zip(archive, source, limits.max_page_size)
        return
    path = Path(source)
    if path.is_dir():
        yield from _iter_folder(path)
    elif path.is_file():
        yield from _iter_zip(path, str(path), limits.max_page_size)
    else:
        raise NotFound(
            f"advisory source {source} does not exist",
            hint="pass a folder of OSV files, an OSV all.zip export, or its URL",
        )
