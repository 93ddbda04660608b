"""Supply-chain audit of forks: vulnerabilities, provenance, risky upstream changes.

- :mod:`.osvdb`: the local OSV database (``forkman db update``) and OSV matching;
- :mod:`.vulnerabilities`: ``forkman audit`` through pip-audit (:mod:`._pipaudit`);
- :mod:`.provenance`: PEP 740 / Sigstore verification and the publisher policy;
- :mod:`.review`: risky changes in an upstream delta.
"""

from __future__ import annotations

from .osvdb import Advisory, DatabaseError, DatabaseInfo, OsvDatabase, import_database
from .provenance import (
    Publisher,
    PublisherKind,
    check_publisher_change,
    fetch_provenance,
    verify_bundle,
    verify_provenance,
)
from .review import Finding, ReviewReport, Severity, review_delta, review_fork
from .vulnerabilities import AuditFormat, AuditReport, ForkStatus, VulnState, audit_project

__all__ = [
    "Advisory",
    "AuditFormat",
    "AuditReport",
    "DatabaseError",
    "DatabaseInfo",
    "Finding",
    "ForkStatus",
    "OsvDatabase",
    "Publisher",
    "PublisherKind",
    "ReviewReport",
    "Severity",
    "VulnState",
    "audit_project",
    "check_publisher_change",
    "fetch_provenance",
    "import_database",
    "review_delta",
    "review_fork",
    "verify_bundle",
    "verify_provenance",
]
