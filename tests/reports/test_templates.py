"""vendor-templates/: every template renders and validates; init --ci and card write them."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from forkman.model.lock import PatchRecord, write_lock
from forkman.model.project import Project
from forkman.reports.templates import (
    CiProvider,
    ci_files,
    default_values,
    patch_description,
    render,
    template_names,
)
from forkman.store.treehash import file_digest
from tests.conftest import REPO_ROOT, git
from tests.support.cli import run
from tests.support.index import LocalIndex

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _yaml(name: str) -> Any:
    return yaml.safe_load(render(name, default_values()))


def test_every_template_renders_without_leftover_placeholders() -> None:
    names = template_names()
    assert {"github-workflow.yml", "gitlab-ci.yml", "pre-commit-config.yaml", "FORK.md"} <= set(
        names
    )
    for name in names:
        if name == "FORK.md":
            continue  # needs a fork; see the card tests
        text = render(name, default_values())
        assert "[[" not in text, name
        if name.endswith((".yml", ".yaml")):
            assert yaml.safe_load(text) is not None, name


def test_github_workflow_is_pinned_and_least_privilege() -> None:
    raw = render("github-workflow.yml", default_values())
    workflow = _yaml("github-workflow.yml")
    assert workflow["permissions"] == {"contents": "read"}
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    for job in workflow["jobs"].values():
        assert "permissions" not in job or all(
            v in ("read", "none") for v in job["permissions"].values()
        )
    uses = [s["uses"] for s in steps if "uses" in s]
    assert uses, "the workflow uses no actions?"
    for ref in uses:
        assert SHA_PIN.match(ref), f"{ref} is not pinned to a full commit id"
    for line in raw.splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line  # names the release
    runs = " ".join(s.get("run", "") for s in steps)
    assert "forkman ci" in runs
    assert f"forkman=={default_values()['forkman_version']}" in runs
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    assert checkout["with"]["fetch-depth"] == 0
    # `on` parses as True in YAML 1.1; the triggers are still there
    assert "pull_request" in (workflow.get("on") or workflow.get(True))


def test_gitlab_job_runs_forkman_ci_and_reports_junit() -> None:
    job = _yaml("gitlab-ci.yml")["forkman"]
    assert any("forkman ci" in line for line in job["script"])
    assert job["artifacts"]["reports"]["junit"] == "forkman-ci.xml"
    root = _yaml("gitlab-ci-root.yml")
    assert root["include"] == [{"local": default_values()["gitlab_job_path"]}]


def test_pre_commit_snippet_uses_hooks_this_repository_offers() -> None:
    config = _yaml("pre-commit-config.yaml")
    offered = {h["id"] for h in yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())}
    (repo,) = config["repos"]
    assert repo["rev"] == f"v{default_values()['forkman_version']}"
    assert {h["id"] for h in repo["hooks"]} <= offered


@pytest.mark.parametrize("provider", list(CiProvider))
def test_init_ci_renders_then_keeps_then_forces(cwd: Path, provider: CiProvider) -> None:
    res = run("init", "--ci", provider.value)
    assert res.exit_code == 0, res
    paths = [rel for rel, _ in ci_files(provider)]
    for rel in paths:
        assert f"created {rel}" in res.stdout
        assert yaml.safe_load((cwd / rel).read_text())
    (cwd / paths[0]).write_text("# mine\n")
    res = run("init", "--ci", provider.value)
    assert f"kept {paths[0]} (exists; --force overwrites it)" in res.stdout
    assert (cwd / paths[0]).read_text() == "# mine\n"
    res = run("init", "--ci", provider.value, "--force")
    assert f"overwritten {paths[0]}" in res.stdout
    assert "forkman ci" in (cwd / paths[0]).read_text()
    leftovers = [p for p in cwd.rglob("*") if ".git/" not in str(p) and ".tmp" in p.name]
    assert leftovers == []


def test_init_ci_rejects_unknown_provider(cwd: Path) -> None:
    res = run("init", "--ci", "jenkins")
    assert res.exit_code == 2 and "jenkins" in res.stderr


# -- FORK.md cards ------------------------------------------------------------------


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    return cwd


def test_card_of_a_plain_fork_and_check_stays_clean(forked: Path) -> None:
    res = run("card", "demo")
    assert res.exit_code == 0, res
    assert res.stdout.strip() == "created patches/demo/FORK.md"
    card = (forked / "patches/demo/FORK.md").read_text()
    entry = Project(forked).load_lock().forks["demo"]
    assert card.startswith("<!-- Rendered by `forkman card demo`")
    assert "# demo 1.0" in card
    assert entry.source.sha256 in card  # type: ignore[union-attr]
    assert entry.upstream_tree in card and entry.vendored_tree in card
    assert "None: the vendored tree is upstream as released." in card
    assert "Not audited yet" in card and "Not tested yet: run `forkman test demo`" in card
    assert "[[" not in card
    assert run("check").exit_code == 0  # the card lives outside the vendored tree
    assert run("card", "demo").stdout.strip() == "overwritten patches/demo/FORK.md"


def test_card_shows_publisher_patches_and_why_audit_and_tests(forked: Path) -> None:
    project = Project(forked)
    series = forked / "patches/demo"
    series.mkdir(parents=True)
    patch = series / "0001-fix-greeting.patch"
    patch.write_text(
        "From: Jane Doe <jane@example.org>\n"
        "Description: Greet politely\n"
        " Upstream greets with 'hello'; our users expect 'good day'.\n"
        " .\n"
        " Forwarded upstream as PR 12.\n"
        "Forwarded: https://example.org/pr/12\n"
        "---\n"
        "diff --git a/src/demo/__init__.py b/src/demo/__init__.py\n"
    )
    lock = project.load_lock()
    entry = lock.forks["demo"]
    record = PatchRecord(patch.relative_to(forked).as_posix(), file_digest(patch), ("GHSA-1234",))
    entry = replace(entry, patches=(record,))
    entry = (
        entry.with_section(
            "provenance",
            {"publisher": "github:example/demo workflow release.yml", "verified": True},
        )
        .with_section("audit", {"at": "2026-01-02T03:04:05Z", "vulnerabilities": 0})
        .with_section("test", {"at": "2026-01-02T03:05:00Z", "passed": 12, "failed": 0})
    )
    write_lock(project.lock_path, lock.with_entry(entry))
    res = run("card", "--stdout")
    assert res.exit_code == 0, res
    card = res.stdout
    assert "- **publisher**: github:example/demo workflow release.yml" in card
    assert "1. **Greet politely** (`patches/demo/0001-fix-greeting.patch`" in card
    assert "   fixes: GHSA-1234" in card
    assert "   Upstream greets with 'hello'; our users expect 'good day'." in card
    assert "   Forwarded upstream as PR 12." in card
    assert "- **vulnerabilities**: 0" in card
    assert "- **passed**: 12" in card
    assert not (forked / "patches/demo/FORK.md").exists()  # --stdout writes nothing


def test_dep3_subject_and_absent_description(tmp_path: Path) -> None:
    p = tmp_path / "a.patch"
    p.write_text("Subject: [PATCH] Make it faster\n\n---\n a | 1 +\n")
    assert patch_description(p) == "[PATCH] Make it faster"
    p.write_text("diff --git a/x b/x\nDescription: not a header\n")
    assert patch_description(p) == ""


def test_card_unknown_fork(forked: Path) -> None:
    res = run("card", "nope")
    assert res.exit_code == 2 and "no fork named 'nope'" in res.stderr


def test_init_cards(forked: Path) -> None:
    res = run("init", "--cards")
    assert res.exit_code == 0, res
    assert "created patches/demo/FORK.md" in res.stdout
    git(forked, "status")  # still a healthy repository


@pytest.mark.slow
@pytest.mark.network
def test_templates_ship_inside_the_wheel(tmp_path: Path) -> None:
    """Build the wheel (setuptools from PyPI, isolated) and read the templates from it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("forkman-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in template_names():
        assert f"forkman/templates/{template}" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.resources as r; print(r.files('forkman.templates'))",
        ],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == str(target / "forkman" / "templates")
