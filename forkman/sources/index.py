"""Releases from a package index: the simple API (PEP 503 HTML, PEP 691 JSON).

The flow is ``parse_requirement`` -> ``IndexClient.project_files`` ->
``select_release`` -> ``download``, composed by :func:`fetch_release`.
Downloads land in a content-addressed cache
(``cache_root()/downloads/<sha256>/<filename>``) and are checked against the
sha256 the index announced before they become visible there; a file without
an announced sha256 is refused. A cached file is re-hashed before every use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .. import __version__
from .._errors import BadInput, IntegrityError, NetworkError, NotFound
from .._lock import IndexSource
from .._observer import NullObserver, Observer
from .._project import cache_root
from .interface import DistKind, ReleaseFile, UpstreamRelease

__all__ = [
    "ACCEPT",
    "DEFAULT_MAX_DOWNLOAD",
    "IndexClient",
    "download",
    "fetch_exact",
    "fetch_release",
    "find_release",
    "parse_requirement",
    "release_file_from_name",
    "select_release",
]

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
"""What forkman asks an index for: PEP 691 JSON first, HTML as a fallback."""

DEFAULT_MAX_DOWNLOAD = 512 * 1024 * 1024
"""Largest release file forkman downloads, in bytes."""

_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 16
_SPEC_EXAMPLE = "e.g. 'attrs==23.1.0', 'packaging>=24,<25' or 'attrs'"
_OFFLINE_HINT = (
    "check the index URL (--index-url or [tool.forkman] index-url) and your network; "
    "commands that need no download (forkman check, status) work offline"
)


class _SharedSession(requests.Session):
    """The process's one HTTP session: every index client shares its connection pools
    (and the TLS set-up, which costs ~20 ms per pool with a custom CA bundle)."""

    def close(self) -> None:
        """Kept open for the next client; the interpreter closes it at exit."""


_shared: _SharedSession | None = None
_shared_pid = 0
_shared_guard = threading.Lock()


def _session() -> requests.Session:
    """The shared session (a fresh one in a forked child process)."""
    global _shared, _shared_pid
    with _shared_guard:
        if _shared is None or _shared_pid != os.getpid():
            _shared = _SharedSession()
            _shared.headers["User-Agent"] = f"forkman/{__version__}"
            _shared_pid = os.getpid()
        return _shared


class IndexClient:
    """Reads project pages from one or more simple-API indexes, in order."""

    def __init__(
        self,
        index_urls: Sequence[str],
        *,
        observer: Observer = NullObserver(),
        timeout: float = 30.0,
    ) -> None:
        if not index_urls:
            raise BadInput(
                "no package index configured",
                hint="pass --index-url https://pypi.org/simple/ or set index-url in [tool.forkman]",
            )
        self.index_urls = [u if u.endswith("/") else u + "/" for u in index_urls]
        self.observer = observer
        self.timeout = timeout
        self.session = _session()

    def project_files(self, name: str) -> tuple[str, list[ReleaseFile]]:
        """The files of project `name` on the first index that knows it.

        Returns the index URL it was found on and its parseable release files.
        An index that cannot be reached is an error, not a reason to try the
        next one: silently falling through to another index could fetch a
        different project of the same name.
        """
        canon = canonicalize_name(name)
        for index_url in self.index_urls:
            page_url = urljoin(index_url, f"{canon}/")
            self.observer.step(canon, f"looking up {canon} on {index_url}")
            try:
                resp = self.session.get(page_url, headers={"Accept": ACCEPT}, timeout=self.timeout)
            except requests.RequestException as exc:
                raise NetworkError(
                    f"cannot reach the package index {index_url}: {_short(exc)}",
                    hint=_OFFLINE_HINT,
                ) from exc
            with resp:
                if resp.status_code in (404, 410):
                    continue
                if resp.status_code != 200:
                    raise NetworkError(
                        f"the package index {index_url} answered HTTP {resp.status_code} "
                        f"for {page_url}",
                        hint=_OFFLINE_HINT,
                    )
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype == _JSON_TYPE:
                    files = _parse_json(resp.content, resp.url, index_url)
                elif ctype in _HTML_TYPES:
                    files = _parse_html(resp.text, resp.url)
                else:
                    raise NetworkError(
                        f"the package index {index_url} answered with content type "
                        f"{ctype or 'none'!r}, which is not a simple-API page",
                        hint="point --index-url at a PEP 503/691 simple index, e.g. "
                        "https://pypi.org/simple/",
                    )
            return index_url, [f for f in files if _project_of(f) == canon]
        raise NotFound(
            f"package {canon!r} was not found on {', '.join(self.index_urls)}",
            hint="check the spelling, or add the index that hosts it with --index-url",
        )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def release_file_from_name(
    filename: str,
    url: str,
    sha256: str | None,
    *,
    yanked: bool = False,
    yanked_reason: str | None = None,
    requires_python: str | None = None,
    provenance_url: str | None = None,
) -> ReleaseFile | None:
    """A ReleaseFile for `filename`, or None when it is neither an sdist nor a wheel."""
    try:
        if filename.endswith(".whl"):
            _name, version, _build, _tags = parse_wheel_filename(filename)
            kind = DistKind.WHEEL
        else:
            _name, version = parse_sdist_filename(filename)
            kind = DistKind.SDIST
    except (InvalidSdistFilename, InvalidWheelFilename, InvalidVersion):
        return None
    return ReleaseFile(
        filename=filename,
        url=url,
        sha256=sha256.lower() if sha256 else None,
        version=version,
        kind=kind,
        yanked=yanked,
        requires_python=requires_python or None,
        provenance_url=provenance_url or None,
        yanked_reason=yanked_reason or None,
    )


def _project_of(file: ReleaseFile) -> str:
    if file.kind is DistKind.WHEEL:
        return str(parse_wheel_filename(file.filename)[0])
    return str(parse_sdist_filename(file.filename)[0])


def _parse_json(body: bytes, page_url: str, index_url: str) -> list[ReleaseFile]:
    try:
        data = json.loads(body)
        entries = data["files"]
        if not isinstance(entries, list):
            raise TypeError("'files' is not a list")
        api_version = str((data.get("meta") or {}).get("api-version", "1.0"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NetworkError(
            f"the package index {index_url} sent a malformed PEP 691 page: {exc}"
        ) from exc
    if api_version.split(".")[0] != "1":
        raise NetworkError(
            f"the package index {index_url} speaks simple API version {api_version}, "
            "which this forkman does not understand",
            hint="upgrade forkman, or use an index that serves API version 1",
        )
    files = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        filename = entry.get("filename")
        href = entry.get("url")
        if not isinstance(filename, str) or not isinstance(href, str):
            continue
        hashes: Any = entry.get("hashes") or {}
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        yanked_raw = entry.get("yanked", False)
        yanked = bool(yanked_raw)
        reason = yanked_raw if isinstance(yanked_raw, str) else None
        rp = entry.get("requires-python")
        prov = entry.get("provenance")
        url = urldefrag(urljoin(page_url, href)).url
        f = release_file_from_name(
            filename,
            url,
            sha if isinstance(sha, str) else None,
            yanked=yanked,
            yanked_reason=reason,
            requires_python=rp if isinstance(rp, str) else None,
            provenance_url=urljoin(page_url, prov) if isinstance(prov, str) else None,
        )
        if f is not None:
            files.append(f)
    return files


class _LinkParser(HTMLParser):
    """Collects the anchors of a PEP 503 project page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._current = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def _parse_html(text: str, page_url: str) -> list[ReleaseFile]:
    parser = _LinkParser()
    parser.feed(text)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for attrs, _label in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        sha = None
        if fragment.startswith("sha256="):
            sha = fragment.removeprefix("sha256=")
        yanked = "data-yanked" in attrs
        prov = attrs.get("data-provenance")
        f = release_file_from_name(
            filename,
            url,
            sha,
            yanked=yanked,
            yanked_reason=attrs.get("data-yanked") or None,
            requires_python=attrs.get("data-requires-python"),
            provenance_url=urljoin(base, prov) if prov else None,
        )
        if f is not None:
            files.append(f)
    return files


