"""Offline verification of PEP 740 provenance, PEP 740 attestations and Sigstore bundles.

Verification uses the Sigstore trusted root that ships inside the ``sigstore``
package (no TUF refresh, no network): a PEP 740 provenance object through
``pypi-attestations``, or a plain Sigstore bundle through sigstore's
``verify_artifact``. Each returns the verified :class:`Publisher`; failures
raise :class:`SecurityError`: forkman fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, NotFound, SecurityError
from .publisher import Publisher, PublisherKind, _san, publisher_from_certificate


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
