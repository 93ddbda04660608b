"""A fork's wheel, built inside the sandbox from a copy of its vendored tree.

Building runs the fork's own code (its PEP 517 backend, its ``setup.py``), so it
happens inside the sandbox, with no network: the build requirements are fetched
as wheels into a cached build venv (:mod:`forkman.testing.wheels`), then
``get_requires_for_build_wheel`` and ``build_wheel`` run in the sandbox. Wheels
are cached by the tree hash they were built from.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ..core.errors import BuildError
from ..core.fs import file_sha256, remove_tree, staging_dir
from ..core.observer import Observer
from ..model.lock import LockEntry
from ..model.project import Project, cache_root
from ..sandbox import ForkServer, RunResult, SandboxPolicy
from ..store.treehash import tree_hash
from .wheels import FORMAT, PYTHON_ID, cache_key, cached_venv, install_wheels, parse_requirements

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


class Builder:
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

        path, _ = cached_venv("buildenvs", {"requirements": reqs, "index": self.index_urls}, fill)
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
            key = cache_key(
                {"format": FORMAT, "python": PYTHON_ID, "index": self.index_urls, "tree": tree}
            )
            wheels = cache_root() / "wheels"
            wheels.mkdir(parents=True, exist_ok=True)
            cache = wheels.resolve() / key[:32]
            meta = cache / "forkman-wheel.json"
            if meta.is_file():
                info = json.loads(meta.read_text(encoding="utf-8"))
                path = cache / str(info["file"])
                if path.is_file() and file_sha256(path) == info["sha256"]:
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
            digest = file_sha256(built)
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
