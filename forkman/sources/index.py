"""Releases from a package index: the simple API (PEP 503 HTML, PEP 691 JSON).

The flow is ``parse_requirement`` -> ``IndexClient.project_files`` ->
``select_release`` -> ``download``, composed by :func:`fetch_release`. The
pages are parsed in :mod:`.simpleapi`, requirements and the choice of a file
live in :mod:`.selection`.
Downloads land in a content-addressed cache
(``cache_root()/downloads/<sha256>/<filename>``) and are checked against the
sha256 the index announced before they become visible there; a file without
an announced sha256 is refused. A cached file is re-hashed before every use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

import requests
from packaging.utils import canonicalize_name

from ..core.errors import BadInput, IntegrityError, NetworkError, NotFound
from ..core.fs import file_sha256
from ..core.observer import NullObserver, Observer
from ..model.config import NetworkLimits
from ..model.lock import IndexSource
from ..model.project import cache_root
from . import http as _http
from .interface import DistKind, ReleaseFile, UpstreamRelease
from .selection import parse_requirement, select_release
from .simpleapi import _parse_html, _parse_json, _project_of, release_file_from_name

__all__ = [
    "ACCEPT",
    "IndexClient",
    "cached_file",
    "configured_index",
    "download",
    "fetch_exact",
    "fetch_release",
    "find_release",
    "parse_requirement",
    "release_file_from_name",
    "resolve_recorded",
    "select_release",
]

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
"""What forkman asks an index for: PEP 691 JSON first, HTML as a fallback."""

_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OFFLINE_HINT = (
    "check the index URL (--index-url or [tool.forkman] index-url) and your network; "
    "commands that need no download (forkman check, status) work offline"
)


class IndexClient:
    """Reads project pages from one or more simple-API indexes, in order."""

    def __init__(
        self,
        index_urls: Sequence[str],
        *,
        observer: Observer = NullObserver(),
        limits: NetworkLimits | None = None,
    ) -> None:
        if not index_urls:
            raise BadInput(
                "no package index configured",
                hint="pass --index-url https://pypi.org/simple/ or set index-url in [tool.forkman]",
            )
        self.index_urls = [u if u.endswith("/") else u + "/" for u in index_urls]
        self.observer = observer
        self.limits = limits if limits is not None else NetworkLimits()
        self.session = _http.session()

    def project_files(self, name: str) -> tuple[str, list[ReleaseFile]]:
        """The files of project `name` on the first index that knows it.

        Returns the index URL it was found on and its parseable release files.
        An index that cannot be reached is an error, not a reason to try the
        next one: silently falling through to another index could fetch a
        different project of the same name. Each page is read within the
        network limits (``network-timeout``, ``max-page-size``).
        """
        canon = canonicalize_name(name)
        for index_url in self.index_urls:
            page_url = urljoin(index_url, f"{canon}/")
            shown = _http.redact(index_url)
            self.observer.step(canon, f"looking up {canon} on {shown}")
            resp = _http.get(
                page_url, limits=self.limits, accept=ACCEPT, client=self.session, what="index page"
            )
            if resp.status in (404, 410):
                continue
            if resp.status != 200:
                raise NetworkError(
                    f"the package index {shown} answered HTTP {resp.status} "
                    f"for {_http.redact(page_url)}",
                    hint=_OFFLINE_HINT,
                )
            if resp.content_type == _JSON_TYPE:
                files = _parse_json(resp.body, resp.url, shown)
            elif resp.content_type in _HTML_TYPES:
                files = _parse_html(resp.text, resp.url)
            else:
                raise NetworkError(
                    f"the package index {shown} answered with content type "
                    f"{resp.content_type or 'none'!r}, which is not a simple-API page",
                    hint="point --index-url at a PEP 503/691 simple index, e.g. "
                    "https://pypi.org/simple/",
                )
            return index_url, [f for f in files if _project_of(f) == canon]
        raise NotFound(
            f"package {canon!r} was not found on "
            f"{', '.join(_http.redact(u) for u in self.index_urls)}",
            hint="check the spelling, or add the index that hosts it with --index-url",
        )


# -- downloading --------------------------------------------------------------------


def _unsafe_filename(filename: str) -> bool:
    return (
        not filename
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
        or "\x00" in filename
    )


def _safe_filename(filename: str) -> str:
    if _unsafe_filename(filename):
        raise IntegrityError(f"the index announced an unsafe file name {filename!r}")
    return filename


def cached_file(sha256: str, filename: str, *, cache_dir: Path | None = None) -> Path | None:
    """The download cache's copy of `filename` with `sha256`, if present (not re-hashed).

    Both parts come from a lock or an index page: a malformed hash or a file
    name that is not a plain name gives None, never a path elsewhere.
    """
    if not _SHA256.match(sha256.lower()) or _unsafe_filename(filename):
        return None
    path = (cache_dir if cache_dir is not None else cache_root()) / "downloads"
    path = path / sha256.lower() / filename
    return path if path.is_file() and not path.is_symlink() else None


def download(
    file: ReleaseFile,
    *,
    cache_dir: Path | None = None,
    observer: Observer = NullObserver(),
    session: requests.Session | None = None,
    limits: NetworkLimits | None = None,
) -> Path:
    """The verified local copy of `file`: from the cache, or downloaded and checked.

    `cache_dir` is the cache root (default :func:`cache_root`); the file lives
    at ``<cache_dir>/downloads/<sha256>/<filename>``. The download streams to
    a temporary file beside it, within the network limits (``network-timeout``,
    ``max-download-size``), and is renamed into place only once its sha256
    matches the announced one.
    """
    if not file.sha256:
        raise IntegrityError(
            f"the index announces no sha256 for {file.filename}; forkman will not fork "
            "a file it cannot verify",
            hint="use an index that publishes sha256 hashes (PyPI does)",
        )
    expected = file.sha256.lower()
    if not _SHA256.match(expected):
        raise IntegrityError(f"the index announced a malformed sha256 for {file.filename}")
    filename = _safe_filename(file.filename)
    limits = limits if limits is not None else NetworkLimits()
    folder = (cache_dir if cache_dir is not None else cache_root()) / "downloads" / expected
    target = folder / filename
    subject = filename
    if target.is_file() and not target.is_symlink():
        if file_sha256(target) == expected:
            observer.step(subject, "verified cache")
            return target
        observer.warning(f"cached {filename} does not match its sha256; downloading it again")
        target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        observer.step(subject, f"downloading {_http.redact(file.url)}")
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:

            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            _http.download(
                file.url,
                sink,
                limits=limits,
                progress=lambda done, total: observer.progress(subject, done, total),
                client=session,
                what="release file",
            )
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != expected:
            raise IntegrityError(
                f"sha256 mismatch for {filename}: expected {expected}, got {got}",
                hint="the file differs from what the index announced; nothing was kept. "
                "Retry later or report it to the index operator",
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        observer.step(subject, "downloaded and verified")
        return target
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
        raise


# -- composition --------------------------------------------------------------------


def find_release(
    spec: str,
    *,
    index_urls: Sequence[str],
    prefer: DistKind = DistKind.SDIST,
    prereleases: bool = False,
    observer: Observer = NullObserver(),
    client: IndexClient | None = None,
    limits: NetworkLimits | None = None,
) -> tuple[str, ReleaseFile]:
    """The index URL and the file that `spec` selects, without downloading it."""
    name, specifier = parse_requirement(spec)
    if client is None:
        client = IndexClient(index_urls, observer=observer, limits=limits)
    index_url, files = client.project_files(name)
    chosen = select_release(files, specifier, prereleases=prereleases, prefer=prefer, name=name)
    if chosen.yanked:
        reason = f": {chosen.yanked_reason}" if chosen.yanked_reason else ""
        observer.warning(f"{chosen.filename} is yanked{reason}")
    return index_url, chosen


def fetch_release(
    spec: str,
    *,
    index_urls: Sequence[str],
    prefer: DistKind,
    prereleases: bool,
    observer: Observer = NullObserver(),
    limits: NetworkLimits | None = None,
) -> UpstreamRelease:
    """Find, choose, download and verify the release file that `spec` asks for."""
    name, _specifier = parse_requirement(spec)
    client = IndexClient(index_urls, observer=observer, limits=limits)
    index_url, chosen = find_release(
        spec,
        index_urls=index_urls,
        prefer=prefer,
        prereleases=prereleases,
        observer=observer,
        client=client,
    )
    path = download(chosen, observer=observer, session=client.session, limits=client.limits)
    assert chosen.sha256 is not None  # download refuses files without one
    return UpstreamRelease(
        name=name,
        version=chosen.version,
        file=chosen,
        index_url=index_url,
        path=path,
        sha256=chosen.sha256,
    )


# -- the lock's file, through the configured index -------------------------------------


def _index_key(url: str) -> tuple[str, str, int | None, str]:
    """An index URL compared without credentials, host case, default port or final slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/") + "/"


