"""Renderings of a :class:`~forkman.ci.pipeline.CiReport`.

JSON, SARIF 2.1.0, JUnit XML, Markdown and text.
"""

from __future__ import annotations

import enum
import json
import xml.etree.ElementTree as ET
from typing import Any, assert_never

from ..reports.templates import REPOSITORY_URL
from .report import CiFinding, CiReport, StageStatus

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


class CiFormat(enum.Enum):
    """The machine-readable formats `forkman ci --format` writes."""

    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"


def render(report: CiReport, fmt: CiFormat) -> str:
    """`report` in format `fmt`."""
    match fmt:
        case CiFormat.JSON:
            return to_json(report)
        case CiFormat.SARIF:
            return to_sarif(report)
        case CiFormat.JUNIT:
            return to_junit(report)
        case _:
            assert_never(fmt)


def to_json(report: CiReport) -> str:
    """The report as a JSON document."""
    return json.dumps(report.as_dict(), indent=2) + "\n"


def _rule_id(finding: CiFinding) -> str:
    return f"forkman/{finding.stage}/{finding.rule}"


def to_sarif(report: CiReport) -> str:
    """The findings as a SARIF 2.1.0 log (for code-scanning dashboards)."""
    from ..core.version import __version__

    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding in report.findings():
        rule_id = _rule_id(finding)
        rules.setdefault(
            rule_id,
            {
                "id": rule_id,
                "name": f"{finding.stage}-{finding.rule}",
                "shortDescription": {"text": f"forkman {finding.stage}: {finding.rule}"},
                "defaultConfiguration": {"level": finding.level.value},
            },
        )
        text = finding.message + (f"\nFix: {finding.hint}" if finding.hint else "")
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "level": finding.level.value,
            "message": {"text": text},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": finding.path or "forkman.lock",
                            "uriBaseId": "%SRCROOT%",
                        }
                    }
                }
            ],
        }
        if finding.fork:
            result["properties"] = {"fork": finding.fork}
        results.append(result)
    rule_list = list(rules.values())
    index = {r["id"]: i for i, r in enumerate(rule_list)}
    for result in results:
        result["ruleIndex"] = index[result["ruleId"]]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "forkman",
                        "version": __version__,
                        "informationUri": REPOSITORY_URL,
                        "rules": rule_list,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": report.exit_code != 2,
                        "exitCode": report.exit_code,
                    }
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def to_junit(report: CiReport) -> str:
    """The stages as JUnit XML: one test case per stage, findings in its failure."""
    counts = {s: sum(1 for r in report.stages if r.status is s) for s in StageStatus}
    total_time = f"{sum(r.duration for r in report.stages):.3f}"
    suites = ET.Element(
        "testsuites",
        name="forkman ci",
        tests=str(len(report.stages)),
        failures=str(counts[StageStatus.FAILED]),
        errors=str(counts[StageStatus.ERROR]),
        skipped=str(counts[StageStatus.SKIPPED]),
        time=total_time,
    )
    suite = ET.SubElement(suites, "testsuite", dict(suites.attrib, name="forkman"))
    for stage in report.stages:
        case = ET.SubElement(
            suite, "testcase", classname="forkman.ci", name=stage.name, time=f"{stage.duration:.3f}"
        )
        body = "\n".join(
            f.message + (f"\n  fix: {f.hint}" if f.hint else "") for f in stage.findings
        )
        match stage.status:
            case StageStatus.OK:
                ET.SubElement(case, "system-out").text = stage.summary
            case StageStatus.SKIPPED:
                ET.SubElement(case, "skipped", message=stage.summary)
            case StageStatus.FAILED:
                ET.SubElement(case, "failure", message=stage.summary, type="findings").text = body
            case StageStatus.ERROR:
                ET.SubElement(case, "error", message=stage.summary, type="error").text = body
            case _:
                assert_never(stage.status)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


_ICONS = {
    StageStatus.OK: "✅ ok",
    StageStatus.FAILED: "❌ failed",
    StageStatus.SKIPPED: "⏭️ skipped",
    StageStatus.ERROR: "⛔ error",
}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: CiReport, *, max_findings: int = 50) -> str:
    """A Markdown summary (for `$GITHUB_STEP_SUMMARY`)."""
    verdict = "passed" if report.ok else "failed"
    lines = [f"## forkman ci: {verdict}", "", f"Security settings from the {report.policy}.", ""]
    if report.changed is not None:
        changed = ", ".join(f"`{n}`" for n in report.changed) or "none"
        lines += [f"Forks changed since `{(report.base or '')[:12]}`: {changed}", ""]
    lines += ["| stage | status | time | summary |", "| --- | --- | --- | --- |"]
    for stage in report.stages:
        lines.append(
            f"| {stage.name} | {_ICONS[stage.status]} | {stage.duration:.1f}s "
            f"| {_md_cell(stage.summary)} |"
        )
    findings = report.findings()
    if findings:
        lines += ["", "### Findings", ""]
        for f in findings[:max_findings]:
            lines.append(f"- **{f.stage}** {_md_cell(f.message)}")
            if f.hint:
                lines.append(f"  - fix: {_md_cell(f.hint)}")
        if len(findings) > max_findings:
            lines.append(f"- … and {len(findings) - max_findings} more")
    return "\n".join(lines) + "\n"
