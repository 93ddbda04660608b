"""Git upstreams: a repository at a pinned commit.

A spec looks like ``git+https://host/org/repo@v1.2.0#subdirectory=pkg``
(also ``git+ssh://``, ``git+http://``, ``git+file:///abs/path``). The ref is a
tag, a branch or a commit; without one, the remote's default branch is used.
Either way the lock records the full commit id it resolved to.

Remotes are kept as bare mirrors in ``cache_root()/git/<sha256(url)[:16]>.git``
so a second fork, a sync or ``forkman verify`` of a recorded commit needs no
network. A tree is exported with ``git archive`` into a tar that goes through
:func:`forkman.sources.unpack.unpack_archive`, so git sources meet the same safety
rules as sdists. ``export-ignore`` and ``export-subst`` attributes are
disabled: the export is exactly the committed tree.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from packaging.version import InvalidVersion, Version

from ..core.errors import BadInput, GitError, IntegrityError, NetworkError, NotFound
from ..core.fs import fsync_dir
from ..core.git import run
from ..core.observer import NullObserver, Observer
from ..model.project import cache_root
from .unpack import unpack_archive

if TYPE_CHECKING:
    from subprocess import CompletedProcess

    from ..model.lock import GitSource
    from ..model.project import Project

__all__ = [
    "GitSpec",
    "check_declared_remote",
    "export",
    "guess_version",
    "is_git_spec",
    "mirror_path",
    "parse_git_spec",
    "resolve",
]

_SCHEMES = ("https", "http", "ssh", "file", "git")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|\.lock$|/$|^/|\.$")
_EXAMPLE = "e.g. git+https://github.com/org/repo@v1.2.0 or git+file:///abs/path@main"
_NOT_FOUND_MARKERS = (
    "not found",
    "does not exist",
    "does not appear to be a git repository",
    "no such file or directory",
)


@dataclass(frozen=True)
class GitSpec:
    """A parsed git upstream spec."""

    url: str
    """The repository URL given to git (without ``git+``, ref or fragment)."""
    ref: str
    """The tag, branch or commit asked for; empty for the default branch."""
    subdirectory: str = ""
    """The project's directory inside the repository, if not its root."""


def is_git_spec(spec: str) -> bool:
    """Whether `spec` names a git upstream (starts with ``git+``)."""
    return spec.strip().startswith("git+")


def parse_git_spec(spec: str) -> GitSpec:
    """Parse ``git+<url>[@ref][#subdirectory=path]``."""
    text = spec.strip()
    if not text.startswith("git+"):
        raise BadInput(f"{spec!r} is not a git spec", hint=_EXAMPLE)
    rest, _, fragment = text[len("git+") :].partition("#")
    subdirectory = ""
    for item in filter(None, fragment.split("&")):
        key, sep, value = item.partition("=")
        if key == "subdirectory" and sep:
            subdirectory = _check_subdirectory(unquote(value), spec)
        elif key == "egg":
            continue
        else:
            raise BadInput(
                f"unknown fragment {item!r} in {spec!r}",
                hint="only #subdirectory=path is understood",
            )
    parts = urlsplit(rest)
    if parts.scheme not in _SCHEMES:
        raise BadInput(
            f"{spec!r}: unsupported git URL scheme {parts.scheme or '(none)'!r}",
            hint=_EXAMPLE,
        )
    path, ref = parts.path, ""
    if "@" in path:
        path, ref = path.rsplit("@", 1)
        if not ref:
            raise BadInput(f"{spec!r} has an empty ref after '@'", hint=_EXAMPLE)
        _check_ref(ref, spec)
    if parts.query:
        raise BadInput(f"{spec!r}: query strings are not supported in git URLs", hint=_EXAMPLE)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise BadInput(
                f"{spec!r}: a file URL needs an absolute path (git+file:///abs/path)",
                hint=_EXAMPLE,
            )
    elif not parts.netloc or not path.strip("/"):
        raise BadInput(f"{spec!r} names no host or repository", hint=_EXAMPLE)
    url = f"{parts.scheme}://{parts.netloc}{path}"
    return GitSpec(url=url, ref=ref, subdirectory=subdirectory)


def _check_ref(ref: str, spec: str) -> None:
    if ref.startswith("-") or _BAD_REF.search(ref):
        raise BadInput(f"{ref!r} in {spec!r} is not a valid git ref", hint=_EXAMPLE)


def _check_subdirectory(value: str, spec: str) -> str:
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if (
        value.startswith("/")
        or "\\" in value
        or any(p == ".." or p.casefold() == ".git" for p in parts)
        or any(ord(c) < 32 for c in value)
    ):
        raise BadInput(
            f"subdirectory {value!r} in {spec!r} must be a relative path inside the repository"
        )
    return "/".join(parts)


# -- running git -------------------------------------------------------------------


