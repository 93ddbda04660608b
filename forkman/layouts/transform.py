"""The namespace layout: turn a pristine wheel tree into privately vendored modules.

The core fetches a release (a wheel: the namespace layout vendors what
``pip install`` would put in site-packages), unpacks it into a pristine tree
and calls :func:`transform_tree`, which writes the fork's part of the shared
namespace directory into `out`:

1. the importable top-level packages and modules (``*.data/purelib`` and
   ``platlib`` merged in; ``dist-info`` and the other ``.data`` folders left
   out), never a name listed in ``protected-files``;
2. ``drop`` patterns removed (globs or regular expressions, relative to the
   namespace directory);
   (here, and only to carry over patches written for the vendoring tool, which
   applies its patches at this point: a ``before_rewrite`` hook)
3. substitutions, then imports of every vendored module rewritten into the
   namespace (:mod:`forkman.layouts.rewrite`);
4. license files: the wheel's ``dist-info/licenses`` (or ``LICENSE*`` /
   ``COPYING*`` files in its dist-info), else the sdist's, else an override
   (``license-source = "archive"``: every file of the release archive whose
   path says LICENSE or COPYING, as the vendoring tool takes them);
5. typing stubs ``<module>.pyi`` for modules that do not ship ``py.typed``.

It returns the record the core stores as the lock section ``namespace``:
``members`` (the top-level names this fork owns in the namespace directory;
the fork's tree hash covers only them), ``modules`` (its importable names)
and ``transform`` (what was applied). :func:`place_members` then installs
the members into the shared directory; :func:`members_tree_hash` hashes them.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import hashlib
import json
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..core.errors import BadInput, ConfigError, NetworkError, NotFound
from ..core.observer import Observer
from ..model.config import Config, NetworkLimits
from ..model.vendoring import LicenseOverride, StubPolicy, VendoringConfig, vendoring_config
from ..store.treehash import file_digest, hash_manifest, scan_tree
from .rewrite import RewriteMode, RewriteResult, rewrite_source

SECTION = "namespace"

SdistFetcher = Callable[[str, str], Path]
"""(distribution name, version) -> a downloaded sdist archive."""

_LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")
_EXTENSION_SUFFIXES = (".so", ".pyd")


def _dist_info(pristine: Path) -> Path:
    infos = sorted(p for p in pristine.glob("*.dist-info") if p.is_dir())
    if len(infos) != 1:
        raise BadInput(
            f"{pristine.name}: expected one .dist-info directory (a wheel), found {len(infos)}",
            hint='the namespace layout vendors wheels: set [tool.forkman] prefer = "wheel"',
        )
    return infos[0]


def read_metadata(dist_info: Path) -> dict[str, Any]:
    """Name, version and license fields of a dist-info's METADATA."""
    msg = email.parser.BytesParser().parsebytes((dist_info / "METADATA").read_bytes())
    classifiers = [c for c in msg.get_all("Classifier", []) if c.startswith("License ::")]
    meta: dict[str, Any] = {
        "name": str(msg.get("Name", "")),
        "version": str(msg.get("Version", "")),
        "license-classifiers": classifiers,
        "license-files": list(msg.get_all("License-File", [])),
    }
    if msg.get("License-Expression"):
        meta["license-expression"] = str(msg["License-Expression"]).strip()
    license_text = msg.get("License")
    if license_text and len(str(license_text)) < 200:
        meta["license"] = str(license_text).strip()
    return meta


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def _module_name(entry: Path) -> str | None:
    """The importable name of a top-level wheel entry (None for data files)."""
    if entry.is_dir():
        return entry.name if entry.name.isidentifier() else None
    if entry.suffix == ".py":
        return entry.stem
    if entry.suffix in _EXTENSION_SUFFIXES:
        return entry.name.split(".", 1)[0]
    return None


