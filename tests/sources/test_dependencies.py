"""The one dependency reader, on a real sdist: its rules, and the two readers that use it agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forkman.audit.review import review_delta
from forkman.sources.delta import summarize_delta
from forkman.sources.dependencies import DependencyKind, read_file, read_tree
from forkman.sources.unpack import unpack_archive
from tests.conftest import shared_fixture

SDIST = "pypi_attestations-0.0.19.tar.gz"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """The real pypi-attestations 0.0.19 sdist, unpacked as sync unpacks it."""
    tree = tmp_path / "new"
    unpack_archive(shared_fixture("attestations", SDIST), tree)
    return tree


def test_reads_a_real_pyproject(release: Path) -> None:
    deps = read_tree(release)
    run = [d.requirement for d in deps if d.kind is DependencyKind.RUN]
    # the requirement as written, white space collapsed; the name in PEP 503 form
    assert run == [
        "cryptography",
        "packaging",
        "pyasn1 ~= 0.6",
        "pydantic >= 2.10.0",
        "sigstore >= 3.5.3, < 3.6",
        "sigstore-protobuf-specs",
    ]
    assert {d.field for d in deps if d.kind is DependencyKind.RUN} == {"dependencies"}
    by_label = {d.label: d for d in deps}
    assert by_label["coverage[toml] [extra: test]"].name == "coverage"
    assert by_label["coverage[toml] [extra: test]"].field == "optional-dependencies.test"
    assert by_label["build [extra: dev]"].extra == "dev"
    # the project's own name is not a dependency: `pypi-attestations[test]` is left out
    assert not any(d.name == "pypi-attestations" for d in deps)
    assert "build-system.requires" not in {d.field for d in deps}  # the sdist declares none


def test_setup_cfg_and_requirements_follow_setuptools_and_pip(release: Path) -> None:
    (release / "setup.cfg").write_text(
        "[metadata]\nname = pypi_attestations\n\n"
        "[options]\ninstall_requires =\n"
        '    importlib-metadata; python_version < "3.8"\n'
        "    # not a requirement\n"
        "    Typing_Extensions>=4\n"
        "setup_requires = wheel; setuptools-scm\n\n"
        "[options.extras_require]\nall = pypi-attestations[doc]\n"
    )
    (release / "requirements-dev.txt").write_text(
        "-r requirements.txt\n-e .\n# tools\nblack==24.1  # the formatter\n"
    )
    cfg = [d for d in read_tree(release) if d.field in {"install_requires", "setup_requires"}]
    # several lines: one requirement a line, markers kept; one line: split at `;`
    assert [(d.label, d.name) for d in cfg] == [
        ('importlib-metadata; python_version < "3.8"', "importlib-metadata"),
        ("Typing_Extensions>=4", "typing-extensions"),
        ("wheel [build]", "wheel"),
        ("setuptools-scm [build]", "setuptools-scm"),
    ]
    assert not any(d.field == "extras_require.all" for d in read_tree(release))  # itself
    txt = read_file("requirements-dev.txt", (release / "requirements-dev.txt").read_text())
    assert [d.requirement for d in txt] == ["black==24.1"]


def test_summary_and_review_read_the_same_dependencies(tmp_path: Path, release: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(release, old)
    pyproject = (old / "pyproject.toml").read_text()
    assert '    "pydantic >= 2.10.0",\n' in pyproject and 'doc = ["pdoc"]' in pyproject
    (old / "pyproject.toml").write_text(
        pyproject.replace('    "pydantic >= 2.10.0",\n', "")  # new in the release
        .replace('"pyasn1 ~= 0.6"', '"pyasn1 ~= 0.5"')  # a changed range
        .replace('doc = ["pdoc"]', 'doc = []\nextra = ["pdoc"]')  # moved between extras
    )
    summary = summarize_delta(old, release)
    # the summary lists requirements: a new one, a changed range, a moved extra
    assert summary.new_dependencies == (
        "pdoc [extra: doc]",
        "pyasn1 ~= 0.6",
        "pydantic >= 2.10.0",
    )
    assert summary.removed_dependencies == ("pdoc [extra: extra]", "pyasn1 ~= 0.5")
    # the review reports names no list of the old release had: new code from new people
    found = [f for f in review_delta(old, release) if f.rule == "new-dependency"]
    assert [(f.file, f.message) for f in found] == [
        ("pyproject.toml", "dependencies gains pydantic")
    ]
    assert found[0].line == pyproject.splitlines().index('    "pydantic >= 2.10.0",') + 1
