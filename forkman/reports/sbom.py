"""A CycloneDX 1.5 software bill of materials of a project's forks.

One ``library`` component per fork: its name, upstream version, package URL,
the sha256 of the release file it was made from, where that came from (index
and file, or git repository and commit), its license, the publisher when the
``provenance`` lock section knows it, and its pedigree: the upstream release
as ``ancestors`` and the fork's patch series as ``patches`` (the diff text,
and ``resolves`` for the vulnerability ids a patch declares it fixes).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlparse

from packaging.utils import canonicalize_name

from ..core.version import __version__
from ..model.lock import GitSource, IndexSource, Lock, LockEntry
from ..model.project import Project
from .licenses import ForkLicense, LicensePolicy, fork_license

SPEC_VERSION = "1.5"
_PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org", "test.pypi.org")


def purl(entry: LockEntry) -> str:
    """The package URL of a fork's upstream release."""
    src = entry.source
    if isinstance(src, GitSource):
        parsed = urlparse(src.url)
        path = parsed.path.removesuffix(".git").strip("/")
        if parsed.hostname == "github.com" and path.count("/") == 1:
            return f"pkg:github/{path.lower()}@{src.commit}"
        qualifier = quote(f"git+{src.url}@{src.commit}", safe="")
        return f"pkg:generic/{canonicalize_name(entry.name)}@{quote(entry.version)}" + (
            f"?vcs_url={qualifier}"
        )
    base = f"pkg:pypi/{canonicalize_name(entry.name)}@{quote(entry.version)}"
    if urlparse(src.index_url).hostname not in _PYPI_HOSTS:
        base += "?repository_url=" + quote(src.index_url, safe="")
    return base


def _publisher(entry: LockEntry) -> str | None:
    prov = entry.sections.get("provenance")
    if not isinstance(prov, Mapping):
        return None
    pub = prov.get("publisher")
    if isinstance(pub, str):
        return pub
    if isinstance(pub, Mapping):
        kind = pub.get("kind") or pub.get("type") or ""
        repo = pub.get("repository") or pub.get("repo") or ""
        workflow = pub.get("workflow") or pub.get("workflow_filepath") or ""
        text = " ".join(str(p) for p in (kind, repo, workflow) if p)
        return text or None
    return None


def _source_refs(entry: LockEntry) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    src = entry.source
    props = [
        {"name": "forkman:layout", "value": entry.layout},
        {"name": "forkman:path", "value": entry.path},
        {"name": "forkman:upstream-tree", "value": entry.upstream_tree},
        {"name": "forkman:vendored-tree", "value": entry.vendored_tree},
    ]
    refs: list[dict[str, Any]]
    if isinstance(src, IndexSource):
        refs = [
            {
                "type": "distribution",
                "url": src.url,
                "hashes": [{"alg": "SHA-256", "content": src.sha256}],
            },
            {"type": "distribution", "url": src.index_url, "comment": "package index"},
        ]
        props += [
            {"name": "forkman:source", "value": "index"},
            {"name": "forkman:index-url", "value": src.index_url},
            {"name": "forkman:filename", "value": src.filename},
            {"name": "forkman:requirement", "value": src.requirement},
        ]
    else:
        refs = [{"type": "vcs", "url": src.url, "comment": f"commit {src.commit}"}]
        props += [
            {"name": "forkman:source", "value": "git"},
            {"name": "forkman:git-commit", "value": src.commit},
            {"name": "forkman:git-ref", "value": src.ref},
        ]
        if src.subdirectory:
            props.append({"name": "forkman:git-subdirectory", "value": src.subdirectory})
    return refs, props


def _licenses(lic: ForkLicense | None) -> list[dict[str, Any]]:
    if lic is None or lic.expression is None:
        return []
    if " " in lic.expression:
        return [{"expression": lic.expression}]
    return (
        [{"license": {"id": lic.expression}}]
        if _spdx_known(lic.expression)
        else [{"expression": lic.expression}]
    )


def _spdx_known(spdx: str) -> bool:
    try:
        from license_expression import get_spdx_licensing  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        parsed = get_spdx_licensing().parse(spdx, validate=True, strict=True)
    except Exception:
        return False
    return parsed is not None


def _component(project: Project, entry: LockEntry, lic: ForkLicense | None) -> dict[str, Any]:
    upstream_purl = purl(entry)
    refs, props = _source_refs(entry)
    hashes = (
        [{"alg": "SHA-256", "content": entry.source.sha256}]
        if isinstance(entry.source, IndexSource)
        else []
    )
    ancestor: dict[str, Any] = {
        "type": "library",
        "bom-ref": f"upstream:{entry.name}@{entry.version}",
        "name": entry.name,
        "version": entry.version,
        "purl": upstream_purl,
    }
    if hashes:
        ancestor["hashes"] = hashes
    patches = []
    for record in entry.patches:
        patch: dict[str, Any] = {"type": "unofficial"}
        path = project.root / record.file
        diff: dict[str, Any] = {"url": record.file}
        if path.is_file():
            diff["text"] = {
                "contentType": "text/x-diff",
                "content": path.read_text(encoding="utf-8", errors="replace"),
            }
        patch["diff"] = diff
        if record.fixes:
            patch["resolves"] = [{"type": "security", "id": fix} for fix in record.fixes]
        patches.append(patch)
    pedigree: dict[str, Any] = {"ancestors": [ancestor]}
    if patches:
        pedigree["patches"] = patches
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": f"fork:{entry.name}",
        "name": entry.name,
        "version": entry.version,
        "purl": upstream_purl,
        "description": f"forkman fork of {entry.name} {entry.version}"
        + (f" with {len(entry.patches)} patches" if entry.patches else ""),
        "hashes": hashes,
        "externalReferences": refs,
        "pedigree": pedigree,
        "properties": props,
    }
    publisher = _publisher(entry)
    if publisher:
        component["publisher"] = publisher
    licenses = _licenses(lic)
    if licenses:
        component["licenses"] = licenses
    if not hashes:
        del component["hashes"]
    return component


def build_sbom(
    project: Project, lock: Lock | None = None, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The CycloneDX document (a JSON-ready dict) for every fork of `project`."""
    lock = lock if lock is not None else project.load_lock()
    # the license policy is not the SBOM's business: report, do not judge
    licenses = {e.name: fork_license(project, e, LicensePolicy()) for e in lock}
    stamp = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    consumer = project.root.name
    try:
        import tomllib

        data = tomllib.loads(project.pyproject.read_text(encoding="utf-8"))
        consumer = str(data.get("project", {}).get("name", consumer))
    except (OSError, ValueError):
        pass
    components = [_component(project, entry, licenses.get(entry.name)) for entry in lock]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": stamp.isoformat().replace("+00:00", "Z"),
            "tools": {
                "components": [{"type": "application", "name": "forkman", "version": __version__}]
            },
            "component": {"type": "application", "bom-ref": "consumer", "name": consumer},
        },
        "components": components,
        "dependencies": [
            {"ref": "consumer", "dependsOn": [c["bom-ref"] for c in components]},
            *({"ref": c["bom-ref"]} for c in components),
        ],
    }


def dump_sbom(document: Mapping[str, Any]) -> str:
    """The document as JSON text."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
