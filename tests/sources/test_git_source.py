"""Git upstreams against real repositories made in tmp_path."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from forkman.core.errors import BadInput, NetworkError, NotFound, UnsafeArchive
from forkman.core.observer import RecordingObserver
from forkman.model.project import cache_root
from forkman.sources.git import (
    GitSpec,
    export,
    guess_version,
    is_git_spec,
    mirror_path,
    parse_git_spec,
    resolve,
)
from tests.conftest import git


def _commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def upstream(tmp_path: Path) -> dict[str, str | Path]:
    """A repository: v1.0.0 (lightweight tag), v1.1.0 (annotated), a `feature` branch."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[project]\nname = "up"\nversion = "1.0.0"\n')
    (repo / "up").mkdir()
    (repo / "up" / "__init__.py").write_text("VALUE = 1\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")
    (repo / "run.sh").chmod(0o755)
    os.symlink("up/__init__.py", repo / "alias.py")
    # In-tree export attributes must not change what is exported.
    (repo / ".gitattributes").write_text("hidden.txt export-ignore\nsubst.txt export-subst\n")
    (repo / "hidden.txt").write_text("still exported\n")
    (repo / "subst.txt").write_text("$Format:%H$\n")
    (repo / "lib" / "sub").mkdir(parents=True)
    (repo / "lib" / "sub" / "setup.cfg").write_text("[metadata]\nname = sub\nversion = 0.3\n")
    (repo / "lib" / "sub" / "mod.py").write_text("X = 3\n")
    c1 = _commit_all(repo, "v1.0.0")
    git(repo, "tag", "v1.0.0")
    (repo / "up" / "__init__.py").write_text("VALUE = 2\n")
    (repo / "pyproject.toml").write_text('[project]\nname = "up"\nversion = "1.1.0"\n')
    c2 = _commit_all(repo, "v1.1.0")
    git(repo, "tag", "-a", "v1.1.0", "-m", "release 1.1.0")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "feature.txt").write_text("feature\n")
    c3 = _commit_all(repo, "feature work")
    git(repo, "checkout", "-q", "main")
    return {"repo": repo, "url": f"file://{repo}", "c1": c1, "c2": c2, "c3": c3}