# -- selection ----------------------------------------------------------------------


def _pinned_versions(specifier: SpecifierSet) -> tuple[set[Version], set[str]]:
    """Versions the specifier pins exactly (== without wildcard, or ===)."""
    exact: set[Version] = set()
    arbitrary: set[str] = set()
    for spec in specifier:
        if spec.operator == "===":
            arbitrary.add(spec.version)
        elif spec.operator == "==" and not spec.version.endswith(".*"):
            with contextlib.suppress(InvalidVersion):
                exact.add(Version(spec.version))
    return exact, arbitrary


@functools.cache
def _host_tags() -> dict[Any, int]:
    """This interpreter's wheel tags, most specific first (their rank)."""
    from packaging.tags import sys_tags

    ranks: dict[Any, int] = {}
    for rank, tag in enumerate(sys_tags()):
        ranks.setdefault(tag, rank)
    return ranks


def _file_rank(file: ReleaseFile, prefer: DistKind) -> tuple[int, int, int, str]:
    """Sort key: the preferred kind first; a pure wheel, then the wheel this interpreter
    would install, then other wheels; the ``.tar.gz`` sdist before others."""
    kind_rank = 0 if file.kind is prefer else 1
    host = 0
    if file.kind is DistKind.WHEEL:
        tags = file.filename[: -len(".whl")].split("-")[-3:]
        pure = tags[1:] == ["none", "any"] and tags[0] in ("py3", "py2.py3")
        detail = 0 if pure else 1
        if not pure:
            try:
                wheel_tags = parse_wheel_filename(file.filename)[3]
            except InvalidWheelFilename:
                wheel_tags = frozenset()
            ranks = _host_tags()
            host = min((ranks[t] for t in wheel_tags if t in ranks), default=len(ranks) + 1)
    else:
        detail = 0 if file.filename.endswith(".tar.gz") else 1
    return kind_rank, detail, host, file.filename