def _walk(root: Path) -> Iterable[tuple[str, Path]]:
    """Relative posix paths of every file and directory under `root`, parents first."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path = base / name
            yield path.relative_to(root).as_posix(), path


def _is_license_name(name: str) -> bool:
    return name.upper().startswith(_LICENSE_PREFIXES)


def _license_destination(
    out: Path, distname: str, filename: str, override: LicenseOverride | None
) -> Path:
    """Where a license file goes (the vendoring tool's rule, so migrated trees match)."""
    for candidate in (distname, distname.lower(), distname.replace("-", "_").lower()):
        if (out / candidate).is_dir():
            return out / candidate / filename
    if override and override.directory:
        return out / override.directory / filename
    return out / f"{distname}.{filename}"


def _licenses_from_sdist(sdist: Path) -> list[tuple[str, bytes]]:
    """(filename, content) of the license files of an sdist (or any release archive).

    The vendoring tool's rule, so migrated trees match: every file whose path
    contains ``LICENSE`` or ``COPYING``, except under test folders, in the
    archive's order.
    """
    found: list[tuple[str, bytes]] = []

    def want(name: str) -> bool:
        return ("LICENSE" in name or "COPYING" in name) and "/test" not in name

    if sdist.name.endswith((".zip", ".whl")):  # an index without sdists may hand a wheel
        with zipfile.ZipFile(sdist) as zf:
            for info in zf.infolist():
                if not info.is_dir() and want(info.filename):
                    found.append((info.filename.rsplit("/", 1)[-1], zf.read(info)))
    else:
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if member.isfile() and want(member.name):
                    fh = tar.extractfile(member)
                    if fh is not None:
                        found.append((member.name.rsplit("/", 1)[-1], fh.read()))
    return found


_CACHE_FORMAT = b"forkman-transform-2"


class TransformCache:
    """Results of rewriting files and reading sdists, by content digest (a cache: losing it
    only costs time). Lives under the per-user cache, e.g. ``cache_root() / "transform"``.

    The cache is shared by every project of the user (and may be restored from
    elsewhere in CI): each entry is sealed (:mod:`forkman.model.statetrust`) with a MAC
    under the user's secret key over its key (the digest of what it was computed
    from) and its value. An entry that does not verify, or that sits under another
    key, is a miss."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> bytes | None:
        """The stored value of `key`, or None."""
        from ..model.statetrust import read_sealed

        return read_sealed(str(self._path(key)), "transform", key)

    def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` (write then rename; no fsync, it is a cache)."""
        from ..model.statetrust import write_sealed

        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        write_sealed(str(path), "transform", key, value)


def _cached_rewrite(
    cache: TransformCache | None, context: bytes, data: bytes, rewrite: Callable[[], RewriteResult]
) -> RewriteResult:
    if cache is None:
        return rewrite()
    key = hashlib.sha256(context + data).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        header, _, body = hit.partition(b"\n")
        changed, imports, subs, *left = (int(x) for x in header.split())
        return RewriteResult(body if changed else data, imports, subs, tuple(left))
    result = rewrite()
    changed = result.data != data
    fields = [changed, result.imports, result.substitutions, *result.unrewritten]
    cache.put(key, b" ".join(b"%d" % f for f in fields) + b"\n" + (result.data if changed else b""))
    return result


def _cached_sdist_licenses(cache: TransformCache | None, sdist: Path) -> list[tuple[str, bytes]]:
    if cache is None:
        return _licenses_from_sdist(sdist)
    key = hashlib.sha256(_CACHE_FORMAT + b"sdist" + file_digest(sdist).encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return [(str(n), base64.b64decode(d)) for n, d in json.loads(hit)]
    found = _licenses_from_sdist(sdist)
    cache.put(key, json.dumps([[n, base64.b64encode(d).decode()] for n, d in found]).encode())
    return found


def _fetch_url(url: str, limits: NetworkLimits) -> bytes:
    """A license file from `url`: bounded like a page (``network-timeout``, ``max-page-size``)."""
    from ..sources import http as _http

    hint = "check license-overrides url in [tool.forkman.vendoring] and your network"
    resp = _http.get(url, limits=limits, what="license", hint=hint)
    if resp.status != 200:
        raise NetworkError(
            f"cannot fetch license {_http.redact(url)}: HTTP {resp.status}", hint=hint
        )
    return resp.body


def transform_tree(
    pristine: Path,
    out: Path,
    *,
    fork_name: str,
    config: Config,
    observer: Observer,
    other_modules: Iterable[str] = (),
    project_root: Path | None = None,
    fetch_sdist: SdistFetcher | None = None,
    cache: TransformCache | None = None,
    before_rewrite: Callable[[Path], None] | None = None,
    release_archive: Callable[[], Path] | None = None,
) -> dict[str, Any]:
    """Write fork `fork_name`'s part of the namespace directory from wheel tree `pristine`.

    `out` must not exist or be empty. `other_modules` are the importable
    names of the project's other namespace forks (their imports are rewritten
    too). `project_root` resolves ``license-overrides`` files; `fetch_sdist`
    downloads the sdist when the wheel carries no license file; `cache`
    remembers rewritten files and sdist licenses across runs;
    `before_rewrite` is called with `out` after the drops, before any
    substitution or rewriting (where the vendoring tool applies its patches);
    `release_archive` gives the release file itself (``license-source =
    "archive"``). Returns the lock section ``namespace``.
    """
    vcfg = vendoring_config(config)
    dist_info = _dist_info(pristine)
    meta = read_metadata(dist_info)
    distname = meta["name"] or fork_name
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BadInput(f"{out} is not empty")
    protected = set(vcfg.protected_files)
    skipped_protected: list[str] = []
    skipped_data: list[str] = []

    # 1. importable content; .data/purelib|platlib merge into the root
    roots = [pristine]
    for data_dir in sorted(pristine.glob("*.data")):
        for sub in sorted(data_dir.iterdir()):
            if sub.name in ("purelib", "platlib"):
                roots.append(sub)
            else:
                skipped_data.append(f"{data_dir.name}/{sub.name}")
    modules: set[str] = set()
    for root in roots:
        for entry in sorted(root.iterdir()):
            if root is pristine and entry.name.endswith((".dist-info", ".data")):
                continue
            if entry.name in protected:
                skipped_protected.append(entry.name)
                continue
            _copy(entry, out / entry.name)
            name = _module_name(entry)
            if name is not None:
                modules.add(name)
    if not modules:
        raise BadInput(
            f"{fork_name}: the wheel has no importable top-level module",
            hint="the namespace layout vendors import packages; use the project layout",
        )
    if skipped_protected:
        observer.warning(
            f"{fork_name}: left out {', '.join(skipped_protected)}: protected in the namespace"
        )

    # 2. drops
    dropped: list[str] = []
    if vcfg.drop:
        for rel, path in list(_walk(out)):
            if not path.exists() and not path.is_symlink():
                continue  # inside a directory dropped already
            if any(rule.matches(rel) for rule in vcfg.drop):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                dropped.append(rel)
    modules = {m for m in modules if any(out.glob(f"{m}*"))}
    if before_rewrite is not None:
        before_rewrite(out)

    # 3. rewriting
    all_modules = modules | set(other_modules)
    if vcfg.namespace.split(".", 1)[0] in all_modules:
        raise BadInput(
            f"namespace {vcfg.namespace} collides with the vendored module "
            f"{vcfg.namespace.split('.', 1)[0]}",
            hint="the namespace must live inside your own package",
        )
    files = imports = subs = 0
    unrewritten: list[str] = []
    context = b"\0".join(
        [
            _CACHE_FORMAT,
            vcfg.namespace.encode(),
            vcfg.rewrite_mode.value.encode(),
            " ".join(sorted(all_modules)).encode(),
            *(f"{sub.match}\0{sub.replace}".encode() for sub in vcfg.substitute),
            b"",
        ]
    )
    suffixes = (".py",) if vcfg.rewrite_mode is RewriteMode.VENDORING_COMPAT else (".py", ".pyi")
    for rel, path in _walk(out):
        if not rel.endswith(suffixes) or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        result = _cached_rewrite(
            cache,
            context,
            data,
            lambda data=data, rel=rel: rewrite_source(  # type: ignore[misc]
                data,
                modules=all_modules,
                namespace=vcfg.namespace,
                substitutions=vcfg.substitute,
                mode=vcfg.rewrite_mode,
                filename=f"{fork_name}: {rel}",
            ),
        )
        if result.data != data:
            path.write_bytes(result.data)
            files += 1
            imports += result.imports
            subs += result.substitutions
        unrewritten += [f"{rel}:{line}" for line in result.unrewritten]
    observer.step(fork_name, f"rewrote {imports} imports in {files} files into {vcfg.namespace}")

    # 4. licenses
    override = vcfg.license_overrides.get(str(canonicalize_name(distname)))
    license_files: list[tuple[str, bytes, str]] = []
    last_wins = vcfg.license_source == "archive"
    if last_wins and release_archive is not None:
        archive = release_archive()
        license_files = [
            (n, d, f"archive:{archive.name}") for n, d in _cached_sdist_licenses(cache, archive)
        ]
    if vcfg.license_source == "wheel":
        for path in sorted(dist_info.rglob("*")):
            rel = path.relative_to(dist_info).as_posix()
            if path.is_file() and (rel.startswith("licenses/") or _is_license_name(path.name)):
                license_files.append((path.name, path.read_bytes(), f"wheel:{rel}"))
    if (
        not license_files
        and not last_wins
        and not (override and override.file)
        and fetch_sdist is not None
    ):
        sdist = fetch_sdist(distname, meta["version"])
        license_files = [
            (n, d, f"sdist:{sdist.name}") for n, d in _cached_sdist_licenses(cache, sdist)
        ]
    if override and override.file:
        if project_root is None:
            raise ConfigError("license-overrides with file need the project root")
        src = project_root / override.file
        if not src.is_file():
            raise NotFound(f"license override file {override.file} does not exist")
        license_files = [(src.name, src.read_bytes(), f"override:{override.file}")]
    if not license_files and override and override.url:
        name = override.url.rstrip("/").rsplit("/", 1)[-1] or "LICENSE"
        license_files = [(name, _fetch_url(override.url, config.network), f"url:{override.url}")]
    written: dict[str, str] = {}
    for filename, data, origin in license_files:
        dest = _license_destination(out, distname, filename, override)
        if not last_wins and dest.exists() and dest.read_bytes() != data:
            continue  # a same-named file of another origin is already there
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)  # the archive rule: a later file of the same name replaces it
        written[dest.relative_to(out).as_posix()] = origin
    licenses = [{"file": file, "from": origin} for file, origin in written.items()]
    if not licenses:
        observer.warning(
            f"{fork_name}: no license file found in the wheel"
            + ("" if fetch_sdist else " (sdist not consulted)")
        )

    # 5. typing stubs
    stubs: list[str] = []
    if vcfg.stubs is not StubPolicy.NONE:
        for module in sorted(modules):
            typed = (out / module / "py.typed").exists() or (out / f"{module}.pyi").exists()
            if typed and vcfg.stubs is StubPolicy.UNTYPED:
                continue  # its own types are what type checkers read (as the vendoring tool does)
            if module in vcfg.typing_stubs:
                targets = [
                    (dotted.replace(".", "/") + ".pyi", dotted.removesuffix(".__init__"))
                    for dotted in vcfg.typing_stubs[module]
                ]
            else:
                targets = [(f"{module}.pyi", module)]
            for rel, import_name in targets:
                stub = out / rel
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text(f"from {import_name} import *", encoding="utf-8")
                stubs.append(rel)

    members = sorted(p.name for p in out.iterdir())
    transform: dict[str, Any] = {
        "namespace": vcfg.namespace,
        "destination": vcfg.destination,
        "distribution": distname,
        "rewrite-mode": vcfg.rewrite_mode.value,
        "rewritten-files": files,
        "rewritten-imports": imports,
        "substitutions": subs,
        "dropped": dropped,
        **({"unrewritten": unrewritten} if unrewritten else {}),
        "licenses": licenses,
        "stubs": stubs,
        "metadata": {k: v for k, v in meta.items() if k.startswith("license") and v},
    }
    if skipped_protected:
        transform["protected-skipped"] = skipped_protected
    if skipped_data:
        transform["data-skipped"] = skipped_data
    return {"members": members, "modules": sorted(modules), "transform": transform}


def wheel_modules(wheel: Path, config: Config) -> list[str]:
    """The importable names :func:`transform_tree` would vendor from `wheel`, read from
    its file list alone (no unpacking): top-level packages and modules of the wheel and of
    its ``.data/purelib|platlib``, minus protected names and those the drops remove.
    """
    vcfg = vendoring_config(config)
    protected = set(vcfg.protected_files)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    files: list[str] = []
    for name in names:
        top, _, rest = name.partition("/")
        if top.endswith(".data"):
            kind, _, inner = rest.partition("/")
            if kind in ("purelib", "platlib") and inner:
                files.append(inner)
        elif not top.endswith(".dist-info"):
            files.append(name)

    modules: set[str] = set()
    for rel in files:
        top, slash, _ = rel.partition("/")
        # the drops remove a package only when they match its folder itself
        if top in protected or any(rule.matches(top) for rule in vcfg.drop):
            continue
        if slash:
            if top.isidentifier():
                modules.add(top)
        elif top.endswith(".py"):
            modules.add(top[:-3])
        elif top.endswith(_EXTENSION_SUFFIXES):
            modules.add(top.split(".", 1)[0])
    return sorted(modules)


def unrewritten_warning(fork_name: str, sections: Mapping[str, Any]) -> str | None:
    """A warning naming the imports a vendoring-compat transformation left as they are."""
    section = namespace_section(sections)
    transform = section.get("transform", {}) if section is not None else {}
    left = [str(x) for x in transform.get("unrewritten", [])]
    if not left:
        return None
    shown = ", ".join(left[:3]) + (", ..." if len(left) > 3 else "")
    return (
        f"{fork_name}: {len(left)} import(s) of the form `import a.b` are left as they are "
        f"({shown}): the vendoring tool's rules cannot rewrite them; a patch must change them "
        '(or set rewrite-mode = "syntax")'
    )


def namespace_section(sections: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``namespace`` lock section of an entry's sections, if any."""
    value = sections.get(SECTION)
    return value if isinstance(value, Mapping) else None


def members_tree_hash(directory: Path, members: Iterable[str]) -> str:
    """The tree hash of only `members` of the shared namespace `directory`."""
    wanted = set(members)
    others = {p.name: None for p in directory.iterdir() if p.name not in wanted}
    manifest, special = scan_tree(directory, exclude=others)
    if special:
        raise BadInput(f"{directory}: {special[0].path} is a {special[0].what}")
    return hash_manifest(manifest.values())


def member_moves(
    staged: Path,
    destination: Path,
    *,
    members: Iterable[str],
    previous: Iterable[str] = (),
    owned_by_others: Mapping[str, str] | None = None,
    protected: Iterable[str] = (),
) -> list[tuple[Path, Path | None]]:
    """The (target, new content or None to remove) pairs that install a fork's members.

    For the core's transaction (``txn.replace_path(target, source)`` for each
    pair): the fork's `previous` members go, its new `members` come from
    `staged`. Refuses, before anything moves, a member another fork owns
    (`owned_by_others`: member -> fork), a protected one, or one that exists
    but belongs to no fork.
    """
    new = list(members)
    old = [m for m in previous if m not in set(protected)]
    protected_set = set(protected)
    owners = owned_by_others or {}
    for member in new:
        if member in protected_set:
            raise BadInput(f"{member} is protected in {destination}; no fork may write it")
        if member in owners:
            raise BadInput(
                f"{member} in {destination} already belongs to fork {owners[member]}",
                hint="two forks cannot vendor the same top-level module",
            )
        target = destination / member
        if member not in old and (target.exists() or target.is_symlink()):
            raise BadInput(f"{target} exists and belongs to no fork; move it away first")
    moves: list[tuple[Path, Path | None]] = [(destination / m, None) for m in old if m not in new]
    moves += [(destination / m, staged / m) for m in new]
    return moves


def place_members(
    staged: Path,
    destination: Path,
    *,
    members: Iterable[str],
    previous: Iterable[str] = (),
    owned_by_others: Mapping[str, str] | None = None,
    protected: Iterable[str] = (),
) -> None:
    """Install a fork's `members` from `staged` into the shared `destination` (no transaction).

    See :func:`member_moves` for what is refused.
    """
    moves = member_moves(
        staged,
        destination,
        members=members,
        previous=previous,
        owned_by_others=owned_by_others,
        protected=protected,
    )
    destination.mkdir(parents=True, exist_ok=True)
    for target, source in moves:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if source is not None:
            os.replace(source, target)


def namespace_modules(sections_by_fork: Mapping[str, Mapping[str, Any]], *, but: str) -> set[str]:
    """The importable names of every namespace fork except `but` (from lock sections)."""
    found: set[str] = set()
    for name, sections in sections_by_fork.items():
        section = namespace_section(sections)
        if name != but and section is not None:
            found.update(str(m) for m in section.get("modules", []))
    return found


def rewrite_consumer(
    project_root: Path, config: Config, modules: Iterable[str], observer: Observer
) -> list[str]:
    """Rewrite imports of `modules` in the consumer's own package (``rewrite-consumer``).

    The package is the namespace's parent directory, minus the namespace
    directory itself. Returns the files changed (relative to the project).
    """
    vcfg = vendoring_config(config)
    dest = project_root / vcfg.destination
    package = dest.parent
    changed: list[str] = []
    module_set = set(modules)
    for rel, path in _walk(package):
        if not rel.endswith((".py", ".pyi")) or path.is_relative_to(dest) or not path.is_file():
            continue
        data = path.read_bytes()
        result = rewrite_source(
            data,
            modules=module_set,
            namespace=vcfg.namespace,
            filename=path.relative_to(project_root).as_posix(),
        )
        if result.data != data:
            from ..core.fs import atomic_write_bytes

            atomic_write_bytes(path, result.data)
            changed.append(path.relative_to(project_root).as_posix())
    if changed:
        observer.step("consumer", f"rewrote imports in {len(changed)} files")
    return changed


def check_destination(project_root: Path, vcfg: VendoringConfig) -> None:
    """Refuse a namespace that collides with an existing module of the project."""
    dest = project_root / vcfg.destination
    if dest.with_suffix(".py").exists() or dest.is_file():
        raise BadInput(
            f"namespace {vcfg.namespace} collides with the module "
            f"{dest.with_suffix('.py').relative_to(project_root)}",
            hint="pick another namespace, e.g. a _vendor package no module uses",
        )
