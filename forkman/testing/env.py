"""The test environment of a fork, built with no fork code outside the sandbox.

Outside the sandbox forkman only downloads wheels (pip, ``--only-binary
:all:``, each file checked against the sha256 the configured index announces),
creates virtual environments and unpacks wheels into them: no code of a
wheel runs when it is unpacked, and no sdist is ever built on the host.

Building a fork runs its own code (its PEP 517 backend, its ``setup.py``),
so it happens inside the sandbox, with no network:

1. the vendored tree is copied to a scratch directory and hashed as it is on
   disk now (:func:`forkman.store.treehash.tree_hash`);
2. the build requirements of ``[build-system] requires`` (setuptools for a
   tree without one) are fetched as wheels into a build venv;
3. ``get_requires_for_build_wheel`` is asked inside the sandbox; the extra
   requirements it names are fetched as wheels the same way;
4. ``build_wheel`` runs inside the sandbox and writes the fork's wheel to the
   scratch directory; forkman checks its name and keeps it.

The test environment is a venv holding the fork's wheel, the wheels of the
forks it depends on (built the same way, never taken from the index), its
test requirements and pytest, all from the index as wheels. A test
requirement that exists only as an sdist is refused: fork it, and it is built
in the sandbox like any fork.

Everything is cached by content under ``cache_root()``: build venvs by their
requirements, wheels by the tree hash they were built from, test venvs by the
wheels, requirements, Python and index URLs they hold. A tree modified on disk
(a pull request's) therefore gets its own wheel and its own venv, which a run
on the pristine tree never reuses.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import venv
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from ..core.errors import BuildError, ConfigError, IntegrityError, NetworkError
from ..core.fs import remove_tree, staging_dir
from ..core.observer import NullObserver, Observer
from ..model.lock import LockEntry
from ..model.project import Project, cache_root
from ..sandbox import ForkServer, RunResult, SandboxPolicy
from ..store.treehash import file_digest, tree_hash

FORMAT = 2
"""Bumped when the layout of cached environments changes."""
PYTHON_ID = f"{sys.implementation.cache_tag} {sys.version} {sys.base_prefix}"
"""The interpreter every environment is made for."""
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)
"""PEP 517's fallback for a tree without ``[build-system] requires``."""
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
"""PEP 517's fallback backend (a tree with a ``setup.py`` only)."""
TEST_PACKAGE_NAMES = frozenset({"tests", "test", "testing", "docs", "benchmarks", "examples"})
"""Top-level names in a wheel that are not the fork's importable code."""
MAX_RESULT = 1 << 20
"""Bytes read at most from a file the sandboxed build wrote for forkman."""

_HOOK_RUNNER = r"""
import importlib, json, os, sys
hook, out_dir, result, backend, *backend_path = sys.argv[1:]
sys.path[:0] = [os.path.abspath(p) for p in backend_path]
module, _, attr = backend.partition(":")
obj = importlib.import_module(module)
for part in filter(None, attr.split(".")):
    obj = getattr(obj, part)
if hook == "get_requires_for_build_wheel":
    fn = getattr(obj, hook, None)
    value = list(fn({})) if fn is not None else []
else:
    value = obj.build_wheel(out_dir, {})
with open(result, "w") as f:
    json.dump({"value": value}, f)
"""
"""Runs one PEP 517 hook inside the sandbox, with the build venv's interpreter (``-I``)."""


@dataclass(frozen=True)
class BuiltWheel:
    """A fork's wheel, built in the sandbox from a vendored tree."""

    name: str
    """The fork's canonical name."""
    version: str
    """The version the wheel carries."""
    path: Path
    """The cached wheel file."""
    tree: str
    """Tree hash of the vendored tree (as it was on disk) the wheel was built from."""
    sha256: str
    """sha256 of the wheel file."""
    requires: tuple[str, ...]
    """Its ``Requires-Dist`` lines."""
    modules: tuple[str, ...]
    """Its top-level importable names (test packages excluded)."""


@dataclass(frozen=True)
class TestEnv:
    """A prepared test environment: a venv holding the fork's wheel."""

    path: Path
    """The venv."""
    python: Path
    """Its interpreter (run inside the sandbox only)."""
    site: Path
    """Its site-packages directory."""
    key: str
    """The content hash it is cached by."""
    tree: str
    """Tree hash of the fork's vendored tree as it was on disk when built."""
    version: str
    """The version of the fork's wheel."""
    modules: tuple[str, ...]
    """The fork's top-level importable names."""
    forks: tuple[str, ...]
    """Other forks of the project installed from their own builds."""
    reused: bool
    """It came from the cache."""

    __test__ = False