def select_release(
    files: Sequence[ReleaseFile],
    specifier: SpecifierSet,
    *,
    prereleases: bool,
    prefer: DistKind,
    name: str = "",
) -> ReleaseFile:
    """The file to fork: newest version matching `specifier`, preferred kind first.

    Yanked files count only for an exact pin of their version (PEP 592).
    Pre-releases count only when `prereleases` is set or the specifier names
    one. Raises :class:`NotFound` listing what is available otherwise.
    """
    label = name or "the package"
    exact, arbitrary = _pinned_versions(specifier)
    allow_pre = prereleases or bool(specifier.prereleases)
    by_version: dict[Version, list[ReleaseFile]] = {}
    for f in files:
        by_version.setdefault(f.version, []).append(f)
    only_pre: list[Version] = []
    only_yanked: list[Version] = []
    for version in sorted(by_version, reverse=True):
        if not specifier.contains(version, prereleases=True):
            continue
        if version.is_prerelease and not allow_pre:
            only_pre.append(version)
            continue
        pinned = version in exact or str(version) in arbitrary
        usable = [f for f in by_version[version] if pinned or not f.yanked]
        if not usable:
            only_yanked.append(version)
            continue
        return min(usable, key=lambda f: _file_rank(f, prefer))
    wanted = str(specifier) or "any version"
    if not by_version:
        raise NotFound(f"{label} has no sdist or wheel files on the index")
    newest = sorted(by_version, reverse=True)[:8]
    message = f"no release of {label} matches {wanted!r}"
    details = [f"newest available: {', '.join(str(v) for v in newest)}"]
    if only_pre:
        details.append(
            f"{', '.join(str(v) for v in only_pre[:5])} would match but "
            f"{'is a pre-release' if len(only_pre) == 1 else 'are pre-releases'}"
        )
    if only_yanked:
        details.append(
            f"{', '.join(str(v) for v in only_yanked[:5])} would match but "
            f"{'is' if len(only_yanked) == 1 else 'are'} yanked"
        )
    hint = "choose one of the available versions"
    if only_pre:
        hint += "; allow pre-releases with --pre (or prereleases = true in [tool.forkman])"
    if only_yanked:
        hint += "; a yanked release is used only when pinned exactly with '=='"
    raise NotFound(f"{message} ({'; '.join(details)})", hint=hint)


# -- requirement parsing ------------------------------------------------------------


def parse_requirement(spec: str) -> tuple[str, SpecifierSet]:
    """The canonical name and version specifier of `spec` (extras are ignored)."""
    text = spec.strip()
    if not text:
        raise BadInput("empty requirement", hint=f"give a package and version, {_SPEC_EXAMPLE}")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise BadInput(
            f"{spec!r} is not a valid requirement: {str(exc).splitlines()[0]}",
            hint=f"give a package and version, {_SPEC_EXAMPLE}; "
            "git upstreams look like git+https://host/org/repo@v1.2.0",
        ) from exc
    if req.url:
        raise BadInput(
            f"{spec!r} is a URL requirement, which forkman does not fetch from an index",
            hint=f"name a release on the index, {_SPEC_EXAMPLE}; for git upstreams use "
            "git+https://host/org/repo@ref",
        )
    if req.marker is not None:
        raise BadInput(
            f"{spec!r} has an environment marker; a fork is not tied to an environment",
            hint=f"drop the part after ';', {_SPEC_EXAMPLE}",
        )
    return canonicalize_name(req.name), req.specifier


