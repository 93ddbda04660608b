"""The steps of :func:`forkman.layouts.transform.transform_tree`: a wheel tree's
importable content, the drops, the import rewriting, license files and typing stubs,
with the cache that remembers rewritten files and sdist licenses across runs."""

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, ConfigError, NetworkError, NotFound
from ..model.config import NetworkLimits
from ..model.vendoring import LicenseOverride, StubPolicy, VendoringConfig
from ..store.treehash import file_digest
from .rewrite import RewriteMode, RewriteResult, rewrite_source

SdistFetcher = Callable[[str, str], Path]
"""(distribution name, version) -> a downloaded sdist archive."""


_LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


EXTENSION_SUFFIXES = (".so", ".pyd")


def dist_info_dir(pristine: Path) -> Path:
    """The one .dist-info folder of wheel tree `pristine`."""
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
    if entry.suffix in EXTENSION_SUFFIXES:
        return entry.name.split(".", 1)[0]
    return None


def walk(root: Path) -> Iterable[tuple[str, Path]]:
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


@dataclass(frozen=True)
class Importable:
    """What :func:`copy_importable` put in place."""

    modules: frozenset[str]
    """The importable top-level names."""
    protected: tuple[str, ...]
    """Names left out because ``protected-files`` lists them."""
    data: tuple[str, ...]
    """``.data`` folders left out (neither purelib nor platlib)."""


def copy_importable(pristine: Path, out: Path, protected: Iterable[str]) -> Importable:
    """Copy the importable content of wheel tree `pristine` into `out`.

    ``.data/purelib|platlib`` merge into the root; ``dist-info`` and the other
    ``.data`` folders are left out, and so is every `protected` name.
    """
    keep_out = set(protected)
    skipped_protected: list[str] = []
    skipped_data: list[str] = []
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
            if entry.name in keep_out:
                skipped_protected.append(entry.name)
                continue
            _copy(entry, out / entry.name)
            name = _module_name(entry)
            if name is not None:
                modules.add(name)
    return Importable(frozenset(modules), tuple(skipped_protected), tuple(skipped_data))


def apply_drops(out: Path, vcfg: VendoringConfig) -> list[str]:
    """Remove what the ``drop`` rules match under `out`; the paths dropped."""
    dropped: list[str] = []
    if not vcfg.drop:
        return dropped
    for rel, path in list(walk(out)):
        if not path.exists() and not path.is_symlink():
            continue  # inside a directory dropped already
        if any(rule.matches(rel) for rule in vcfg.drop):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            dropped.append(rel)
    return dropped


@dataclass(frozen=True)
class Rewritten:
    """What :func:`rewrite_imports` changed."""

    files: int
    """Files changed."""
    imports: int
    """Imports rewritten."""
    substitutions: int
    """Substitutions made."""
    unrewritten: tuple[str, ...]
    """``path:line`` of imports the vendoring-compat rules leave as they are."""


def rewrite_imports(
    out: Path,
    vcfg: VendoringConfig,
    modules: Iterable[str],
    fork_name: str,
    cache: TransformCache | None,
) -> Rewritten:
    """Apply the substitutions and rewrite the imports of `modules` under `out`."""
    all_modules = set(modules)
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
    for rel, path in walk(out):
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
    return Rewritten(files, imports, subs, tuple(unrewritten))


def _wheel_licenses(dist_info: Path) -> list[tuple[str, bytes, str]]:
    """The license files of a wheel's dist-info (``licenses/`` or LICENSE-like names)."""
    found: list[tuple[str, bytes, str]] = []
    for path in sorted(dist_info.rglob("*")):
        rel = path.relative_to(dist_info).as_posix()
        if path.is_file() and (rel.startswith("licenses/") or _is_license_name(path.name)):
            found.append((path.name, path.read_bytes(), f"wheel:{rel}"))
    return found


def _override_file(override: LicenseOverride, project_root: Path | None) -> tuple[str, bytes, str]:
    """The license file a ``license-overrides`` entry names in the project."""
    assert override.file is not None
    if project_root is None:
        raise ConfigError("license-overrides with file need the project root")
    src = project_root / override.file
    if not src.is_file():
        raise NotFound(f"license override file {override.file} does not exist")
    return (src.name, src.read_bytes(), f"override:{override.file}")


def find_licenses(
    dist_info: Path,
    vcfg: VendoringConfig,
    distname: str,
    version: str,
    override: LicenseOverride | None,
    *,
    cache: TransformCache | None,
    fetch_sdist: SdistFetcher | None,
    project_root: Path | None,
    release_archive: Callable[[], Path] | None,
    limits: NetworkLimits,
) -> list[tuple[str, bytes, str]]:
    """(file name, content, origin) of the release's license files, in writing order.

    The wheel's own (or, ``license-source = "archive"``, every license file of
    the release archive), else the sdist's; an override file replaces them, an
    override URL is the last resort.
    """
    found: list[tuple[str, bytes, str]] = []
    last_wins = vcfg.license_source == "archive"
    if last_wins and release_archive is not None:
        archive = release_archive()
        found = [
            (n, d, f"archive:{archive.name}") for n, d in _cached_sdist_licenses(cache, archive)
        ]
    if vcfg.license_source == "wheel":
        found += _wheel_licenses(dist_info)
    has_file = override is not None and bool(override.file)
    if not found and not last_wins and not has_file and fetch_sdist is not None:
        sdist = fetch_sdist(distname, version)
        found = [(n, d, f"sdist:{sdist.name}") for n, d in _cached_sdist_licenses(cache, sdist)]
    if override is not None and override.file:
        found = [_override_file(override, project_root)]
    if not found and override is not None and override.url:
        name = override.url.rstrip("/").rsplit("/", 1)[-1] or "LICENSE"
        found = [(name, _fetch_url(override.url, limits), f"url:{override.url}")]
    return found


def write_licenses(
    out: Path,
    distname: str,
    found: Sequence[tuple[str, bytes, str]],
    override: LicenseOverride | None,
    *,
    last_wins: bool,
) -> list[dict[str, str]]:
    """Write the license files into `out`; the lock's ``licenses`` list (file, origin)."""
    written: dict[str, str] = {}
    for filename, data, origin in found:
        dest = _license_destination(out, distname, filename, override)
        if not last_wins and dest.exists() and dest.read_bytes() != data:
            continue  # a same-named file of another origin is already there
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)  # the archive rule: a later file of the same name replaces it
        written[dest.relative_to(out).as_posix()] = origin
    return [{"file": file, "from": origin} for file, origin in written.items()]


def write_stubs(out: Path, modules: Iterable[str], vcfg: VendoringConfig) -> list[str]:
    """Write typing stubs ``<module>.pyi`` (per the ``stubs`` policy); the stubs written."""
    stubs: list[str] = []
    if vcfg.stubs is StubPolicy.NONE:
        return stubs
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
    return stubs