def configured_index(recorded: str, index_urls: Sequence[str]) -> str | None:
    """The configured index URL (as configured, credentials included) that `recorded` names.

    A lock records the index a file came from; forkman only ever contacts the
    configured indexes, so a recorded index that is not one of them gives None.
    """
    key = _index_key(recorded)
    for url in index_urls:
        if _index_key(url) == key and not urlsplit(url).query:
            return url if url.endswith("/") else url + "/"
    return None


def _url_key(url: str) -> str:
    """A file URL compared without credentials or fragment."""
    parts = urlsplit(urldefrag(url.strip()).url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1].lower()))


def _check_recorded(source: IndexSource, index_urls: Sequence[str]) -> str:
    """The configured index of `source`, after the checks that need no network."""
    if _unsafe_filename(source.filename):
        raise IntegrityError(
            f"the lock records an unsafe file name {source.filename!r}",
            hint="a file name never contains a path; restore forkman.lock from a trusted revision",
        )
    if not _SHA256.match(source.sha256.lower()):
        raise IntegrityError(
            f"the lock records a malformed sha256 for {source.filename}",
            hint="restore forkman.lock from a trusted revision",
        )
    index = configured_index(source.index_url, index_urls)
    if index is None:
        configured = ", ".join(_http.redact(u) for u in index_urls) or "none"
        raise IntegrityError(
            f"the lock records {source.filename} from {_http.redact(source.index_url)}, "
            f"which is not a configured index (configured: {configured})",
            hint="forkman downloads only from [tool.forkman] index-url and extra-index-urls; "
            "if you trust that index add it there, else fork the release again from a "
            "configured index",
        )
    return index


