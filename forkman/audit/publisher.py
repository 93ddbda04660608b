"""A release's publisher: the identity a Sigstore signing certificate vouches for, and the
policy that compares it with the one the lock records.

:class:`Publisher` is what forkman records in a fork's ``provenance`` table and
compares on the next sync (:func:`check_publisher_change`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import BadInput, SecurityError

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
