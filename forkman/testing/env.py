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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.errors import BuildError
from ..core.observer import NullObserver, Observer
from ..model.lock import LockEntry
from ..model.project import Project
from ..sandbox import ForkServer, SandboxPolicy
from .build import Builder, BuiltWheel, copy_tree
from .wheels import (
    FORMAT,
    PYTHON_ID,
    cache_key,
    cached_venv,
    install_wheels,
    parse_requirements,
    site_of,
)

__all__ = [
    "BuiltWheel",
    "TestEnv",
    "copy_tree",
    "install_wheels",
    "parse_requirements",
    "prepare_test_env",
]


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
    builder = Builder(project, server, policy, observer, no_sandbox)
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

    path, reused = cached_venv("envs", key_data, fill)
    site = site_of(path)
    return TestEnv(
        path=path,
        python=path / "bin" / "python",
        site=site,
        key=cache_key({"format": FORMAT, "python": PYTHON_ID, **key_data}),
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