# What the network commands (clone, fetch) need beyond the environment of the
# repositories forkman keeps: never a prompt, and a remote that trickles (slower
# than 1 KiB/s for a minute) is given up on.
_NETWORK = {
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "GCM_INTERACTIVE": "never",
    "GIT_HTTP_LOW_SPEED_LIMIT": "1024",
    "GIT_HTTP_LOW_SPEED_TIME": "60",
}


def _git(*args: str, cwd: Path | None = None, check: bool = True) -> CompletedProcess[bytes]:
    """Run git on a mirror (or to make one) (:func:`forkman.core.git.run`, ``remote=True``):
    the user's configuration reaches the remote (credentials, proxies), and no hook or
    fsmonitor command of the mirror's own configuration runs: mirrors live in the
    per-user cache, which CI may restore from elsewhere."""
    try:
        return run(*args, cwd=cwd, remote=True, env=_NETWORK, check=check)
    except GitError as exc:
        if exc.returncode:
            raise
        raise NetworkError(
            "git is not installed", hint="install git to fork from git repositories"
        ) from exc


def _stderr_text(proc: CompletedProcess[bytes]) -> str:
    raw = proc.stderr or b""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _stderr(proc: CompletedProcess[bytes]) -> str:
    """git's most telling error line: the first `fatal:`/`error:` line, else the last."""
    lines = [ln.strip() for ln in _stderr_text(proc).splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else f"git exited with {proc.returncode}"


def mirror_path(url: str) -> Path:
    """Where the bare mirror of `url` is cached."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return cache_root() / "git" / f"{digest}.git"


def _subject(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or url


def _remote_error(url: str, proc: CompletedProcess[bytes]) -> Exception:
    detail = _stderr(proc)
    if any(marker in _stderr_text(proc).lower() for marker in _NOT_FOUND_MARKERS):
        return NotFound(
            f"git repository {url} was not found: {detail}",
            hint="check the URL and that you have access to it",
        )
    return NetworkError(
        f"cannot fetch git repository {url}: {detail}",
        hint="check the URL and your network; a commit already fetched once "
        "is served from the local mirror without network",
    )


def _ensure_mirror(url: str, observer: Observer, *, update: bool) -> Path:
    """The bare mirror of `url`, cloned if absent and fetched when `update`."""
    _check_url(url)
    mirror = mirror_path(url)
    subject = _subject(url)
    if (mirror / "HEAD").is_file():
        if update:
            observer.step(subject, f"fetching {url}")
            proc = _git("fetch", "--prune", "--quiet", "--", "origin", cwd=mirror, check=False)
            if proc.returncode != 0:
                raise _remote_error(url, proc)
        return mirror
    observer.step(subject, f"cloning {url}")
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=mirror.parent))
    try:
        proc = _git("clone", "--mirror", "--quiet", "--", url, str(tmp / "m.git"), check=False)
        if proc.returncode != 0:
            raise _remote_error(url, proc)
        # Export the committed tree exactly: in-tree attributes must not drop
        # files (export-ignore) or rewrite them (export-subst).
        info = tmp / "m.git" / "info"
        info.mkdir(exist_ok=True)
        (info / "attributes").write_text("* -export-ignore -export-subst\n")
        try:
            os.rename(tmp / "m.git", mirror)
        except OSError:
            if not (mirror / "HEAD").is_file():  # not a concurrent clone that won
                raise
        fsync_dir(mirror.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return mirror


def _check_url(url: str) -> None:
    """Refuse URLs git would treat as commands or options (a lock file can be edited)."""
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES or "::" in url.split("/", 1)[0] or url.startswith("-"):
        raise BadInput(
            f"{url!r} is not a git URL forkman fetches from",
            hint=f"use one of {', '.join(s + '://' for s in _SCHEMES)}",
        )


def _remote_key(url: str) -> str:
    """A remote URL compared without credentials, host case or a trailing ``/`` / ``.git``."""
    parts = urlsplit(url.strip())
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    path = parts.path.rstrip("/").removesuffix(".git")
    return f"{parts.scheme.lower()}://{host}{path}"


def check_declared_remote(project: Project, name: str, source: GitSource) -> None:
    """Refuse a lock whose git remote is not the one ``[tool.forkman.forks.NAME]`` declares.

    When the fork's table declares a ``requirement``, the lock's source must
    match it: a git spec's repository URL (credentials, host case and a final
    ``.git`` aside), and never a git source for a declared index release. A
    fork without a declared requirement is pinned by the lock alone (commit id
    and tree hashes).
    """
    policy = project.config.forks.get(name)
    spec = policy.raw.get("requirement") if policy is not None else None
    if not isinstance(spec, str):
        return
    hint = (
        f"the remote comes from [tool.forkman.forks.{name}] requirement; restore "
        "forkman.lock from a trusted revision, or change the declared requirement first"
    )
    if not is_git_spec(spec):
        raise IntegrityError(
            f"{name} is declared as {spec!r}, but the lock records the git repository {source.url}",
            hint=hint,
        )
    declared = parse_git_spec(spec).url
    if _remote_key(declared) != _remote_key(source.url):
        raise IntegrityError(
            f"the lock records {name} from the git repository {source.url}, "
            f"but its declared remote is {declared}",
            hint=hint,
        )


def _rev_parse(mirror: Path, rev: str) -> str | None:
    proc = _git(
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{rev}^{{commit}}",
        cwd=mirror,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip()


def resolve(
    url: str,
    ref: str,
    *,
    observer: Observer = NullObserver(),
) -> str:
    """The full commit id that `ref` names in `url` (tags peeled; "" = default branch)."""
    if ref:
        _check_ref(ref, ref)
    known = mirror_path(url)
    if _COMMIT.match(ref) and (known / "HEAD").is_file():
        commit = _rev_parse(known, ref)
        if commit:
            return commit
    mirror = _ensure_mirror(url, observer, update=True)
    commit = _rev_parse(mirror, ref or "HEAD")
    if commit is None:
        if not ref:
            raise NotFound(f"git repository {url} has no default branch with commits")
        raise NotFound(
            f"ref {ref!r} was not found in {url}",
            hint="give an existing tag, branch or full commit id after '@'",
        )
    return commit


def export(
    url: str,
    commit: str,
    dest: Path,
    *,
    subdirectory: str = "",
    observer: Observer = NullObserver(),
) -> None:
    """Write the tree of `commit` (or its `subdirectory`) to the new directory `dest`."""
    if not _COMMIT.match(commit):
        raise BadInput(f"{commit!r} is not a full commit id")
    sub = _check_subdirectory(subdirectory, subdirectory) if subdirectory else ""
    mirror = _ensure_mirror(url, observer, update=False)
    if _rev_parse(mirror, commit) != commit:
        mirror = _ensure_mirror(url, observer, update=True)
        if _rev_parse(mirror, commit) != commit:
            raise NotFound(
                f"commit {commit} is not in {url}",
                hint="the upstream may have rewritten its history",
            )
    treeish = f"{commit}:{sub}" if sub else commit
    if sub and _git("cat-file", "-e", treeish, cwd=mirror, check=False).returncode != 0:
        raise NotFound(f"subdirectory {sub!r} does not exist at commit {commit[:12]} of {url}")
    if sub and _git("cat-file", "-t", treeish, cwd=mirror).stdout.strip() != b"tree":
        raise BadInput(f"{sub!r} at commit {commit[:12]} of {url} is not a directory")
    observer.step(_subject(url), f"exporting {commit[:12]}")
    fd, tar_name = tempfile.mkstemp(prefix=".git-export-", suffix=".tar", dir=mirror.parent)
    os.close(fd)
    tar_path = Path(os.path.abspath(tar_name))
    try:
        proc = _git(
            "archive", "--format=tar", f"--output={tar_path}", treeish, cwd=mirror, check=False
        )
        if proc.returncode != 0:
            raise NetworkError(
                f"git archive of {commit[:12]} from {url} failed: "
                f"{proc.stderr.decode('utf-8', 'replace').strip()}"
            )
        unpack_archive(tar_path, dest, strip_top=False)
    finally:
        tar_path.unlink(missing_ok=True)


def guess_version(tree: Path, ref: str, *, commit: str = "") -> str:
    """The version of the project in `tree`: declared, else from the ref, else the commit."""
    declared = _declared_version(tree)
    if declared:
        return declared
    candidate = ref.removeprefix("v") if ref.startswith(("v", "V")) else ref
    candidate = candidate.rsplit("/", 1)[-1] if "/" in candidate else candidate
    if candidate and not _COMMIT.match(candidate):
        try:
            Version(candidate)
        except InvalidVersion:
            pass
        else:
            return candidate
    if commit:
        return commit[:12]
    if ref:
        return ref[:12] if _COMMIT.match(ref) else ref
    return "0+unknown"


def _declared_version(tree: Path) -> str:
    pyproject = tree / "pyproject.toml"
    if pyproject.is_file() and not pyproject.is_symlink():
        try:
            data = tomllib.loads(pyproject.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        project = data.get("project")
        if isinstance(project, dict):
            version = project.get("version")
            if isinstance(version, str) and version.strip():
                return version.strip()
    setup_cfg = tree / "setup.cfg"
    if setup_cfg.is_file() and not setup_cfg.is_symlink():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(setup_cfg.read_text("utf-8"))
        except (configparser.Error, UnicodeDecodeError):
            return ""
        version = parser.get("metadata", "version", fallback="").strip()
        if version and not version.startswith(("attr:", "file:")):
            return version
    return ""