# ---- requirements ----------------------------------------------------------------


def _show(raw: str) -> str:
    return repr(raw if len(raw) <= 200 else raw[:200] + "...")


def parse_requirements(entries: Iterable[str], where: str) -> tuple[Requirement, ...]:
    """Each entry as a PEP 508 requirement; anything else (options, paths, URLs) is refused."""
    out: list[Requirement] = []
    for raw in entries:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: {raw!r} is not a string")
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            raise ConfigError(
                f"{where}: {_show(raw)} is not a PEP 508 requirement",
                hint="write `name`, `name>=1.0`, `name[extra]` or add a marker "
                "(`; python_version >= '3.12'`); pip options, paths and URLs are refused",
            ) from None
        if req.url is not None:
            raise ConfigError(
                f"{where}: {_show(raw)} is a direct URL reference, which forkman cannot "
                "check against the index's hashes",
                hint="name a release on the configured index, or fork the package",
            )
        out.append(req)
    return tuple(out)


# ---- pip, wheels only --------------------------------------------------------------


def _pip_error(stderr: str) -> str:
    """The lines of pip's output that say what went wrong."""
    lines = [ln.rstrip() for ln in stderr.strip().splitlines()]
    errors = [
        ln for ln in lines if ln.startswith("ERROR:") or ln.strip().startswith(("Expected", "Got"))
    ]
    return "\n".join(errors[-6:] or lines[-1:] or ["pip failed"])


def install_wheels(
    site: Path,
    wheels: Sequence[Path],
    requirements: Sequence[Requirement],
    index_urls: Sequence[str],
    *,
    what: str,
    hint: str,
) -> None:
    """Unpack `wheels` and the wheels `requirements` resolve to (from the index) into `site`.

    pip runs with ``--only-binary :all:`` (it never builds anything), in an empty
    folder with no configuration but ours, every argument after ``--``; every
    file it downloads must carry the index's sha256 (checked by pip, and its
    presence by forkman from pip's report).
    """
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise NetworkError(
            f"cannot install the {what}: the Python forkman runs from has no pip",
            hint="install pip into forkman's environment (forkman unpacks wheels with it)",
        )
    own = {w.resolve().as_uri() for w in wheels}
    with tempfile.TemporaryDirectory(prefix="forkman-pip-") as tmp:
        report = Path(tmp) / "report.json"
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "--no-input",
            "install",
            f"--target={site}",
            "--only-binary=:all:",
            "--no-warn-script-location",
            "--progress-bar=off",
            f"--report={report}",
            f"--index-url={index_urls[0]}",
            *(f"--extra-index-url={url}" for url in index_urls[1:]),
            "--",
            *(str(w.resolve()) for w in wheels),
            *(str(r) for r in requirements),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
        if out.returncode != 0:
            if "DO NOT MATCH THE HASHES" in out.stderr:
                raise IntegrityError(
                    f"cannot install the {what}: a downloaded file does not match the sha256 "
                    "hash the index announced\n" + _pip_error(out.stderr),
                    hint="the index or a proxy serves altered files; nothing was installed",
                )
            raise NetworkError(f"cannot install the {what}: " + _pip_error(out.stderr), hint=hint)
        try:
            items = json.loads(report.read_text(encoding="utf-8")).get("install", [])
        except (OSError, ValueError, AttributeError):
            raise IntegrityError(
                f"cannot install the {what}: pip wrote no readable report",
                hint="use pip 22.2 or newer in forkman's environment",
            ) from None
    _check_announced(items, own, index_urls, what)


