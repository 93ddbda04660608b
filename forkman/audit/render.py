"""`forkman audit` output: pip-audit's formats (columns, JSON, Markdown, CycloneDX) and SARIF."""

from __future__ import annotations

import json
from typing import Any, assert_never

from packaging.version import Version

from .report import AuditFormat, AuditReport, VulnState

__all__ = ["render", "render_sarif", "report_dict"]


def _summary_lines(report: AuditReport) -> list[str]:
    lines = []
    for fork in report.forks:
        head = f"{fork.name} {fork.version}: {fork.status.value}"
        if fork.fix_version:
            head += f" (upgrade to {fork.fix_version} clears every open one)"
        lines.append(head)
        for v in fork.vulnerabilities:
            text = f"  {v.id} {v.state.value}"
            if v.note:
                text += f": {v.note}"
            lines.append(text)
        for reason in fork.unaudited:
            lines.append(f"  NOT AUDITED: {reason}")
    return lines


def render(report: AuditReport, fmt: AuditFormat) -> str:
    """The report as text in `fmt` (pip-audit's formats, plus SARIF)."""
    from pip_audit._service.interface import VulnerabilityID, VulnerabilityResult

    from . import _pipaudit

    if fmt is AuditFormat.SARIF:
        return render_sarif(report)
    entries = []
    for fork in report.forks:
        open_results = [
            VulnerabilityResult(
                id=VulnerabilityID(v.id),
                description=v.summary,
                fix_versions=[Version(f) for f in v.fix_versions],
                aliases={VulnerabilityID(a) for a in v.aliases},
            )
            for v in fork.vulnerabilities
            if v.state.fails
        ]
        unaudited = "; ".join(fork.unaudited) if fork.unaudited else None
        entries.append((fork.name, fork.version, open_results, unaudited))
    text = _pipaudit.render_pip_audit(fmt.value, entries)
    match fmt:
        case AuditFormat.JSON:
            data = json.loads(text)
            data["forkman"] = report_dict(report)
            return json.dumps(data, indent=2)
        case AuditFormat.COLUMNS:
            parts = [text.rstrip()] if text.strip() else []
            parts.append("\n".join(_summary_lines(report)))
            return "\n\n".join(parts)
        case AuditFormat.MARKDOWN:
            parts = [text.rstrip()] if text.strip() else []
            items = [
                f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
                for line in _summary_lines(report)
            ]
            parts.append("## forkman\n\n" + "\n".join(items))
            return "\n\n".join(parts)
        case AuditFormat.CYCLONEDX:
            return text
        case AuditFormat.SARIF:  # pragma: no cover - handled above
            raise AssertionError
        case _:
            assert_never(fmt)


def report_dict(report: AuditReport) -> dict[str, Any]:
    """The report as plain data (forkman's part of the JSON output)."""
    return {
        "when": report.when,
        "database": (
            {
                "path": str(report.database.path),
                "source": report.database.source,
                "imported_at": report.database.imported_at,
                "advisories": report.database.advisories,
            }
            if report.database
            else None
        ),
        "sources": list(report.sources),
        "forks": [
            {
                "name": f.name,
                "version": f.version,
                "status": f.status.value,
                "fix_version": f.fix_version,
                "unaudited": list(f.unaudited),
                "vulnerabilities": [
                    {
                        "id": v.id,
                        "aliases": list(v.aliases),
                        "state": v.state.value,
                        "note": v.note,
                        "fix_versions": list(v.fix_versions),
                        "summary": v.summary,
                    }
                    for v in f.vulnerabilities
                ],
            }
            for f in report.forks
        ],
    }


def render_sarif(report: AuditReport) -> str:
    """SARIF 2.1.0: one rule per advisory, one result per (fork, advisory)."""
    from ..core.version import __version__
    from ..model.lock import LOCK_NAME

    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for fork in report.forks:
        location = {
            "physicalLocation": {"artifactLocation": {"uri": LOCK_NAME}},
            "logicalLocations": [{"name": fork.name, "kind": "package"}],
        }
        for v in fork.vulnerabilities:
            rules.setdefault(
                v.id,
                {
                    "id": v.id,
                    "name": v.id,
                    "shortDescription": {"text": v.summary or v.id},
                    "helpUri": f"https://osv.dev/vulnerability/{v.id}",
                    "properties": {"aliases": list(v.aliases), "tags": ["security"]},
                },
            )
            fixed = ", ".join(v.fix_versions) or "no fixed version known"
            result: dict[str, Any] = {
                "ruleId": v.id,
                "level": "error" if v.state.fails else "note",
                "message": {
                    "text": f"{fork.name} {fork.version} is affected by {v.id} "
                    f"(fixed in: {fixed}). {v.note}".strip()
                },
                "locations": [location],
                "properties": {"state": v.state.value},
            }
            if not v.state.fails:
                result["suppressions"] = [
                    {
                        "kind": "external" if v.state is VulnState.IGNORED else "inSource",
                        "justification": v.note,
                    }
                ]
            results.append(result)
        for reason in fork.unaudited:
            rules.setdefault(
                "forkman/unaudited",
                {
                    "id": "forkman/unaudited",
                    "name": "unaudited",
                    "shortDescription": {"text": "The fork could not be audited"},
                },
            )
            results.append(
                {
                    "ruleId": "forkman/unaudited",
                    "level": "error",
                    "message": {"text": f"{fork.name} {fork.version} was not audited: {reason}"},
                    "locations": [location],
                }
            )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "forkman-audit",
                        "version": __version__,
                        "rules": [rules[k] for k in sorted(rules)],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2)
