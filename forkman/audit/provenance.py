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

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ..core.errors import BadInput, IntegrityError, NetworkError, NotFound, SecurityError
from ..model.config import NetworkLimits
from ..sources.interface import ReleaseFile

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"

# Fulcio certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md)
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_OID_SOURCE_REPO_URI = "1.3.6.1.4.1.57264.1.12"
_OID_SOURCE_REPO_REF = "1.3.6.1.4.1.57264.1.14"
_OID_BUILD_CONFIG_URI = "1.3.6.1.4.1.57264.1.18"


class PublisherKind(enum.Enum):
    """Where a release was built and signed."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GOOGLE = "google"
    OTHER = "other"


@dataclass(frozen=True)
class Publisher:
    """A verified publisher identity."""

    kind: PublisherKind
    """The trusted-publisher platform."""
    repository: str
    """``owner/repo`` (GitHub, GitLab); the account email (Google); the identity (other)."""
    workflow: str = ""
    """The GitHub workflow file name, or the GitLab CI file path."""
    environment: str = ""
    """The deployment environment, when the publisher declares one."""
    ref: str = ""
    """The git ref the release was built from (changes every release)."""
    issuer: str = ""
    """The OIDC issuer that vouched for the identity."""

    def same_identity(self, other: Publisher) -> bool:
        """Whether `other` is the same publisher (the ref may differ between releases)."""
        if (self.kind, self.repository, self.workflow) != (
            other.kind,
            other.repository,
            other.workflow,
        ):
            return False
        if self.environment and other.environment:
            return self.environment == other.environment
        return True

    def describe(self) -> str:
        """One line for people."""
        text = f"{self.kind.value}: {self.repository}"
        if self.workflow:
            text += f", {'workflow' if self.kind is PublisherKind.GITHUB else 'CI file'} "
            text += self.workflow
        if self.environment:
            text += f", environment {self.environment}"
        if self.ref:
            text += f", ref {self.ref}"
        return text

    def to_lock(self) -> dict[str, str]:
        """The lock's ``provenance`` table (empty fields left out)."""
        out = {"kind": self.kind.value, "repository": self.repository}
        for key in ("workflow", "environment", "ref", "issuer"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    @classmethod
    def from_lock(cls, table: Mapping[str, Any]) -> Publisher:
        """Read a recorded publisher back."""
        try:
            kind = PublisherKind(table["kind"])
            repository = str(table["repository"])
        except (KeyError, ValueError) as exc:
            raise BadInput(f"recorded provenance is incomplete: {exc}") from None
        return cls(
            kind=kind,
            repository=repository,
            workflow=str(table.get("workflow", "")),
            environment=str(table.get("environment", "")),
            ref=str(table.get("ref", "")),
            issuer=str(table.get("issuer", "")),
        )


# -- certificates -----------------------------------------------------------------------


def _claims(cert: Any) -> dict[str, str]:
    from cryptography import x509

    out: dict[str, str] = {}
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if not oid.startswith("1.3.6.1.4.1.57264.1.") or not isinstance(
            ext.value, x509.UnrecognizedExtension
        ):
            continue
        raw = ext.value.value
        if int(oid.rsplit(".", 1)[1]) >= 8:  # DER UTF8String from .8 on
            raw = _der_utf8(raw)
        out[oid] = raw.decode("utf-8", "replace")
    return out


def _der_utf8(raw: bytes) -> bytes:
    if len(raw) < 2 or raw[0] != 0x0C:
        return raw
    length = raw[1]
    start = 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(raw[2 : 2 + n], "big")
        start = 2 + n
    return raw[start : start + length]


def _san(cert: Any) -> str:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    for general_name in san:
        value = general_name.value
        if isinstance(value, str):
            return value
    return ""


def publisher_from_certificate(cert: Any) -> Publisher:
    """The identity a Fulcio signing certificate vouches for."""
    claims = _claims(cert)
    issuer = claims.get(_OID_ISSUER_V2) or claims.get("1.3.6.1.4.1.57264.1.1", "")
    san = _san(cert)
    ref = claims.get(_OID_SOURCE_REPO_REF, "")
    build_uri = claims.get(_OID_BUILD_CONFIG_URI) or san
    repo_uri = claims.get(_OID_SOURCE_REPO_URI, "")
    if issuer == GITHUB_ISSUER:
        repository = repo_uri.removeprefix("https://github.com/")
        workflow = build_uri.split("@", 1)[0].rsplit("/.github/workflows/", 1)[-1]
        return Publisher(PublisherKind.GITHUB, repository, workflow, "", ref, issuer)
    if issuer == GITLAB_ISSUER or issuer.startswith("https://gitlab."):
        host = issuer.rstrip("/") + "/"
        repository = repo_uri.removeprefix(host)
        ci_file = build_uri.split("@", 1)[0].split("//", 2)[-1] if "//" in build_uri else ""
        return Publisher(PublisherKind.GITLAB, repository, ci_file, "", ref, issuer)
    if issuer == GOOGLE_ISSUER:
        return Publisher(PublisherKind.GOOGLE, san, "", "", "", issuer)
    return Publisher(PublisherKind.OTHER, san, "", "", ref, issuer)


# -- verification -----------------------------------------------------------------------


def _distribution(dist_path: Path) -> Any:
    from pypi_attestations import Distribution

    if not dist_path.is_file():
        raise NotFound(f"{dist_path} does not exist")
    try:
        return Distribution.from_file(dist_path)
    except ValueError as exc:
        raise BadInput(f"{dist_path.name} is not a distribution file name: {exc}") from None


def _from_pep740_publisher(publisher: Any, cert_publisher: Publisher) -> Publisher:
    kind = str(getattr(publisher, "kind", "")).lower()
    environment = getattr(publisher, "environment", None) or ""
    if kind == "github":
        return Publisher(
            PublisherKind.GITHUB,
            publisher.repository,
            publisher.workflow,
            environment,
            cert_publisher.ref,
            cert_publisher.issuer,
        )
    if kind == "gitlab":
        return Publisher(
            PublisherKind.GITLAB,
            publisher.repository,
            publisher.workflow_filepath,
            environment,
            cert_publisher.ref,
            cert_publisher.issuer,
        )
    if kind == "google":
        return Publisher(PublisherKind.GOOGLE, publisher.email, issuer=cert_publisher.issuer)
    return cert_publisher


def _check_expected(found: Publisher, expected: Publisher | Mapping[str, Any] | None) -> None:
    if expected is None:
        return
    want = expected if isinstance(expected, Publisher) else Publisher.from_lock(expected)
    if not want.same_identity(found):
        raise SecurityError(
            f"the release was published by {found.describe()}, not by {want.describe()}",
            hint="if the project really moved, accept it with --accept-publisher-change",
        )


def verify_provenance(
    dist_path: Path,
    provenance_bytes: bytes,
    expected: Publisher | Mapping[str, Any] | None = None,
) -> Publisher:
    """Verify a PEP 740 provenance object for `dist_path` offline; return its publisher.

    Every attestation of every bundle must verify against the distribution's
    name and sha256 and the bundle's trusted publisher. With `expected`, the
    publisher must also be that one.
    """
    from pypi_attestations import AttestationError, Provenance

    dist = _distribution(dist_path)
    try:
        provenance = Provenance.model_validate_json(provenance_bytes)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SecurityError(
            f"the provenance for {dist_path.name} is malformed: {_first_line(exc)}",
            hint="the index served something that is not a PEP 740 provenance object",
        ) from None
    if not provenance.attestation_bundles or not any(
        b.attestations for b in provenance.attestation_bundles
    ):
        raise SecurityError(f"the provenance for {dist_path.name} holds no attestation")
    found: Publisher | None = None
    for bundle in provenance.attestation_bundles:
        for attestation in bundle.attestations:
            try:
                attestation.verify(bundle.publisher, dist, offline=True)
            except (AttestationError, ValueError) as exc:
                raise SecurityError(
                    f"the provenance for {dist_path.name} does not verify: {_first_line(exc)}",
                    hint="the file or its attestation was altered, or they do not belong together",
                ) from None
            cert_publisher = _attestation_certificate_publisher(attestation)
            publisher = _from_pep740_publisher(bundle.publisher, cert_publisher)
            if found is not None and not found.same_identity(publisher):
                raise SecurityError(
                    f"the provenance for {dist_path.name} names two publishers: "
                    f"{found.describe()} and {publisher.describe()}"
                )
            found = publisher
    assert found is not None
    _check_expected(found, expected)
    return found


def _attestation_certificate_publisher(attestation: Any) -> Publisher:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(attestation.verification_material.certificate)
    return publisher_from_certificate(cert)


def verify_attestation(
    dist_path: Path,
    attestation_bytes: bytes,
    expected: Publisher | Mapping[str, Any] | None = None,
) -> Publisher:
    """Verify a single PEP 740 attestation (as ``*.publish.attestation`` files hold it)."""
    from pypi_attestations import (
        Attestation,
        AttestationError,
        GitHubPublisher,
        GitLabPublisher,
        GooglePublisher,
    )

    dist = _distribution(dist_path)
    try:
        attestation = Attestation.model_validate_json(attestation_bytes)
        signer = _attestation_certificate_publisher(attestation)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SecurityError(f"the attestation is malformed: {_first_line(exc)}") from None
    identity: Any
    if signer.kind is PublisherKind.GITHUB:
        identity = GitHubPublisher(repository=signer.repository, workflow=signer.workflow)
    elif signer.kind is PublisherKind.GITLAB:
        identity = GitLabPublisher(repository=signer.repository, workflow_filepath=signer.workflow)
    elif signer.kind is PublisherKind.GOOGLE:
        identity = GooglePublisher(email=signer.repository)
    else:
        raise SecurityError(
            f"the attestation was signed by {signer.describe()}, not a trusted publisher"
        )
    try:
        attestation.verify(identity, dist, offline=True)
    except (AttestationError, ValueError) as exc:
        raise SecurityError(
            f"the attestation for {dist_path.name} does not verify: {_first_line(exc)}"
        ) from None
    _check_expected(signer, expected)
    return signer


def verify_bundle(
    dist_path: Path,
    bundle_bytes: bytes,
    identity: str | None = None,
    issuer: str | None = None,
) -> Publisher:
    """Verify a plain Sigstore bundle over `dist_path` offline; return the signer.

    With `identity` (the certificate's SAN) and/or `issuer`, the signer must
    match them; without, any signer is accepted and returned, so the caller can
    compare it with the recorded one.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import policy

    if not dist_path.is_file():
        raise NotFound(f"{dist_path} does not exist")
    try:
        bundle = Bundle.from_json(bundle_bytes)
        cert = bundle.signing_certificate
    except Exception as exc:  # sigstore raises many types for malformed input
        raise SecurityError(
            f"the Sigstore bundle is malformed: {_first_line(exc)}",
            hint="pass a Sigstore bundle (.sigstore / .sigstore.json) for this file",
        ) from None
    signer = publisher_from_certificate(cert)
    san = _san(cert)
    checks: list[Any] = [policy.Identity(identity=identity or san, issuer=issuer or signer.issuer)]
    verifier = _verifier()
    try:
        verifier.verify_artifact(dist_path.read_bytes(), bundle, policy.AllOf(checks))
    except (SigstoreError, ValueError) as exc:
        raise SecurityError(
            f"the Sigstore bundle does not verify {dist_path.name}: {_first_line(exc)}",
            hint="the file was altered, the bundle is for another file, or another identity "
            "signed it",
        ) from None
    return signer


def _verifier() -> Any:
    """A verifier pinned to the trusted root embedded in the sigstore package (no network)."""
    import sigstore
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    root = Path(sigstore.__file__).parent / "_store" / "prod" / "trusted_root.json"
    if root.is_file():
        return Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    return Verifier.production(offline=True)  # pragma: no cover - layout of other versions


def verify_any(
    dist_path: Path,
    material: bytes,
    expected: Publisher | Mapping[str, Any] | None = None,
) -> Publisher:
    """Verify whatever `material` is: PEP 740 provenance, one attestation, or a bundle."""
    try:
        data = json.loads(material)
    except (ValueError, UnicodeDecodeError):
        raise SecurityError(
            "the attestation file is not JSON",
            hint="pass a PEP 740 provenance or attestation, or a Sigstore bundle",
        ) from None
    if isinstance(data, dict) and "attestation_bundles" in data:
        return verify_provenance(dist_path, material, expected)
    if isinstance(data, dict) and "envelope" in data and "verification_material" in data:
        return verify_attestation(dist_path, material, expected)
    if isinstance(data, dict) and "mediaType" in data:
        found = verify_bundle(dist_path, material)
        _check_expected(found, expected)
        return found
    raise SecurityError(
        "the attestation file is neither PEP 740 provenance, a PEP 740 attestation, "
        "nor a Sigstore bundle"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


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


# -- policy -----------------------------------------------------------------------------


def check_publisher_change(
    previous: Mapping[str, Any] | None,
    new: Publisher | None,
    *,
    accept: bool,
    require: bool,
) -> None:
    """Refuse a release whose publisher changed, lost its provenance, or has none under
    ``require-provenance``. `accept` lets a change (never a missing one under policy) through."""
    if new is None:
        if require:
            raise SecurityError(
                "the release has no verified provenance and policy require-provenance is set",
                hint="fork a release that carries PEP 740 provenance, pass --attestation FILE, "
                "or turn require-provenance off for this fork",
            )
        if previous and not accept:
            was = Publisher.from_lock(previous)
            raise SecurityError(
                f"the previous release was published with provenance by {was.describe()}, "
                "this one has none",
                hint="a release losing its provenance is a classic sign of a hijacked account; "
                "if you checked it, accept with --accept-publisher-change",
            )
        return
    if previous and not accept:
        was = Publisher.from_lock(previous)
        if not was.same_identity(new):
            raise SecurityError(
                f"the publisher changed: was {was.describe()}, now {new.describe()}",
                hint="check that the project really moved, then accept with "
                "--accept-publisher-change",
            )


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
    project: Any,
    name: str,
    *,
    attestation: Path | None = None,
    accept: bool = False,
    record: bool = True,
) -> ProvenanceCheck:
    """Verify the provenance of fork `name`'s recorded file and record the publisher."""
    from packaging.utils import canonicalize_name

    from ..model.lock import IndexSource

    lock = project.load_lock()
    entry = lock.get(name) or lock.get(canonicalize_name(name))
    if entry is None:
        raise NotFound(f"no fork named {name!r}", hint="`forkman status` lists the forks")
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
    digest = hashlib.sha256(dist.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise IntegrityError(
            f"{dist} has sha256 {digest}, the lock pins {source.sha256}",
            hint="delete the cached file and download it again",
        )
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
        publisher = verify_provenance(dist, _get(url, limits=project.config.network), expected)
        origin = url
    if record:
        from ..store.txn import update_lock

        table = {**publisher.to_lock(), "file": source.filename, "source": origin}

        def record_publisher(lock: Any) -> Any:
            current = lock.get(entry.name)
            return (
                lock
                if current is None
                else lock.with_entry(current.with_section("provenance", table))
            )

        update_lock(project, record_publisher)
    return ProvenanceCheck(entry.name, source.filename, publisher, origin)


def _requires(project: Any, name: str) -> bool:
    from ._settings import load_settings

    return load_settings(project).requires_provenance(name)