def _check_announced(
    items: Sequence[Any], own: set[str], index_urls: Sequence[str], what: str
) -> None:
    """Every file pip downloaded is announced by the configured index with the sha256
    it has (pip checks an announced hash, but takes a file the index announces none for)."""
    from urllib.parse import unquote, urlsplit

    from ..sources.index import IndexClient

    client = IndexClient(index_urls)
    for item in items:
        info = item.get("download_info", {}) if isinstance(item, Mapping) else {}
        url = str(info.get("url", ""))
        if url in own:
            continue
        meta = item.get("metadata", {}) if isinstance(item, Mapping) else {}
        name = str(meta.get("name", ""))
        archive = info.get("archive_info", {}) or {}
        got = (archive.get("hashes", {}) or {}).get("sha256") or str(
            archive.get("hash", "")
        ).removeprefix("sha256=")
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        _index, files = client.project_files(name) if name else ("", [])
        announced = [f.sha256 for f in files if f.filename == filename]
        if not got or not announced or announced[0] != got:
            raise IntegrityError(
                f"cannot install the {what}: the index announces no sha256 for {filename} "
                f"({name} {meta.get('version', '')}), so forkman cannot check it"
                if not announced or not announced[0]
                else f"cannot install the {what}: {filename} does not match the sha256 the "
                "index announces",
                hint="use an index that announces hashes (#sha256= links, PEP 503/691)",
            )


def _venv(path: Path) -> tuple[Path, Path]:
    """Create an empty venv at `path` (no pip, nothing run); its python and site-packages."""
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=False).create(str(path))
    site = sysconfig.get_path("purelib", scheme="venv", vars={"base": path, "platbase": path})
    Path(site).mkdir(parents=True, exist_ok=True)
    return path / "bin" / "python", Path(site)


def _adopt_scripts(site: Path, bin_dir: Path, python: Path) -> None:
    """Move the scripts pip put in ``site/bin`` into the venv's bin, pointed at its python."""
    scripts = site / "bin"
    if not scripts.is_dir() or scripts.is_symlink():
        return
    for f in sorted(scripts.iterdir()):
        dest = bin_dir / f.name
        if dest.exists() or dest.is_symlink() or not f.is_file() or f.is_symlink():
            continue
        data = f.read_bytes()
        first, nl, rest = data.partition(b"\n")
        if first.startswith(b"#!") and b"python" in first:
            data = b"#!" + os.fsencode(python) + nl + rest
        dest.write_bytes(data)
        dest.chmod(0o755)
    shutil.rmtree(scripts)


