"""Provenance: real Sigstore material verified offline, and negatives derived from it."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.version import Version

from forkman.audit.provenance import (
    Publisher,
    PublisherKind,
    check_publisher_change,
    downloaded_file,
    fetch_provenance,
    provenance_url_from_index,
    verify_any,
    verify_bundle,
    verify_provenance,
)
from forkman.cli import cli
from forkman.core.errors import NetworkError, SecurityError
from forkman.model.lock import IndexSource, load_lock
from forkman.sources.interface import DistKind, ReleaseFile
from tests.audit.helpers import entry, write_forks
from tests.conftest import shared_fixture
from tests.support.index import LocalIndex

SDIST = "pypi_attestations-0.0.19.tar.gz"
WHEEL = "bundle_v3_github.whl"
TRAILOFBITS = Publisher(
    PublisherKind.GITHUB, "trailofbits/pypi-attestations", "release.yml", ref="refs/tags/v0.0.19"
)


@pytest.fixture
def material(tmp_path: Path) -> Path:
    """A private copy of the attestation fixtures (tests alter copies, never the originals)."""
    src = shared_fixture("attestations")
    dest = tmp_path / "att"
    shutil.copytree(src, dest)
    return dest


def _provenance(material: Path) -> bytes:
    return (material / f"{SDIST}.provenance").read_bytes()


# -- PEP 740 provenance -----------------------------------------------------------------


def test_real_provenance_verifies_and_names_the_publisher(material: Path) -> None:
    publisher = verify_provenance(material / SDIST, _provenance(material))
    assert publisher.kind is PublisherKind.GITHUB
    assert publisher.repository == "trailofbits/pypi-attestations"
    assert publisher.workflow == "release.yml"
    assert publisher.ref == "refs/tags/v0.0.19"
    assert publisher.issuer == "https://token.actions.githubusercontent.com"
    assert publisher.same_identity(TRAILOFBITS)
    # The single attestations (publish and SLSA predicates) verify too.
    for suffix in ("publish.attestation", "slsa.attestation"):
        single = verify_any(material / SDIST, (material / f"{SDIST}.{suffix}").read_bytes())
        assert single.same_identity(publisher)


def test_one_changed_byte_in_the_artifact_fails(material: Path) -> None:
    data = bytearray((material / SDIST).read_bytes())
    data[len(data) // 2] ^= 0x01
    (material / SDIST).write_bytes(bytes(data))
    with pytest.raises(SecurityError, match=r"does not verify: .*digest"):
        verify_provenance(material / SDIST, _provenance(material))


def test_provenance_for_another_file_fails(material: Path) -> None:
    other = material / "pypi_attestations-0.0.20.tar.gz"
    shutil.copy(material / SDIST, other)
    with pytest.raises(SecurityError, match="subject does not match distribution name"):
        verify_provenance(other, _provenance(material))


@pytest.mark.parametrize(
    ("field", "value"),
    [("repository", "evil/pypi-attestations"), ("workflow", "other.yml")],
)
def test_provenance_claiming_another_publisher_fails(
    material: Path, field: str, value: str
) -> None:
    data = json.loads(_provenance(material))
    data["attestation_bundles"][0]["publisher"][field] = value
    with pytest.raises(SecurityError, match="does not verify"):
        verify_provenance(material / SDIST, json.dumps(data).encode())


def test_expected_publisher_must_match(material: Path) -> None:
    with pytest.raises(
        SecurityError, match=r"not by github: trailofbits/pypi-attestations, workflow other\.yml"
    ):
        verify_provenance(
            material / SDIST,
            _provenance(material),
            expected={
                "kind": "github",
                "repository": "trailofbits/pypi-attestations",
                "workflow": "other.yml",
            },
        )
    assert verify_provenance(material / SDIST, _provenance(material), expected=TRAILOFBITS)


def test_malformed_provenance_is_a_security_error(material: Path) -> None:
    with pytest.raises(SecurityError, match="malformed"):
        verify_provenance(material / SDIST, b'{"attestation_bundles": "nope"}')
    with pytest.raises(SecurityError, match="no attestation"):
        verify_provenance(material / SDIST, b'{"version": 1, "attestation_bundles": []}')
    data = json.loads(_provenance(material))
    att = data["attestation_bundles"][0]["attestations"][0]
    sig = bytearray(base64.b64decode(att["envelope"]["signature"]))
    sig[10] ^= 0xFF
    att["envelope"]["signature"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(SecurityError, match="does not verify"):
        verify_provenance(material / SDIST, json.dumps(data).encode())


# -- plain Sigstore bundles -------------------------------------------------------------


def test_real_bundle_verifies(material: Path) -> None:
    signer = verify_bundle(material / WHEEL, (material / f"{WHEEL}.sigstore").read_bytes())
    assert signer == Publisher(
        PublisherKind.GITHUB,
        "trailofbits/rfc8785.py",
        "release.yml",
        ref="refs/tags/v0.1.2",
        issuer="https://token.actions.githubusercontent.com",
    )
    identity = (
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    )
    assert (
        verify_bundle(
            material / WHEEL,
            (material / f"{WHEEL}.sigstore").read_bytes(),
            identity=identity,
            issuer="https://token.actions.githubusercontent.com",
        )
        == signer
    )


def test_bundle_negatives(material: Path) -> None:
    bundle = (material / f"{WHEEL}.sigstore").read_bytes()
    with pytest.raises(SecurityError, match="Certificate's SANs do not match"):
        verify_bundle(
            material / WHEEL,
            bundle,
            identity="https://github.com/evil/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
        )
    with pytest.raises(SecurityError, match="does not verify"):
        verify_bundle(material / WHEEL, bundle, issuer="https://accounts.google.com")
    # The bundle for the wheel over another file.
    with pytest.raises(SecurityError, match="does not verify pypi_attestations"):
        verify_bundle(material / SDIST, bundle)
    changed = bytearray((material / WHEEL).read_bytes())
    changed[100] ^= 0x01
    (material / WHEEL).write_bytes(bytes(changed))
    with pytest.raises(SecurityError, match="digest mismatch"):
        verify_bundle(material / WHEEL, bundle)
    with pytest.raises(SecurityError, match="malformed"):
        verify_bundle(material / SDIST, bundle[: len(bundle) // 2])
    with pytest.raises(SecurityError, match="not JSON"):
        verify_any(material / SDIST, b"\x00\x01")


# -- policy -----------------------------------------------------------------------------


def test_check_publisher_change() -> None:
    recorded = TRAILOFBITS.to_lock()
    # Same publisher, new tag: fine.
    next_release = Publisher(
        PublisherKind.GITHUB,
        "trailofbits/pypi-attestations",
        "release.yml",
        ref="refs/tags/v0.0.20",
    )
    check_publisher_change(recorded, next_release, accept=False, require=False)
    moved = Publisher(PublisherKind.GITHUB, "someone/pypi-attestations", "release.yml")
    with pytest.raises(SecurityError, match="publisher changed: was github: trailofbits") as exc:
        check_publisher_change(recorded, moved, accept=False, require=False)
    assert "--accept-publisher-change" in (exc.value.hint or "")
    other_workflow = Publisher(PublisherKind.GITHUB, "trailofbits/pypi-attestations", "ci.yml")
    with pytest.raises(SecurityError, match="publisher changed"):
        check_publisher_change(recorded, other_workflow, accept=False, require=False)
    check_publisher_change(recorded, moved, accept=True, require=False)
    with pytest.raises(SecurityError, match="this one has none"):
        check_publisher_change(recorded, None, accept=False, require=False)
    check_publisher_change(recorded, None, accept=True, require=False)
    check_publisher_change(None, None, accept=False, require=False)
    with pytest.raises(SecurityError, match="require-provenance"):
        check_publisher_change(None, None, accept=True, require=True)
    env_a = Publisher(PublisherKind.GITLAB, "g/p", ".gitlab-ci.yml", environment="release")
    env_b = Publisher(PublisherKind.GITLAB, "g/p", ".gitlab-ci.yml", environment="staging")
    with pytest.raises(SecurityError):
        check_publisher_change(env_a.to_lock(), env_b, accept=False, require=False)


def test_publisher_round_trips_through_the_lock_table() -> None:
    assert Publisher.from_lock(TRAILOFBITS.to_lock()) == TRAILOFBITS


# -- the index serving provenance the way PyPI does -------------------------------------


@pytest.mark.parametrize("serve_json", [True, False], ids=["json", "html"])
def test_index_announced_provenance_is_fetched_and_verifies(
    local_index: LocalIndex, material: Path, serve_json: bool
) -> None:
    local_index.serve_json = serve_json
    local_index.add_file("pypi-attestations", material / SDIST, provenance=_provenance(material))
    url = provenance_url_from_index(local_index.url, "pypi-attestations", SDIST)
    assert url is not None and url.endswith(f"/provenance/{SDIST}")
    release = ReleaseFile(
        SDIST, "unused", None, Version("0.0.19"), DistKind.SDIST, provenance_url=url
    )
    raw = fetch_provenance(release)
    assert raw is not None
    assert verify_provenance(material / SDIST, raw).same_identity(TRAILOFBITS)
    assert (
        fetch_provenance(ReleaseFile(SDIST, "u", None, Version("0.0.19"), DistKind.SDIST)) is None
    )


def test_announced_but_missing_provenance_is_an_error(local_index: LocalIndex) -> None:
    release = ReleaseFile(
        "x-1.tar.gz",
        "u",
        None,
        Version("1"),
        DistKind.SDIST,
        provenance_url=f"{local_index.base}/provenance/x-1.tar.gz",
    )
    with pytest.raises(NetworkError, match="could not fetch"):
        fetch_provenance(release)


# -- forkman provenance NAME ------------------------------------------------------------


def _fork_from_index(
    project: Path, local_index: LocalIndex, path: Path, provenance: bytes | None
) -> str:
    """Serve `path` on the index, put it in the download cache, record it in the lock."""
    name = "pypi-attestations"
    local_index.add_file(name, path, provenance=provenance)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    cached = downloaded_file(sha, path.name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, cached)
    e = entry(name, "0.0.19", sha256=sha)
    from dataclasses import replace

    assert isinstance(e.source, IndexSource)
    e = replace(e, source=replace(e.source, index_url=local_index.url, filename=path.name))
    write_forks(project, e)
    return name


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--project", str(project), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_provenance_command_verifies_and_records_the_publisher(
    project: Path, local_index: LocalIndex, material: Path
) -> None:
    name = _fork_from_index(project, local_index, material / SDIST, _provenance(material))
    code, out, err = run(project, "provenance", name)
    assert code == 0, err
    assert "published by github: trailofbits/pypi-attestations, workflow release.yml" in out
    table = load_lock(project / "forkman.lock").forks[name].sections["provenance"]
    assert table["repository"] == "trailofbits/pypi-attestations"
    assert table["workflow"] == "release.yml"
    assert table["kind"] == "github"
    assert table["file"] == SDIST


def test_provenance_command_fails_on_a_tampered_file(
    project: Path, local_index: LocalIndex, material: Path
) -> None:
    name = _fork_from_index(project, local_index, material / SDIST, _provenance(material))
    before = (project / "forkman.lock").read_bytes()
    lock = load_lock(project / "forkman.lock")
    src = lock.forks[name].source
    cached = downloaded_file(src.sha256, SDIST)  # type: ignore[union-attr]
    data = bytearray(cached.read_bytes())
    data[200] ^= 1
    cached.write_bytes(bytes(data))
    code, _, err = run(project, "provenance", name)
    assert code == 2
    assert "the lock pins" in err
    assert (project / "forkman.lock").read_bytes() == before


def test_provenance_command_with_a_supplied_attestation(
    project: Path, local_index: LocalIndex, material: Path
) -> None:
    name = _fork_from_index(project, local_index, material / SDIST, None)
    code, _, err = run(project, "provenance", name)
    assert code == 1
    assert "offers no provenance" in err
    code, out, err = run(
        project, "provenance", name, "--attestation", str(material / f"{SDIST}.publish.attestation")
    )
    assert code == 0, err
    assert "trailofbits/pypi-attestations" in out
    # A bundle for another file does not verify this one.
    code, _, err = run(
        project, "provenance", name, "--attestation", str(material / f"{WHEEL}.sigstore")
    )
    assert code == 1
    assert "does not verify" in err


def test_provenance_command_refuses_a_publisher_change(
    project: Path, local_index: LocalIndex, material: Path
) -> None:
    name = _fork_from_index(project, local_index, material / SDIST, _provenance(material))
    lock = load_lock(project / "forkman.lock")
    recorded = {
        "kind": "github",
        "repository": "trailofbits/pypi-attestations",
        "workflow": "old.yml",
    }
    from forkman.model.lock import write_lock

    write_lock(
        project / "forkman.lock",
        lock.with_entry(lock.forks[name].with_section("provenance", recorded)),
    )
    code, _, err = run(project, "provenance", name)
    assert code == 1
    assert "workflow old.yml" in err
    assert (
        load_lock(project / "forkman.lock").forks[name].sections["provenance"]["workflow"]
        == "old.yml"
    )
    code, _, _ = run(project, "provenance", name, "--accept-publisher-change")
    assert code == 0
    assert (
        load_lock(project / "forkman.lock").forks[name].sections["provenance"]["workflow"]
        == "release.yml"
    )


def test_require_provenance_refuses_an_unattested_release(
    project: Path, local_index: LocalIndex, material: Path
) -> None:
    name = _fork_from_index(project, local_index, material / SDIST, None)
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text()
        + f"\n[tool.forkman.forks.{name}.audit]\nrequire-provenance = true\n"
    )
    code, _, err = run(project, "provenance", name)
    assert code == 1
    assert "policy require-provenance" in err


def test_check_release_is_what_sync_calls(local_index: LocalIndex, material: Path) -> None:
    from forkman.audit.provenance import check_release

    local_index.add_file("pypi-attestations", material / SDIST, provenance=_provenance(material))
    url = provenance_url_from_index(local_index.url, "pypi-attestations", SDIST)
    attested = ReleaseFile(SDIST, "u", None, Version("0.0.19"), DistKind.SDIST, provenance_url=url)
    bare = ReleaseFile(SDIST, "u", None, Version("0.0.19"), DistKind.SDIST)
    publisher = check_release(attested, material / SDIST, None)
    assert publisher is not None and publisher.same_identity(TRAILOFBITS)
    assert check_release(attested, material / SDIST, TRAILOFBITS.to_lock()) == publisher
    assert check_release(bare, material / SDIST, None) is None
    with pytest.raises(SecurityError, match="this one has none"):
        check_release(bare, material / SDIST, TRAILOFBITS.to_lock())
    with pytest.raises(SecurityError, match="require-provenance"):
        check_release(bare, material / SDIST, None, require=True)
    moved = {
        "kind": "github",
        "repository": "elsewhere/pypi-attestations",
        "workflow": "release.yml",
    }
    with pytest.raises(SecurityError, match="publisher changed"):
        check_release(attested, material / SDIST, moved)
    assert check_release(attested, material / SDIST, moved, accept=True) == publisher


def test_git_forks_and_missing_downloads_are_bad_input(project: Path) -> None:
    from dataclasses import replace

    from forkman.model.lock import GitSource

    git_fork = replace(
        entry("gitdep", "1.0"), source=GitSource("https://example.invalid/r.git", "v1", "a" * 40)
    )
    write_forks(project, git_fork, entry("notcached", "1.0"))
    code, _, err = run(project, "provenance", "gitdep")
    assert code == 2 and "comes from git" in err
    code, _, err = run(project, "provenance", "notcached")
    assert code == 2 and "not in the download cache" in err
    code, _, err = run(project, "provenance", "ghost")
    assert code == 2 and "no fork named 'ghost'" in err


def test_pep740_publishers_of_every_platform_map_to_publisher() -> None:
    from pypi_attestations import GitHubPublisher, GitLabPublisher, GooglePublisher

    from forkman.audit.provenance import _from_pep740_publisher

    cert = Publisher(PublisherKind.OTHER, "x", ref="refs/tags/v1", issuer="https://gitlab.com")
    gitlab = _from_pep740_publisher(
        GitLabPublisher(
            repository="group/sub/proj", workflow_filepath="ci/release.yml", environment="pypi"
        ),
        cert,
    )
    assert gitlab == Publisher(
        PublisherKind.GITLAB,
        "group/sub/proj",
        "ci/release.yml",
        "pypi",
        "refs/tags/v1",
        "https://gitlab.com",
    )
    assert "CI file ci/release.yml" in gitlab.describe()
    github = _from_pep740_publisher(
        GitHubPublisher(repository="o/r", workflow="release.yml", environment="release"), cert
    )
    assert (github.kind, github.environment) == (PublisherKind.GITHUB, "release")
    google = _from_pep740_publisher(GooglePublisher(email="ci@p.iam.gserviceaccount.com"), cert)
    assert (google.kind, google.repository) == (
        PublisherKind.GOOGLE,
        "ci@p.iam.gserviceaccount.com",
    )
    assert Publisher.from_lock(gitlab.to_lock()) == gitlab
