"""Who published a release: PEP 740 provenance and Sigstore bundles, verified offline.

Verification uses the Sigstore trusted root that ships inside the ``sigstore``
package (no TUF refresh, no network): a PEP 740 provenance object through
``pypi-attestations``, or a plain Sigstore bundle through sigstore's
``verify_artifact``. The result is a :class:`Publisher`: the verified identity
(kind, repository, workflow or CI file, environment, ref) that forkman records
in the lock and compares on the next sync.

Failures raise :class:`SecurityError`: forkman fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ..core.errors import BadInput, IntegrityError, NetworkError, NotFound, SecurityError
from ..core.fs import file_sha256
from ..model.config import NetworkLimits
from ..model.lock import IndexSource, LockEntry
from ..model.project import Project
from ..sources.interface import ReleaseFile
from ..store.txn import record_section
from .attestation import (
    _from_pep740_publisher,
    verify_any,
    verify_attestation,
    verify_bundle,
    verify_provenance,
)
from .publisher import (
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    GOOGLE_ISSUER,
    Publisher,
    PublisherKind,
    check_publisher_change,
    publisher_from_certificate,
)

__all__ = [
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "GOOGLE_ISSUER",
    "ProvenanceCheck",
    "Publisher",
    "PublisherKind",
    "_from_pep740_publisher",
    "check_publisher_change",
    "check_release",
    "downloaded_file",
    "fetch_provenance",
    "provenance_url_from_index",
    "publisher_from_certificate",
    "verify_any",
    "verify_attestation",
    "verify_bundle",
    "verify_fork",
    "verify_provenance",
]


# -- fetching ---------------------------------------------------------------------------


def fetch_provenance(
    release_file: ReleaseFile, *, limits: NetworkLimits | None = None
) -> bytes | None:
    """The PEP 740 provenance the index announces for `release_file` (None: none announced).

    An announced provenance that cannot be fetched is an error, not "no
    provenance": that would let a failing index downgrade a release to
    unattested. The read is bounded (``network-timeout``, ``max-page-size``).
    """
    if not release_file.provenance_url:
        return None
    return _get(release_file.provenance_url, limits=limits)


def _get(url: str, *, limits: NetworkLimits | None = None, accept: str | None = None) -> bytes:
    from ..sources import http as _http

    hint = "the index announced it; retry when the index is reachable"
    resp = _http.get(
        url,
        limits=limits if limits is not None else NetworkLimits(),
        accept=accept,
        what="provenance",
        hint=hint,
    )
    if resp.status != 200:
        raise NetworkError(
            f"could not fetch {_http.redact(url)}: HTTP {resp.status}",
            hint=hint,
        )
    return resp.body


class _ProvenanceLinks(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.links: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        d = dict(attrs)
        href = d.get("href") or ""
        filename = href.split("#", 1)[0].rsplit("/", 1)[-1]
        prov = d.get("data-provenance")
        self.links[filename] = urljoin(self.base, prov) if prov else None


def provenance_url_from_index(
    index_url: str, name: str, filename: str, *, limits: NetworkLimits | None = None
) -> str | None:
    """Ask the simple API (JSON, else HTML) which provenance URL it announces for `filename`."""
    from packaging.utils import canonicalize_name

    page = urljoin(index_url.rstrip("/") + "/", f"{canonicalize_name(name)}/")
    raw = _get(
        page,
        limits=limits,
        accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1",
    )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        parser = _ProvenanceLinks(page)
        parser.feed(raw.decode("utf-8", "replace"))
        return parser.links.get(filename)
    for entry in data.get("files", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and entry.get("filename") == filename:
            prov = entry.get("provenance")
            return urljoin(page, prov) if isinstance(prov, str) and prov else None
    return None


def check_release(
    release_file: ReleaseFile,
    dist_path: Path,
    previous: Mapping[str, Any] | None,
    *,
    accept: bool = False,
    require: bool = False,
    limits: NetworkLimits | None = None,
) -> Publisher | None:
    """What fork and sync do with a downloaded release: fetch the provenance the index
    announces, verify it, and apply the publisher policy against the recorded
    `previous` publisher. Returns the verified publisher (None: the release is
    unattested and the policy allows it); raises SecurityError otherwise."""
    raw = fetch_provenance(release_file, limits=limits)
    publisher = verify_provenance(dist_path, raw) if raw is not None else None
    check_publisher_change(previous, publisher, accept=accept, require=require)
    return publisher


# -- forks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenanceCheck:
    """The outcome of `forkman provenance NAME`."""

    name: str
    """The fork."""
    filename: str
    """The verified distribution file."""
    publisher: Publisher
    """Who published it (verified)."""
    source: str
    """Where the provenance came from (URL or file)."""


def downloaded_file(sha256: str, filename: str) -> Path:
    """Where the download cache keeps a file (both parts come from the lock: checked)."""
    from ..model.project import cache_root
    from ..sources.index import _SHA256, _safe_filename

    if not _SHA256.match(sha256):
        raise IntegrityError(f"the lock records a malformed sha256 for {filename!r}")
    return cache_root() / "downloads" / sha256 / _safe_filename(filename)


def verify_fork(
    project: Project,
    name: str,
    *,
    attestation: Path | None = None,
    accept: bool = False,
    record: bool = True,
) -> ProvenanceCheck:
    """Verify the provenance of fork `name`'s recorded file and record the publisher."""
    entry = project.load_lock().require(name)
    source, dist = _cached_release(entry)
    previous = entry.sections.get("provenance")
    expected = None if accept else previous
    if attestation is not None:
        try:
            material = attestation.read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read {attestation}: {exc.strerror}") from None
        publisher = verify_any(dist, material, expected)
        origin = str(attestation)
    else:
        url = _announced_provenance(project, entry, source, previous, accept=accept)
        publisher = verify_provenance(dist, _get(url, limits=project.config.network), expected)
        origin = url
    if record:
        table = {**publisher.to_lock(), "file": source.filename, "source": origin}
        record_section(project, entry.name, "provenance", table)
    return ProvenanceCheck(entry.name, source.filename, publisher, origin)