def _key(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()


def _cached_venv(
    kind: str,
    key_data: Mapping[str, Any],
    fill: Any,
) -> tuple[Path, bool]:
    """The venv of `kind` keyed by `key_data`, created (and filled by `fill(site, python)`)
    when absent; returns its path and whether it was reused."""
    key = _key({"format": FORMAT, "python": PYTHON_ID, **key_data})
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()  # the sandbox binds resolved paths
    path = root / key[:32]
    meta = path / "forkman-env.json"
    if meta.is_file():
        return path, True
    with staging_dir(root, f".{key[:12]}-") as stage:
        _python, site = _venv(stage)
        fill(site)
        site_rel = site.relative_to(stage)
        _adopt_scripts(site, stage / "bin", path / "bin" / "python")
        (stage / "forkman-env.json").write_text(
            json.dumps({"key": key, "site": site_rel.as_posix(), **key_data}, sort_keys=True)
        )
        try:
            os.replace(stage, path)
        except OSError:
            if not meta.is_file():  # not a concurrent twin that won the race
                raise
    return path, False


def _site_of(path: Path) -> Path:
    info = json.loads((path / "forkman-env.json").read_text(encoding="utf-8"))
    return path / str(info["site"])


# ---- building in the sandbox --------------------------------------------------------


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a vendored tree (symlinks as links, bytecode caches left out)."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))


def _build_system(tree: Path, name: str) -> tuple[tuple[Requirement, ...], str, tuple[str, ...]]:
    """``[build-system]`` of `tree`: requirements, backend, backend-path."""
    where = f"[build-system] of the fork {name}"
    pyproject = tree / "pyproject.toml"
    table: Mapping[str, Any] = {}
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise BuildError(
                f"cannot build {name}: its pyproject.toml is unreadable: {exc}"
            ) from None
        raw = data.get("build-system", {})
        table = raw if isinstance(raw, Mapping) else {}
    elif not (tree / "setup.py").is_file():
        raise BuildError(
            f"cannot build {name}: its vendored tree has neither pyproject.toml nor setup.py",
            hint="fork it from an sdist or a git checkout that holds its build files",
        )
    requires_raw = table.get("requires", list(DEFAULT_BUILD_REQUIRES))
    if not isinstance(requires_raw, list):
        raise BuildError(f"cannot build {name}: {where}.requires is not a list")
    requires = parse_requirements(requires_raw, f"{where}.requires")
    backend = table.get("build-backend", LEGACY_BACKEND)
    paths = table.get("backend-path", [])
    if not isinstance(backend, str) or not backend or not isinstance(paths, list):
        raise BuildError(f"cannot build {name}: {where} is malformed")
    root = tree.resolve()
    for p in paths:
        if not isinstance(p, str) or not (tree / p).resolve().is_relative_to(root):
            raise BuildError(f"cannot build {name}: {where}.backend-path leaves the tree: {p!r}")
    return requires, backend, tuple(paths)


def _tail(run: RunResult, lines: int = 15) -> str:
    text = (run.stderr + b"\n" + run.stdout).decode("utf-8", "replace").strip().splitlines()
    return "\n".join("  | " + ln for ln in text[-lines:])


def _why(run: RunResult, policy: SandboxPolicy) -> str:
    if run.timed_out:
        return f"timed out after {policy.timeout:g}s ([tool.forkman.sandbox] timeout)"
    if run.memory_exceeded:
        return "exceeded its memory limit ([tool.forkman.sandbox] memory)"
    if run.processes_exceeded:
        return "exceeded its process limit ([tool.forkman.sandbox] max-processes)"
    return f"exited with status {run.returncode}"


def _read_result(path: Path) -> Any:
    if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_RESULT:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("value")
    except (OSError, ValueError, AttributeError):
        return None


def _wheel_metadata(path: Path, name: str, version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``Requires-Dist`` and the top-level importable names of a wheel (read, never run)."""
    requires: list[str] = []
    modules: set[str] = set()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        metas = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(metas) != 1:
            raise BuildError(f"the wheel built for {name} has {len(metas)} METADATA files, not 1")
        info = zf.getinfo(metas[0])
        if info.file_size > MAX_RESULT:
            raise BuildError(f"the wheel built for {name} has an oversized METADATA")
        msg = email.parser.BytesParser().parsebytes(zf.read(info))
        if canonicalize_name(str(msg.get("Name", ""))) != name:
            raise BuildError(f"the wheel built for {name} names another project: {msg.get('Name')}")
        requires = [str(r) for r in msg.get_all("Requires-Dist") or []]
        for n in names:
            parts = n.split("/")
            top = parts[0]
            if top.endswith((".dist-info", ".data")):
                continue
            if len(parts) > 1:
                stem = top  # a package directory
            elif top.endswith((".py", ".so", ".pyd")):
                stem = top.split(".", 1)[0]
            else:
                continue
            if stem.isidentifier() and stem not in TEST_PACKAGE_NAMES:
                modules.add(stem)
    del version
    return tuple(requires), tuple(sorted(modules))


class _Builder:
    """Builds forks' wheels in the sandbox, caching them by the tree they came from."""

    def __init__(
        self,
        project: Project,
        server: ForkServer,
        policy: SandboxPolicy,
        observer: Observer,
        no_sandbox: bool,
    ) -> None:
        self.project = project
        self.server = server
        self.policy = policy
        self.observer = observer
        self.no_sandbox = no_sandbox
        self.index_urls = list(project.config.index_urls)

    def _build_env(self, name: str, requires: Sequence[Requirement]) -> Path:
        reqs = sorted({str(r) for r in requires})

        def fill(site: Path) -> None:
            if reqs:
                self.observer.step(name, f"fetching {len(reqs)} build requirement(s) as wheels")
                install_wheels(
                    site,
                    [],
                    [Requirement(r) for r in reqs],
                    self.index_urls,
                    what=f"build requirements of {name} ({', '.join(reqs)})",
                    hint="forkman fetches build requirements as wheels only; check "
                    f"[build-system] requires of {name} and the index",
                )

        path, _ = _cached_venv("buildenvs", {"requirements": reqs, "index": self.index_urls}, fill)
        return path

    def _hook(
        self, name: str, env: Path, scratch: Path, hook: str, backend: str, paths: Sequence[str]
    ) -> Any:
        out_dir = scratch / "dist"
        out_dir.mkdir(exist_ok=True)
        result = scratch / f"{hook}.json"
        argv = [
            str(env / "bin" / "python"),
            "-I",
            "-c",
            _HOOK_RUNNER,
            hook,
            str(out_dir),
            str(result),
            backend,
            *paths,
        ]
        policy = replace(
            self.policy,
            writable=(scratch,),
            readonly=(*self.policy.readonly, env),
        )
        run_env = {k: v for k, v in os.environ.items() if k in policy.env_allow}
        run_env["PATH"] = f"{env / 'bin'}{os.pathsep}" + run_env.get("PATH", "/usr/bin:/bin")
        run = self.server.run(
            argv, policy, cwd=scratch / "src", env=run_env, disabled=self.no_sandbox
        )
        value = _read_result(result)
        if run.returncode != 0 or value is None:
            why = _why(run, self.policy) if run.returncode != 0 else "reported nothing"
            raise BuildError(
                f"cannot build the fork {name}: {hook} {why}"
                + (" [sandbox: " + run.tier_label + "]")
                + ("\n" + _tail(run) if run.stdout or run.stderr else ""),
                hint="fix the build (forkman builds each fork in the sandbox, without network; "
                "its build requirements must exist as wheels on the index)",
            )
        return value

    def build(self, entry: LockEntry, snapshot: Path | None = None) -> BuiltWheel:
        """The wheel of `entry` built from `snapshot` (a copy of its vendored tree; default:
        a fresh copy of the tree on disk), from the cache when that tree was built before."""
        name = canonicalize_name(entry.name)
        with tempfile.TemporaryDirectory(prefix=f"forkman-build-{name}-") as tmp:
            scratch = Path(tmp)
            src = scratch / "src"
            copy_tree(snapshot or (self.project.root / entry.path), src)
            tree = tree_hash(src)
            key = _key(
                {"format": FORMAT, "python": PYTHON_ID, "index": self.index_urls, "tree": tree}
            )
            wheels = cache_root() / "wheels"
            wheels.mkdir(parents=True, exist_ok=True)
            cache = wheels.resolve() / key[:32]
            meta = cache / "forkman-wheel.json"
            if meta.is_file():
                info = json.loads(meta.read_text(encoding="utf-8"))
                path = cache / str(info["file"])
                if path.is_file() and file_digest(path) == info["sha256"]:
                    dist_reqs, modules = _wheel_metadata(path, name, str(info["version"]))
                    return BuiltWheel(
                        name, str(info["version"]), path, tree, info["sha256"], dist_reqs, modules
                    )
                remove_tree(cache)
            requires, backend, paths = _build_system(src, entry.name)
            self.observer.step(entry.name, "building the fork in the sandbox")
            env = self._build_env(entry.name, requires)
            dynamic = self._hook(
                entry.name, env, scratch, "get_requires_for_build_wheel", backend, paths
            )
            if not isinstance(dynamic, list):
                raise BuildError(
                    f"cannot build {entry.name}: get_requires_for_build_wheel did not answer a list"
                )
            asked = parse_requirements(
                dynamic, f"the build requirements {entry.name}'s backend asked for"
            )
            if asked:
                env = self._build_env(entry.name, (*requires, *asked))
            filename = self._hook(entry.name, env, scratch, "build_wheel", backend, paths)
            built = scratch / "dist" / str(filename)
            if (
                not isinstance(filename, str)
                or "/" in filename
                or not built.is_file()
                or built.is_symlink()
            ):
                raise BuildError(f"cannot build {entry.name}: build_wheel named no wheel file")
            try:
                wname, version, _build, _tags = parse_wheel_filename(filename)
            except InvalidWheelFilename as exc:
                raise BuildError(f"cannot build {entry.name}: {exc}") from None
            if wname != name:
                raise BuildError(
                    f"cannot build {entry.name}: its build made a wheel of {wname}, not of the fork"
                )
            requires_dist, modules = _wheel_metadata(built, name, str(version))
            digest = file_digest(built)
            with staging_dir(cache.parent, f".{key[:12]}-") as stage:
                shutil.copy2(built, stage / filename)
                (stage / "forkman-wheel.json").write_text(
                    json.dumps(
                        {"file": filename, "sha256": digest, "version": str(version), "tree": tree},
                        sort_keys=True,
                    )
                )
                remove_tree(cache)
                try:
                    os.replace(stage, cache)
                except OSError:
                    if not meta.is_file():  # not a concurrent build of the same tree
                        raise
            return BuiltWheel(
                name, str(version), cache / filename, tree, digest, requires_dist, modules
            )


def _required_names(lines: Iterable[str], extras: Iterable[str]) -> dict[str, set[str]]:
    """Names required by `lines` (Requires-Dist or PEP 508), markers evaluated here,
    with the extras each asks for."""
    env = {k: str(v) for k, v in default_environment().items()}
    out: dict[str, set[str]] = {}
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not any(
            req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)
        ):
            continue
        out.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    return out


def prepare_test_env(
    project: Project,
    entry: LockEntry,
    requirements: Sequence[Requirement],
    server: ForkServer,
    policy: SandboxPolicy,
    *,
    extras: Sequence[str] = (),
    with_pytest: bool = True,
    snapshot: Path | None = None,
    no_sandbox: bool = False,
    observer: Observer | None = None,
) -> TestEnv:
    """The venv to test `entry` in: its wheel (built in the sandbox from `snapshot` or the
    tree on disk) over anything else of its name, the forks it depends on (built the same
    way), `requirements` and pytest (wheels from the index). Cached by content."""
    observer = observer or NullObserver()
    builder = _Builder(project, server, policy, observer, no_sandbox)
    name = canonicalize_name(entry.name)
    fork = builder.build(entry, snapshot)
    lock = project.load_lock()
    by_name: dict[str, LockEntry] = {canonicalize_name(e.name): e for e in lock}
    built: dict[str, BuiltWheel] = {name: fork}
    todo = _required_names(fork.requires, extras)
    for n, ex in _required_names((str(r) for r in requirements), ()).items():
        todo.setdefault(n, set()).update(ex)
    while todo:
        dep, dep_extras = todo.popitem()
        if dep in built or dep not in by_name:
            continue
        observer.step(entry.name, f"using the fork {dep} for its dependency on it")
        wheel = builder.build(by_name[dep])
        built[dep] = wheel
        for n, ex in _required_names(wheel.requires, sorted(dep_extras)).items():
            if n not in built:
                todo.setdefault(n, set()).update(ex)
    reqs = sorted({str(r) for r in requirements})
    if with_pytest:
        reqs.append("pytest")
    wheels = [fork.path, *(built[n].path for n in sorted(built) if n != name)]
    key_data = {
        "index": builder.index_urls,
        "wheels": [[n, w.tree, w.sha256] for n, w in sorted(built.items())],
        "requirements": reqs,
        "extras": sorted(extras),
    }

    def fill(site: Path) -> None:
        observer.step(entry.name, f"installing the fork and {len(reqs)} requirement(s) as wheels")
        fork_arg = [fork.path]
        extra_reqs: list[Requirement] = []
        if extras:
            extra_reqs.append(Requirement(f"{fork.name}[{','.join(extras)}]=={fork.version}"))
        install_wheels(
            site,
            [*fork_arg, *wheels[1:]],
            [*extra_reqs, *(Requirement(r) for r in reqs)],
            builder.index_urls,
            what=f"test requirements of {entry.name}",
            hint="forkman installs only wheels (from the index, hash-checked) outside the "
            "sandbox: check [tool.forkman.forks."
            f"{entry.name}.test] requirements; a requirement published only as an sdist "
            "must be forked (`forkman fork NAME`) to be built in the sandbox, or pinned to a "
            "version that has a wheel",
        )
        for dep, wheel in built.items():
            _require_single_install(site, dep, wheel.version)

    path, reused = _cached_venv("envs", key_data, fill)
    site = _site_of(path)
    return TestEnv(
        path=path,
        python=path / "bin" / "python",
        site=site,
        key=_key({"format": FORMAT, "python": PYTHON_ID, **key_data}),
        tree=fork.tree,
        version=fork.version,
        modules=fork.modules,
        forks=tuple(sorted(n for n in built if n != name)),
        reused=reused,
    )


def _require_single_install(site: Path, name: str, version: str) -> None:
    """The env holds exactly one distribution `name`: the fork's build, at `version`."""
    found = []
    for d in site.glob("*.dist-info"):
        stem = d.name.removesuffix(".dist-info")
        dist, _, ver = stem.rpartition("-")
        if canonicalize_name(dist) == name:
            found.append(ver)
    if found != [version]:
        raise BuildError(
            f"the test environment holds {name} {', '.join(found) or 'nothing'}, "
            f"not only the fork's build {version}",
            hint="a test requirement pins another version of the fork; relax it",
        )