# -- downloading --------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_filename(filename: str) -> str:
    if (
        not filename
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
        or "\x00" in filename
    ):
        raise IntegrityError(f"the index announced an unsafe file name {filename!r}")
    return filename


def download(
    file: ReleaseFile,
    *,
    cache_dir: Path | None = None,
    observer: Observer = NullObserver(),
    session: requests.Session | None = None,
    max_size: int = DEFAULT_MAX_DOWNLOAD,
    timeout: float = 30.0,
) -> Path:
    """The verified local copy of `file`: from the cache, or downloaded and checked.

    `cache_dir` is the cache root (default :func:`cache_root`); the file lives
    at ``<cache_dir>/downloads/<sha256>/<filename>``. The download streams to
    a temporary file beside it and is renamed into place only once its sha256
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
    folder = (cache_dir if cache_dir is not None else cache_root()) / "downloads" / expected
    target = folder / filename
    subject = filename
    if target.is_file() and not target.is_symlink():
        if _sha256_file(target) == expected:
            observer.step(subject, "verified cache")
            return target
        observer.warning(f"cached {filename} does not match its sha256; downloading it again")
        target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    own_session = session is None
    sess = session if session is not None else _session()
    try:
        observer.step(subject, f"downloading {file.url}")
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                resp = sess.get(file.url, stream=True, timeout=timeout)
            except requests.RequestException as exc:
                raise NetworkError(
                    f"cannot download {file.url}: {_short(exc)}", hint=_OFFLINE_HINT
                ) from exc
            with resp:
                if resp.status_code != 200:
                    raise NetworkError(
                        f"downloading {file.url} failed with HTTP {resp.status_code}",
                        hint=_OFFLINE_HINT,
                    )
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if total is not None and total > max_size:
                    raise _too_large(file, max_size)
                done = 0
                try:
                    for chunk in resp.iter_content(_CHUNK):
                        done += len(chunk)
                        if done > max_size:
                            raise _too_large(file, max_size)
                        digest.update(chunk)
                        out.write(chunk)
                        observer.progress(subject, done, total)
                except requests.RequestException as exc:
                    raise NetworkError(
                        f"download of {file.url} was interrupted: {_short(exc)}",
                        hint=_OFFLINE_HINT,
                    ) from exc
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
    finally:
        if own_session:
            sess.close()


def _too_large(file: ReleaseFile, max_size: int) -> IntegrityError:
    return IntegrityError(
        f"{file.filename} is larger than the download limit of {max_size} bytes",
        hint="a release this large is refused as a precaution",
    )


# -- composition --------------------------------------------------------------------


def find_release(
    spec: str,
    *,
    index_urls: Sequence[str],
    prefer: DistKind = DistKind.SDIST,
    prereleases: bool = False,
    observer: Observer = NullObserver(),
    client: IndexClient | None = None,
) -> tuple[str, ReleaseFile]:
    """The index URL and the file that `spec` selects, without downloading it."""
    name, specifier = parse_requirement(spec)
    client = client if client is not None else IndexClient(index_urls, observer=observer)
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
) -> UpstreamRelease:
    """Find, choose, download and verify the release file that `spec` asks for."""
    name, _specifier = parse_requirement(spec)
    client = IndexClient(index_urls, observer=observer)
    try:
        index_url, chosen = find_release(
            spec,
            index_urls=index_urls,
            prefer=prefer,
            prereleases=prereleases,
            observer=observer,
            client=client,
        )
        path = download(chosen, observer=observer, session=client.session)
    finally:
        client.session.close()
    assert chosen.sha256 is not None  # download refuses files without one
    return UpstreamRelease(
        name=name,
        version=chosen.version,
        file=chosen,
        index_url=index_url,
        path=path,
        sha256=chosen.sha256,
    )


def fetch_exact(
    source: IndexSource,
    *,
    observer: Observer = NullObserver(),
) -> Path:
    """The recorded file of `source`, from the verified cache or its recorded URL."""
    file = release_file_from_name(source.filename, source.url, source.sha256)
    if file is None:
        raise IntegrityError(
            f"the lock records {source.filename!r}, which is neither an sdist nor a wheel"
        )
    return download(file, observer=observer)
