"""forkman's namespace layout vs the vendoring tool, on the same requirements and layout.

Both vendor the same pinned packages into ``src/bench/_vendor`` of a scratch
project with namespace ``bench._vendor``, licenses from the sdists, imports
rewritten. Each is timed cold (empty download caches) and warm (caches
filled), and the ratios forkman / vendoring are printed (targets: <= 0.5x
cold, <= 0.1x warm).

forkman side: the pipeline the core runs for a namespace fork: fetch the
wheel (and, for licenses, the sdist) through PyPI's simple API into a
content-addressed cache, unpack, :func:`transform_tree` (with its cache of
rewritten files), :func:`place_members`. Cold empties every cache, including
the vendoring tool's pip cache and its sdist folder.
Until the core's ``fork()`` lands beside this module, that pipeline is driven
here directly (the fetch/unpack code below stands in for the core's
download cache and ``unpack_archive``), and the output says so.

The vendoring tool is installed from PyPI into a scratch virtual environment
at run time; when that is impossible, its part is skipped with a message.

    python benchmarks/vendor.py [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from packaging.utils import (
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from forkman._config import parse_config
from forkman._observer import NullObserver
from forkman.vendoring.transform import TransformCache, place_members, transform_tree

PINS = {
    "distro": "1.9.0",
    "idna": "3.10",
    "packaging": "24.2",
    "platformdirs": "4.3.6",
    "pyproject-hooks": "1.2.0",
    "resolvelib": "1.0.1",
    "tomli": "2.2.1",
    "tomli-w": "1.1.0",
}
NAMESPACE = "bench._vendor"
DESTINATION = "src/bench/_vendor"
SESSION = requests.Session()


def _find(name: str, version: str, *, wheel: bool) -> tuple[str, str, str]:
    resp = SESSION.get(
        f"https://pypi.org/simple/{canonicalize_name(name)}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=60,
    )
    resp.raise_for_status()
    for f in resp.json()["files"]:
        fn = f["filename"]
        if (
            wheel
            and fn.endswith("-none-any.whl")
            and parse_wheel_filename(fn)[1] == Version(version)
        ):
            return fn, f["url"], f["hashes"]["sha256"]
        if not wheel and fn.endswith(".tar.gz") and parse_sdist_filename(fn)[1] == Version(version):
            return fn, f["url"], f["hashes"]["sha256"]
    raise LookupError(f"{name}=={version}: no {'wheel' if wheel else 'sdist'}")


def _fetch(cache: Path, name: str, version: str, *, wheel: bool) -> Path:
    """A release file from the content-addressed cache, downloaded (and verified) on a miss."""
    pin_file = cache / "pins" / f"{name}-{version}-{'whl' if wheel else 'sdist'}"
    if pin_file.exists():
        digest, fn = pin_file.read_text().split(" ", 1)
        path = cache / "files" / digest / fn
        if path.exists():
            return path
    fn, url, digest = _find(name, version, wheel=wheel)
    data = SESSION.get(url, timeout=120).content
    if hashlib.sha256(data).hexdigest() != digest:
        raise RuntimeError(f"{fn}: sha256 mismatch")
    path = cache / "files" / digest / fn
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    pin_file.parent.mkdir(parents=True, exist_ok=True)
    pin_file.write_text(f"{digest} {fn}")
    return path


def forkman_run(project: Path, cache: Path) -> None:
    config = parse_config(
        {
            "prefer": "wheel",
            "vendoring": {
                "namespace": NAMESPACE,
                "destination": DESTINATION,
                "license-source": "sdist",
            },
        }
    )
    dest = project / DESTINATION
    with ThreadPoolExecutor(8) as pool:
        wheels = dict(
            zip(PINS, pool.map(lambda n: _fetch(cache, n, PINS[n], wheel=True), PINS), strict=True)
        )
        sdists = dict(
            zip(PINS, pool.map(lambda n: _fetch(cache, n, PINS[n], wheel=False), PINS), strict=True)
        )
    modules = {str(canonicalize_name(n)).replace("-", "_") for n in PINS}
    work = Path(tempfile.mkdtemp(dir=project))
    for name in PINS:
        pristine = work / "pristine" / name
        with zipfile.ZipFile(wheels[name]) as zf:
            zf.extractall(pristine)
        out = work / "out" / name
        record = transform_tree(
            pristine,
            out,
            fork_name=name,
            config=config,
            observer=NullObserver(),
            other_modules=modules,
            cache=TransformCache(cache / "transform"),
            fetch_sdist=lambda _d, _v, n=name: sdists[n],
        )
        place_members(out, dest, members=record["members"], protected=["__init__.py"])
    shutil.rmtree(work)


def scratch_project(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    dest = root / DESTINATION
    dest.mkdir(parents=True)
    (root / "src" / "bench" / "__init__.py").write_text("")
    (dest / "__init__.py").write_text("")
    (dest / "vendor.txt").write_text("".join(f"{n}=={v}\n" for n, v in PINS.items()))
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0"\n\n[tool.vendoring]\n'
        f'destination = "{DESTINATION}/"\nrequirements = "{DESTINATION}/vendor.txt"\n'
        f'namespace = "{NAMESPACE}"\nprotected-files = ["__init__.py", "vendor.txt"]\n'
    )
    return root


def vendoring_env(base: Path) -> Path | None:
    venv = base / "vendoring-venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "vendoring"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"vendoring tool unavailable ({exc}); timing forkman only", file=sys.stderr)
        return None
    return venv


def vendoring_run(venv: Path, project: Path, pip_cache: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "PIP_CACHE_DIR": str(pip_cache),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    # the tool keeps its sdists in $TMPDIR/vendoring-cache
    env["TMPDIR"] = str(pip_cache.parent / "tmp")
    Path(env["TMPDIR"]).mkdir(exist_ok=True)
    subprocess.run(
        [str(venv / "bin" / "vendoring"), "sync", "-v"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )


def timed(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="forkman-bench-"))
    print(f"{len(PINS)} packages into {DESTINATION} (namespace {NAMESPACE}), {args.runs} runs")
    print("forkman: transform pipeline driven directly (core fork() not on this branch)")
    results: dict[str, dict[str, list[float]]] = {
        "forkman": {"cold": [], "warm": []},
        "vendoring": {"cold": [], "warm": []},
    }
    venv = vendoring_env(base)
    for i in range(args.runs):
        cache = base / f"fm-cache-{i}"
        results["forkman"]["cold"].append(timed(forkman_run, scratch_project(base / "p"), cache))
        results["forkman"]["warm"].append(timed(forkman_run, scratch_project(base / "p"), cache))
        if venv is not None:
            pip_cache = base / f"pip-cache-{i}" / "pip"
            shutil.rmtree(pip_cache.parent, ignore_errors=True)
            pip_cache.mkdir(parents=True)
            results["vendoring"]["cold"].append(
                timed(vendoring_run, venv, scratch_project(base / "v"), pip_cache)
            )
            results["vendoring"]["warm"].append(
                timed(vendoring_run, venv, scratch_project(base / "v"), pip_cache)
            )
    for mode, target in (("cold", 0.5), ("warm", 0.1)):
        fm = statistics.median(results["forkman"][mode])
        line = f"{mode}: forkman {fm:.2f} s"
        if results["vendoring"][mode]:
            vd = statistics.median(results["vendoring"][mode])
            verdict = "meets" if fm / vd <= target else "misses"
            line += f", vendoring {vd:.2f} s, ratio {fm / vd:.3f}x ({verdict} target {target}x)"
        print(line)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
