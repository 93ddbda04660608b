"""Wheels into virtual environments, never a build: pip with ``--only-binary :all:``,
every downloaded file checked against the sha256 the configured index announces, and
the venvs forkman caches by content under ``cache_root()``.

No code of a wheel runs when it is unpacked; creating a venv runs nothing either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import venv
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from ..core.errors import ConfigError, IntegrityError, NetworkError
from ..core.fs import staging_dir
from ..model.project import cache_root

FORMAT = 2
"""Bumped when the layout of cached environments changes."""
PYTHON_ID = f"{sys.implementation.cache_tag} {sys.version} {sys.base_prefix}"
"""The interpreter every environment is made for."""

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


def cache_key(data: Mapping[str, Any]) -> str:
    """The content hash of `data` (JSON, keys sorted): the name of a cached venv or wheel."""
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()


def cached_venv(
    kind: str,
    key_data: Mapping[str, Any],
    fill: Callable[[Path], None],
) -> tuple[Path, bool]:
    """The venv of `kind` keyed by `key_data`, created (and filled by `fill(site, python)`)
    when absent; returns its path and whether it was reused."""
    key = cache_key({"format": FORMAT, "python": PYTHON_ID, **key_data})
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


def site_of(path: Path) -> Path:
    """The site-packages directory of the cached venv at `path`."""
    info = json.loads((path / "forkman-env.json").read_text(encoding="utf-8"))
    return path / str(info["site"])