def resolve_recorded(
    source: IndexSource,
    *,
    index_urls: Sequence[str],
    observer: Observer = NullObserver(),
    limits: NetworkLimits | None = None,
    client: IndexClient | None = None,
) -> ReleaseFile:
    """The file the configured index announces now for the lock's `source`.

    The lock says which file (name and sha256) and on which index; the index
    says where it is. Raises :class:`IntegrityError` when the recorded index
    is not configured, when the index no longer lists the file, announces
    another sha256 for it, has yanked it (PEP 592), or gives another URL than
    the lock records. The lock's own ``url`` is never fetched.
    """
    index = _check_recorded(source, index_urls)
    shown = _http.redact(index)
    sdist = release_file_from_name(source.filename, source.url, source.sha256)
    if sdist is None:
        raise IntegrityError(
            f"the lock records {source.filename!r}, which is neither an sdist nor a wheel"
        )
    project = _project_of(sdist)
    client = (
        client if client is not None else IndexClient([index], observer=observer, limits=limits)
    )
    try:
        _found, files = client.project_files(project)
    except NotFound:
        files = []
    named = [f for f in files if f.filename == source.filename]
    if not named:
        raise IntegrityError(
            f"the index {shown} no longer lists {source.filename}",
            hint="the file was removed from the index; find out why before trusting the "
            f"vendored copy, and move to a release the index serves (`forkman sync {project}`)",
        )
    recorded = source.sha256.lower()
    current = [f for f in named if f.sha256 == recorded]
    if not current:
        announced = ", ".join(sorted({f.sha256 or "no sha256" for f in named}))
        raise IntegrityError(
            f"the index {shown} no longer announces sha256 {recorded} for {source.filename} "
            f"(it announces {announced})",
            hint="the file changed on the index after it was forked, or the lock was edited; "
            "trust neither copy until you know why (compare with the lock's history: "
            "`git log -p forkman.lock`)",
        )
    file = current[0]
    if file.yanked:
        reason = f" ({file.yanked_reason})" if file.yanked_reason else ""
        raise IntegrityError(
            f"the index {shown} has yanked {source.filename}{reason}",
            hint=f"a yanked release is withdrawn by its publisher; move to another release "
            f"with `forkman sync {project} --to VERSION`",
        )
    if _url_key(file.url) != _url_key(source.url):
        raise IntegrityError(
            f"the lock records {_http.redact(source.url)} for {source.filename}, "
            f"but the index {shown} gives {_http.redact(file.url)}",
            hint="the lock's url must be the one the configured index announces; restore "
            "forkman.lock from a trusted revision or fork the release again",
        )
    return file


def fetch_exact(
    source: IndexSource,
    *,
    index_urls: Sequence[str],
    observer: Observer = NullObserver(),
    limits: NetworkLimits | None = None,
    recheck: bool = False,
) -> Path:
    """The recorded file of `source`: from the verified cache, else through the configured index.

    The recorded index must be a configured one. With `recheck` (what
    ``verify`` does) the index is always asked whether it still announces the
    file's sha256 (see :func:`resolve_recorded`); otherwise a cached copy with
    the recorded sha256 is used without asking. A download always goes to the
    URL the configured index gives now, never to the lock's ``url``.
    """
    _check_recorded(source, index_urls)
    if not recheck:
        cached = cached_file(source.sha256, source.filename)
        if cached is not None and file_sha256(cached) == source.sha256.lower():
            observer.step(source.filename, "verified cache")
            return cached
    file = resolve_recorded(source, index_urls=index_urls, observer=observer, limits=limits)
    return download(file, observer=observer, limits=limits)
