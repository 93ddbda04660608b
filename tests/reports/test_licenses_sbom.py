"""`forkman licenses` and `forkman sbom` on a project with real vendored trees and a lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkman.cli import cli
from forkman.layouts.transform import transform_tree
from forkman.model.lock import (
    GitSource,
    IndexSource,
    Layout,
    Lock,
    LockEntry,
    PatchRecord,
    write_lock,
)
from forkman.model.project import Project
from forkman.reports.licenses import (
    LicenseOrigin,
    acceptable,
    classify_text,
    fork_licenses,
    from_classifiers,
)
from forkman.reports.sbom import build_sbom, purl
from forkman.store.treehash import bytes_digest, tree_hash
from tests.support.index import default_project_files
from tests.support.wheel_trees import wheel_tree

MIT = "Permission is hereby granted, free of charge, to any person obtaining a copy\n"
APACHE = "        Apache License\n        Version 2.0, January 2004\n"
BSD3 = (
    "Redistribution and use in source and binary forms, with or without modification...\n"
    "Neither the name of the copyright holder nor the names of its contributors...\n"
)
GPL3 = "GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n"
PATCH = (
    "diff --git a/src/attrs/__init__.py b/src/attrs/__init__.py\n"
    "--- a/src/attrs/__init__.py\n+++ b/src/attrs/__init__.py\n"
    "@@ -1 +1 @@\n-x = 1\n+x = 2\n"
)


@pytest.mark.parametrize(
    ("text", "spdx"),
    [
        (MIT, "MIT"),
        (APACHE, "Apache-2.0"),
        (BSD3, "BSD-3-Clause"),
        (GPL3, "GPL-3.0-only"),
        ("Redistribution and use in source and binary forms, are permitted", "BSD-2-Clause"),
        ("GNU LESSER GENERAL PUBLIC LICENSE Version 3", "LGPL-3.0-only"),
        ("all yours", None),
    ],
)
def test_classify_text(text: str, spdx: str | None) -> None:
    assert classify_text(text) == spdx


def test_classifiers_and_policy() -> None:
    assert from_classifiers(["License :: OSI Approved :: MIT License"]) == "MIT"
    assert from_classifiers(["License :: OSI Approved :: BSD License"]) is None
    assert (
        from_classifiers(
            [
                "License :: OSI Approved :: MIT License",
                "License :: OSI Approved :: Apache Software License",
            ]
        )
        is None
    )
    deny = frozenset({"gpl-3.0-only"})
    assert acceptable("MIT", deny)
    assert not acceptable("GPL-3.0-only", deny)
    assert acceptable("MIT OR GPL-3.0-only", deny)
    assert not acceptable("MIT AND GPL-3.0-only", deny)
    assert not acceptable("(MIT OR GPL-3.0-only) AND gpl-3.0-only", deny)
    assert acceptable("Apache-2.0 WITH LLVM-exception", deny)


def make_project(root: Path, *, deny: list[str] | None = None) -> Project:
    """Three forks: project layout (sdist tree), git source, and a namespace fork."""
    root.mkdir(parents=True)
    policy = f"\n[tool.forkman.licenses]\ndeny = {json.dumps(deny or [])}\n"
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "1"\n\n[tool.forkman]\nprefer = "wheel"\n'
        '[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        'destination = "src/consumer/_vendor"\n' + policy
    )
    project = Project(root)
    # 1. project layout from an sdist: license from the file text (MIT)
    attrs = root / "vendor" / "attrs"
    for rel, text in default_project_files("attrs", "23.1.0").items():
        (attrs / rel).parent.mkdir(parents=True, exist_ok=True)
        (attrs / rel).write_text(text if rel != "LICENSE" else MIT)
    (root / "patches" / "attrs").mkdir(parents=True)
    (root / "patches" / "attrs" / "0001-fix.patch").write_text(PATCH)
    # 2. git source with a GPL classifier in PKG-INFO
    gpl = root / "vendor" / "gpltool"
    gpl.mkdir(parents=True)
    (gpl / "PKG-INFO").write_text(
        "Metadata-Version: 2.1\nName: gpltool\nVersion: 2.0\n"
        "Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)\n"
    )
    (gpl / "COPYING").write_text(GPL3)
    # 3. namespace layout: License-Expression from the wheel's metadata
    pristine = wheel_tree(
        root.parent / "w",
        "six",
        "1.16.0",
        {"six.py": ""},
        LICENSE=MIT,
        metadata="License-Expression: MIT\n",
    )
    staged = root / "src" / "consumer" / "_vendor"
    record = transform_tree(
        pristine, staged, fork_name="six", config=project.config, observer=_Null()
    )
    src = IndexSource(
        "https://pypi.org/simple/",
        "https://files.example/attrs-23.1.0.tar.gz",
        "attrs-23.1.0.tar.gz",
        "a" * 64,
        "attrs==23.1.0",
    )
    lock = Lock()
    lock = lock.with_entry(
        LockEntry(
            "attrs",
            "23.1.0",
            "vendor/attrs",
            src,
            tree_hash(attrs),
            tree_hash(attrs),
            "2026-01-01T00:00:00Z",
            patches=(
                PatchRecord(
                    "patches/attrs/0001-fix.patch",
                    bytes_digest(PATCH.encode()),
                    ("CVE-2099-0001", "GHSA-xxxx-yyyy-zzzz"),
                ),
            ),
        ).with_section(
            "provenance",
            {
                "publisher": {
                    "kind": "GitHub",
                    "repository": "python-attrs/attrs",
                    "workflow": "pypi-package.yml",
                }
            },
        )
    )
    lock = lock.with_entry(
        LockEntry(
            "gpltool",
            "2.0",
            "vendor/gpltool",
            GitSource("https://github.com/Example/GplTool.git", "v2.0", "b" * 40),
            tree_hash(gpl),
            tree_hash(gpl),
            "2026-01-01T00:00:00Z",
        )
    )
    lock = lock.with_entry(
        LockEntry(
            "six",
            "1.16.0",
            "src/consumer/_vendor",
            IndexSource(
                "http://127.0.0.1:1/simple/",
                "http://127.0.0.1:1/files/six.whl",
                "six-1.16.0-py3-none-any.whl",
                "c" * 64,
                "six==1.16.0",
            ),
            "sha256:" + "0" * 64,
            "sha256:" + "1" * 64,
            "2026-01-01T00:00:00Z",
            layout=Layout.NAMESPACE,
            sections={"namespace": record},
        )
    )
    write_lock(project.lock_path, lock)
    return project


class _Null:
    def step(self, subject: str, text: str) -> None: ...
    def progress(self, subject: str, done: int, total: int | None) -> None: ...
    def warning(self, text: str) -> None: ...


def test_fork_licenses(tmp_path: Path) -> None:
    project = make_project(tmp_path / "c", deny=["GPL-3.0-only"])
    found = {f.fork: f for f in fork_licenses(project)}
    assert found["attrs"].expression == "MIT"
    assert found["attrs"].origin is LicenseOrigin.FILE_TEXT
    assert found["attrs"].files == ("vendor/attrs/LICENSE",)
    assert found["gpltool"].expression == "GPL-3.0-only"
    assert found["gpltool"].origin is LicenseOrigin.CLASSIFIER
    assert found["gpltool"].refused and "denied" in found["gpltool"].reason
    assert found["six"].expression == "MIT"
    assert found["six"].origin is LicenseOrigin.METADATA
    assert found["six"].files == ("src/consumer/_vendor/six.LICENSE",)


def test_licenses_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    project = make_project(tmp_path / "a", deny=["GPL-3.0-only"])
    res = runner.invoke(cli, ["--project", str(project.root), "licenses"], catch_exceptions=False)
    assert res.exit_code == 1
    assert "REFUSED gpltool 2.0: GPL-3.0-only (classifier)" in res.output
    assert "attrs 23.1.0: MIT (file-text)" in res.output
    ok = make_project(tmp_path / "b")
    res = runner.invoke(cli, ["--project", str(ok.root), "licenses", "--json"])
    assert res.exit_code == 0
    assert {r["fork"]: r["expression"] for r in json.loads(res.output)} == {
        "attrs": "MIT",
        "gpltool": "GPL-3.0-only",
        "six": "MIT",
    }


def test_purls() -> None:
    src = IndexSource("https://pypi.org/simple/", "u", "f", "a" * 64, "Foo_Bar==1")
    entry = LockEntry("foo-bar", "1.0", "vendor/foo-bar", src, "x", "y", "t")
    assert purl(entry) == "pkg:pypi/foo-bar@1.0"
    local = IndexSource("http://127.0.0.1:8/simple/", "u", "f", "a" * 64, "foo==1")
    assert purl(LockEntry("foo", "1", "p", local, "x", "y", "t")) == (
        "pkg:pypi/foo@1?repository_url=http%3A%2F%2F127.0.0.1%3A8%2Fsimple%2F"
    )
    gl = GitSource("https://gitlab.example/g/foo.git", "main", "d" * 40)
    assert purl(LockEntry("foo", "1", "p", gl, "x", "y", "t")).startswith(
        "pkg:generic/foo@1?vcs_url=git%2Bhttps"
    )


def test_sbom_content_and_schema(tmp_path: Path) -> None:
    project = make_project(tmp_path / "c")
    doc = build_sbom(project)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    comps = {c["name"]: c for c in doc["components"]}
    attrs = comps["attrs"]
    assert attrs["purl"] == "pkg:pypi/attrs@23.1.0"
    assert attrs["hashes"] == [{"alg": "SHA-256", "content": "a" * 64}]
    assert attrs["publisher"] == "GitHub python-attrs/attrs pypi-package.yml"
    assert attrs["licenses"] == [{"license": {"id": "MIT"}}]
    patch = attrs["pedigree"]["patches"][0]
    assert patch["diff"]["text"]["content"] == PATCH
    assert [r["id"] for r in patch["resolves"]] == ["CVE-2099-0001", "GHSA-xxxx-yyyy-zzzz"]
    assert attrs["pedigree"]["ancestors"][0]["purl"] == "pkg:pypi/attrs@23.1.0"
    git = comps["gpltool"]
    assert git["purl"] == f"pkg:github/example/gpltool@{'b' * 40}"
    assert {"name": "forkman:git-commit", "value": "b" * 40} in git["properties"]
    assert git["externalReferences"][0]["type"] == "vcs"
    assert "publisher" not in git and "hashes" not in git
    assert "?repository_url=" in comps["six"]["purl"]
    assert len({c["bom-ref"] for c in doc["components"]}) == 3
    # the official schema, when cyclonedx-python-lib is installed (pip-audit depends on it)
    validation = pytest.importorskip("cyclonedx.validation.json")
    schema = pytest.importorskip("cyclonedx.schema")
    error = validation.JsonStrictValidator(schema.SchemaVersion.V1_5).validate_str(json.dumps(doc))
    assert error is None, str(error)[:2000]


def test_sbom_cli_writes_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "c")
    out = tmp_path / "bom.json"
    res = CliRunner().invoke(
        cli, ["--project", str(project.root), "sbom", "-o", str(out)], catch_exceptions=False
    )
    assert res.exit_code == 0
    assert len(json.loads(out.read_text())["components"]) == 3
    res = CliRunner().invoke(cli, ["--project", str(project.root), "sbom"])
    assert json.loads(res.output)["specVersion"] == "1.5"


def test_bad_policy_is_exit_2_and_empty_project_sbom_is_valid(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\n\n[tool.forkman.licenses]\ndeny = "GPL-3.0-only"\n'
    )
    res = CliRunner().invoke(cli, ["--project", str(root), "licenses"])
    assert res.exit_code == 2
    assert "error: [tool.forkman.licenses].deny must be a list of SPDX ids" in res.output
    doc = build_sbom(Project(root))
    assert doc["components"] == []
    validation = pytest.importorskip("cyclonedx.validation.json")
    schema = pytest.importorskip("cyclonedx.schema")
    assert (
        validation.JsonStrictValidator(schema.SchemaVersion.V1_5).validate_str(json.dumps(doc))
        is None
    )