def _cached_release(entry: LockEntry) -> tuple[IndexSource, Path]:
    """The index source of fork `entry` and its file in the download cache (sha256 checked)."""
    source = entry.source
    if not isinstance(source, IndexSource):
        raise BadInput(
            f"{entry.name} comes from git ({source.url}); provenance covers index releases",
            hint="git forks are pinned by commit id instead",
        )
    dist = downloaded_file(source.sha256, source.filename)
    if not dist.is_file():
        raise NotFound(
            f"{source.filename} is not in the download cache ({dist})",
            hint=f"re-download it with `forkman verify {entry.name}` or fork it again",
        )
    digest = file_sha256(dist)
    if digest != source.sha256:
        raise IntegrityError(
            f"{dist} has sha256 {digest}, the lock pins {source.sha256}",
            hint="delete the cached file and download it again",
        )
    return source, dist


def _announced_provenance(
    project: Project,
    entry: LockEntry,
    source: IndexSource,
    previous: Mapping[str, Any] | None,
    *,
    accept: bool,
) -> str:
    """The provenance URL the configured index announces for the fork's file."""
    from ..sources.index import configured_index

    index_url = configured_index(source.index_url, project.config.index_urls)
    if index_url is None:
        raise SecurityError(
            f"the lock records {source.filename} from {source.index_url}, "
            "which is not a configured index",
            hint="forkman asks only [tool.forkman] index-url and extra-index-urls for "
            "provenance; add that index there if you trust it",
        )
    url = provenance_url_from_index(
        index_url, entry.name, source.filename, limits=project.config.network
    )
    if url is None:
        check_publisher_change(
            previous,
            None,
            accept=accept,
            require=_requires(project, entry.name),
        )
        raise SecurityError(
            f"the index offers no provenance for {source.filename}",
            hint="pass an attestation or Sigstore bundle with --attestation FILE",
        )
    return url


def _requires(project: Project, name: str) -> bool:
    from ._settings import load_settings

    return load_settings(project).requires_provenance(name)