# -- specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "git+https://example.invalid/org/repo@v1.2.0",
            GitSpec("https://example.invalid/org/repo", "v1.2.0"),
        ),
        (
            "git+https://example.invalid/org/repo.git",
            GitSpec("https://example.invalid/org/repo.git", ""),
        ),
        (
            "git+ssh://git@example.invalid/org/repo.git@release/2.x",
            GitSpec("ssh://git@example.invalid/org/repo.git", "release/2.x"),
        ),
        (
            "git+file:///srv/repos/thing@0123456789abcdef0123456789abcdef01234567",
            GitSpec("file:///srv/repos/thing", "0123456789abcdef0123456789abcdef01234567"),
        ),
        (
            "git+https://example.invalid/mono@main#subdirectory=packages/core",
            GitSpec("https://example.invalid/mono", "main", "packages/core"),
        ),
    ],
)
def test_parse_git_spec(spec: str, expected: GitSpec) -> None:
    assert is_git_spec(spec)
    assert parse_git_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "https://example.invalid/org/repo",
        "git+ftp://example.invalid/repo",
        "git+https://example.invalid/repo@",
        "git+https://example.invalid/repo@--upload-pack=evil",
        "git+https://example.invalid/repo@a..b",
        "git+https:///nohost",
        "git+file://relative/path",
        "git+https://example.invalid/repo#subdirectory=../escape",
        "git+https://example.invalid/repo#subdirectory=/abs",
        "git+https://example.invalid/repo#branch=main",
    ],
)
def test_bad_git_specs(spec: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_git_spec(spec)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "url", ["ext::sh -c touch% /tmp/pwned", "-uhelp", "fd::17", "/abs/path/without/scheme"]
)
def test_dangerous_urls_never_reach_git(url: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        resolve(url, "main")
    with pytest.raises(BadInput):
        export(url, "a" * 40, tmp_path / "x")
    assert not (cache_root() / "git").exists()


# -- resolve -------------------------------------------------------------------------


def test_resolve_tags_branches_and_commits(upstream: dict[str, str | Path]) -> None:
    url = str(upstream["url"])
    observer = RecordingObserver()
    assert resolve(url, "v1.0.0", observer=observer) == upstream["c1"]
    assert any("cloning" in text for _, text in observer.steps)
    assert (mirror_path(url) / "HEAD").is_file()
    assert str(mirror_path(url)).startswith(str(cache_root() / "git"))
    # annotated tag peeled to its commit, not the tag object
    assert resolve(url, "v1.1.0") == upstream["c2"]
    assert resolve(url, "feature") == upstream["c3"]
    assert resolve(url, "") == upstream["c2"]  # default branch HEAD
    assert resolve(url, str(upstream["c1"])) == upstream["c1"]
    assert resolve(url, str(upstream["c1"])[:10]) == upstream["c1"]


def test_resolve_sees_new_upstream_commits(upstream: dict[str, str | Path]) -> None:
    url, repo = str(upstream["url"]), Path(upstream["repo"])
    assert resolve(url, "main") == upstream["c2"]
    (repo / "new.txt").write_text("new\n")
    c4 = _commit_all(repo, "more")
    assert resolve(url, "main") == c4


def test_known_commit_resolves_without_the_remote(upstream: dict[str, str | Path]) -> None:
    url, repo = str(upstream["url"]), Path(upstream["repo"])
    resolve(url, "v1.0.0")
    repo.rename(repo.with_name("moved-away"))
    assert resolve(url, str(upstream["c1"])) == upstream["c1"]
    with pytest.raises(NotFound):
        resolve(url, "v1.0.0")  # a tag needs a fetch, and the remote is gone


def test_unknown_ref_is_not_found(upstream: dict[str, str | Path]) -> None:
    with pytest.raises(NotFound) as info:
        resolve(str(upstream["url"]), "v9.9.9")
    assert "v9.9.9" in info.value.message and str(upstream["url"]) in info.value.message


def test_unknown_repository_is_not_found(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/no-such-repo"
    with pytest.raises(NotFound) as info:
        resolve(url, "main")
    assert url in info.value.message
    assert not mirror_path(url).exists()
    assert [p for p in mirror_path(url).parent.glob(".*")] == []  # no half clone left


def test_unreachable_host_is_a_network_error() -> None:
    # Nothing listens on port 9 of localhost: the connection is refused at once.
    with pytest.raises(NetworkError) as info:
        resolve("http://127.0.0.1:9/org/repo.git", "main")
    assert "127.0.0.1:9" in info.value.message


# -- export ---------------------------------------------------------------------------


def _git_archive_listing(repo: Path, treeish: str) -> dict[str, tuple[str, bytes]]:
    """What `git archive` (with export attributes ignored) holds: path -> (kind, content)."""
    raw = subprocess.run(
        [
            "git",
            "-c",
            "core.attributesFile=/dev/null",
            "archive",
            "--format=tar",
            "--worktree-attributes",
            treeish,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_ATTR_NOSYSTEM": "1"},
    ).stdout
    out: dict[str, tuple[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar.getmembers():
            if m.isdir():
                continue
            if m.issym():
                out[m.name] = ("l", m.linkname.encode())
            else:
                fh = tar.extractfile(m)
                assert fh is not None
                out[m.name] = ("x" if m.mode & 0o111 else "f", fh.read())
    return out


def _tree_listing(root: Path) -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("l", os.readlink(path).encode())
        elif path.is_file():
            kind = "x" if path.stat().st_mode & stat.S_IXUSR else "f"
            out[rel] = (kind, path.read_bytes())
    return out


def test_export_is_exactly_the_commit_tree(upstream: dict[str, str | Path], tmp_path: Path) -> None:
    url, repo = str(upstream["url"]), Path(upstream["repo"])
    commit = resolve(url, "v1.0.0")
    # The working tree moved on; the export is the tagged commit.
    (repo / "up" / "__init__.py").write_text("VALUE = 'dirty'\n")
    dest = tmp_path / "vendor" / "up"
    export(url, commit, dest)
    tree = _tree_listing(dest)
    # export-ignore/export-subst are disabled for the comparison too
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* -export-ignore -export-subst\n")
    assert tree == _git_archive_listing(repo, commit)
    assert tree["up/__init__.py"] == ("f", b"VALUE = 1\n")
    assert tree["run.sh"][0] == "x"
    assert tree["alias.py"] == ("l", b"up/__init__.py")
    assert tree["hidden.txt"] == ("f", b"still exported\n")
    assert tree["subst.txt"] == ("f", b"$Format:%H$\n")
    assert not (dest / ".git").exists()
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "pyproject.toml").stat().st_mode) == 0o644


def test_export_subdirectory(upstream: dict[str, str | Path], tmp_path: Path) -> None:
    url = str(upstream["url"])
    commit = resolve(url, "v1.0.0")
    dest = tmp_path / "sub"
    export(url, commit, dest, subdirectory="lib/sub")
    assert sorted(p.name for p in dest.iterdir()) == ["mod.py", "setup.cfg"]
    assert guess_version(dest, "v1.0.0") == "0.3"


def test_export_errors(upstream: dict[str, str | Path], tmp_path: Path) -> None:
    url = str(upstream["url"])
    commit = resolve(url, "v1.0.0")
    with pytest.raises(NotFound, match="subdirectory"):
        export(url, commit, tmp_path / "a", subdirectory="no/such/dir")
    with pytest.raises(BadInput, match="not a directory"):
        export(url, commit, tmp_path / "b", subdirectory="pyproject.toml")
    with pytest.raises(NotFound, match="not in"):
        export(url, "f" * 40, tmp_path / "c")
    with pytest.raises(BadInput, match="full commit"):
        export(url, "v1.0.0", tmp_path / "d")
    assert list(tmp_path.glob("[abcd]")) == []


def test_verify_style_export_from_a_fresh_cache(
    upstream: dict[str, str | Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(upstream["url"])
    commit = resolve(url, "feature")
    monkeypatch.setenv("FORKMAN_CACHE_DIR", str(tmp_path / "fresh-cache"))
    export(url, commit, tmp_path / "again")  # clones again, then exports the recorded commit
    assert (tmp_path / "again" / "feature.txt").read_text() == "feature\n"


def test_hostile_tree_is_rejected_like_an_archive(tmp_path: Path) -> None:
    repo = tmp_path / "evil"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "ok.txt").write_text("ok\n")
    os.symlink("../../../etc/passwd", repo / "escape")
    commit = _commit_all(repo, "evil link")
    dest = tmp_path / "out" / "evil"
    with pytest.raises(UnsafeArchive, match="escape"):
        export(f"file://{repo}", commit, dest)
    assert not (tmp_path / "out").exists()


# -- versions -------------------------------------------------------------------------


def test_guess_version_order(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    assert guess_version(tree, "v2.3.4") == "2.3.4"
    assert guess_version(tree, "1.0rc1") == "1.0rc1"
    assert guess_version(tree, "main", commit="a" * 40) == "a" * 12
    assert guess_version(tree, "b" * 40) == "b" * 12
    (tree / "setup.cfg").write_text("[metadata]\nversion = attr: pkg.__version__\n")
    assert guess_version(tree, "v2.3.4") == "2.3.4"  # attr: is not a version
    (tree / "setup.cfg").write_text("[metadata]\nname = x\nversion = 0.7.1\n")
    assert guess_version(tree, "v2.3.4") == "0.7.1"
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["version"]\n')
    assert guess_version(tree, "v2.3.4") == "0.7.1"
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "3.0.0"\n')
    assert guess_version(tree, "v2.3.4") == "3.0.0"


def test_guess_version_of_exported_tags(upstream: dict[str, str | Path], tmp_path: Path) -> None:
    url = str(upstream["url"])
    export(url, resolve(url, "v1.1.0"), tmp_path / "t")
    assert guess_version(tmp_path / "t", "v1.1.0") == "1.1.0"
