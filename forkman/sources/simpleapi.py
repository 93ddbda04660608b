"""Project pages of a package index: the simple API (PEP 503 HTML, PEP 691 JSON).

Each parser turns a page into the :class:`~forkman.sources.interface.ReleaseFile`
objects it lists (sdists and wheels; any other file is left out), with the
sha256, yanked state, ``Requires-Python`` and provenance URL it announces.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion

from ..core.errors import NetworkError
from .interface import DistKind, ReleaseFile


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
