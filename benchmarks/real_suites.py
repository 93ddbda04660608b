"""Real PyPI releases' own test suites: `forkman test` with no configuration against a
plain, unsandboxed run of the same suite (the baseline).

    PYTHONPATH=. python benchmarks/real_suites.py [--only six,idna] [--jobs 2]

For each release of the corpus (its sdist ships its tests):

- forkman: a scratch consumer project (git init, pyproject.toml), ``forkman
  init``, ``forkman fork NAME==VERSION`` from the real PyPI, then ``forkman test
  NAME --format json`` with no configuration at all (forkman finds the test
  dependencies, builds the fork in the sandbox and runs the suite there);
- baseline: a plain venv, the sdist and the test dependencies a person would
  install by hand (``BASELINE`` below) installed by pip, and ``python -m
  pytest`` run on the unpacked sdist, with the network.

It prints, per release, whether each suite ran, passed/failed/errors (and the
failures that forkman classified as the missing network), the times
(forkman's whole command with a cold cache, and the suite's own run; the
baseline's install and its suite run), the ratio of the suite times, and the
totals. Needs the network (PyPI); the consumer projects, caches and venvs
live in a temporary folder (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forkman.testing.run import parse_junit

PYPI = "https://pypi.org/simple/"

CORPUS: dict[str, str] = {
    "six": "1.16.0",
    "idna": "3.6",
    "markupsafe": "2.1.3",
    "packaging": "23.2",
    "attrs": "23.1.0",
    "charset-normalizer": "3.3.2",
    "jinja2": "3.1.2",
    "click": "8.1.7",
    "pyyaml": "6.0.2",
    "more-itertools": "10.1.0",
    "pluggy": "1.3.0",
    "requests": "2.32.3",
    "urllib3": "2.0.7",
}
"""Releases whose sdist ships its tests (checked: each holds test_*.py files)."""

BASELINE: dict[str, list[str]] = {
    "six": [],
    "idna": [],
    "markupsafe": ["pytest==7.3.1"],
    "packaging": ["pretend", "coverage[toml]>=5.0.0"],
    "attrs": ["hypothesis", "pympler", "cloudpickle", "zope.interface"],
    "charset-normalizer": ["pytest==7.4.3", "pytest-cov==4.1.0"],
    "jinja2": ["pytest==7.1.2"],
    "click": ["pytest==7.4.0"],
    "pyyaml": [],
    "more-itertools": [],
    "pluggy": ["pytest-benchmark"],
    "requests": [
        "pytest>=2.8.0,<9",
        "pysocks",
        "pytest-cov",
        "pytest-httpbin==2.0.0",
        "httpbin~=0.10.0",
        "trustme",
    ],
    "urllib3": [
        "pytest==7.4.0",
        "tornado==6.2",
        "pysocks==1.7.1",
        "pytest-timeout==2.1.0",
        "trustme==0.9.0",
        "cryptography==41.0.4",
        "pytest-memray==1.4.0",
    ],
}
"""What a person reading each project's contributing notes installs to run its tests,
chosen by hand: pytest as the project pins it (else the newest), the plugins and
libraries its suite imports."""


@dataclass
class Side:
    """One way of running a suite."""

    ran: bool = False
    status: str = ""
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    network: int = 0
    network_skipped: int = 0
    setup: float = 0.0
    suite: float = 0.0
    total: float = 0.0
    message: str = ""
    failures: list[str] = field(default_factory=list)


@dataclass
class Row:
    name: str
    version: str
    forkman: Side
    baseline: Side


_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(text, file=sys.stderr, flush=True)


def fetch_sdist(name: str, version: str, dest: Path) -> Path:
    """The release's sdist from PyPI, checked against the sha256 the index announces."""
    with urllib.request.urlopen(PYPI + name + "/", timeout=60) as r:
        page = r.read().decode()
    norm = re.sub(r"[-_.]+", "[-_.]", re.escape(name).replace("\\-", "-"))
    pattern = re.compile(
        rf'href="([^"]*/({norm}-{re.escape(version)}\.tar\.gz))#sha256=([0-9a-f]{{64}})"', re.I
    )
    m = pattern.search(page)
    if m is None:
        raise SystemExit(f"{name} {version}: no sdist on PyPI")
    url, filename, sha = m.groups()
    path = dest / filename
    with urllib.request.urlopen(url, timeout=120) as r:
        data = r.read()
    if hashlib.sha256(data).hexdigest() != sha:
        raise SystemExit(f"{filename}: sha256 mismatch")
    path.write_bytes(data)
    return path


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        FORKMAN_CACHE_DIR=str(cache),
        PIP_CONFIG_FILE=os.devnull,
        NO_COLOR="1",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@forkman.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@forkman.invalid",
    )
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, str, float]:
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n{proc.stdout}\n---- stderr ----\n{proc.stderr}\n")
    return proc.returncode, proc.stdout, elapsed


def run_forkman(name: str, version: str, work: Path, forkman: list[str]) -> Side:
    side = Side()
    project = work / "consumer"
    project.mkdir()
    env = _env(work / "forkman-cache")
    log = work / "forkman.log"
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True, env=env)
    (project / "pyproject.toml").write_text('[project]\nname = "consumer"\nversion = "0.1.0"\n')
    subprocess.run(["git", "add", "pyproject.toml"], cwd=project, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=project, check=True, env=env)
    for argv in (["init"], ["fork", f"{name}=={version}"]):
        rc, _out, _t = _run([*forkman, *argv], project, env, log)
        if rc != 0:
            side.message = f"forkman {argv[0]} exited {rc} (see {log})"
            return side
    rc, out, elapsed = _run([*forkman, "test", name, "--format", "json"], project, env, log)
    side.total = elapsed
    try:
        report = json.loads(out)[0]
    except (ValueError, IndexError, KeyError):
        side.message = f"forkman test exited {rc} without a JSON report (see {log})"
        return side
    side.status = str(report.get("status"))
    side.message = str(report.get("message", ""))
    side.suite = float(report.get("duration") or 0.0)
    side.setup = max(0.0, side.total - side.suite)
    for key in ("passed", "failed", "errors", "skipped"):
        setattr(side, key, int(report.get(key) or 0))
    side.network = int(report.get("network_failures") or 0)
    side.network_skipped = int(report.get("network_skipped") or 0)
    side.failures = [f"{f['id']}: {f['message']}" for f in report.get("failures", [])]
    side.ran = side.status in ("passed", "failed", "network-disabled")
    return side


def run_baseline(name: str, sdist: Path, work: Path) -> Side:
    side = Side()
    env = _env(work / "unused-cache")
    log = work / "baseline.log"
    venv = work / "baseline-venv"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    rc, _out, _t = _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"--index-url={PYPI}",
            str(sdist),
            *([] if any(re.match(r"pytest\b(?!-)", r) for r in BASELINE[name]) else ["pytest"]),
            *BASELINE[name],
        ],
        work,
        env,
        log,
    )
    side.setup = time.perf_counter() - t
    if rc != 0:
        side.message = f"pip exited {rc} (see {log})"
        return side
    src = work / "baseline-tree"
    src.mkdir()
    with tarfile.open(sdist) as tf:
        tf.extractall(src, filter="data")
    (top,) = list(src.iterdir())
    junit = work / "baseline-junit.xml"
    rc, _out, elapsed = _run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
        top,
        env,
        log,
    )
    side.suite = elapsed
    side.total = side.setup + side.suite
    if not junit.is_file():
        side.message = f"pytest exited {rc} without a report (see {log})"
        return side
    counts = parse_junit(junit, top)
    side.ran = True
    side.status = f"exit {rc}"
    side.passed, side.failed, side.errors, side.skipped = (
        counts.passed,
        counts.failed,
        counts.errors,
        counts.skipped,
    )
    side.network = counts.network_failures
    side.network_skipped = counts.network_skipped
    side.failures = [f"{f.id}: {f.message}" for f in counts.failures]
    return side


def bench(name: str, root: Path, forkman: list[str]) -> Row:
    version = CORPUS[name]
    work = root / name
    work.mkdir()
    say(f"{name} {version}: starting")
    sdist = fetch_sdist(name, version, work)
    fm = run_forkman(name, version, work, forkman)
    say(f"{name}: forkman {fm.status or 'did not run'} in {fm.total:.1f}s")
    base = run_baseline(name, sdist, work)
    say(f"{name}: baseline {base.status or 'did not run'} in {base.total:.1f}s")
    return Row(name, version, fm, base)


def _counts(s: Side) -> str:
    if not s.ran:
        return "did not run"
    notes = [f"{s.network} net" for _ in (1,) if s.network]
    notes += [f"{s.network_skipped} skipped net" for _ in (1,) if s.network_skipped]
    return f"{s.passed}/{s.failed}/{s.errors}" + (f" ({', '.join(notes)})" if notes else "")


def table(rows: list[Row]) -> str:
    head = (
        "| package | forkman p/f/e | baseline p/f/e | forkman total s | forkman suite s "
        "| baseline install s | baseline suite s | suite ratio |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        fm, b = r.forkman, r.baseline
        ratio = f"{fm.suite / b.suite:.2f}" if fm.ran and b.ran and b.suite else "-"
        lines.append(
            f"| {r.name} {r.version} | {_counts(fm)} | {_counts(b)} | {fm.total:.1f} | "
            f"{fm.suite:.1f} | {b.setup:.1f} | {b.suite:.1f} | {ratio} |"
        )
    both = [r for r in rows if r.forkman.ran and r.baseline.ran]
    fs = sum(r.forkman.suite for r in both)
    bs = sum(r.baseline.suite for r in both)
    same = sum(
        1
        for r in both
        if (r.forkman.passed, r.forkman.failed - r.forkman.network, r.forkman.errors)
        == (r.baseline.passed, r.baseline.failed - r.baseline.network, r.baseline.errors)
        or (r.forkman.passed, r.forkman.failed + r.forkman.errors)
        == (r.baseline.passed, r.baseline.failed + r.baseline.errors)
    )
    lines.append(
        f"| **total** ({len(rows)}) | ran {sum(r.forkman.ran for r in rows)} | "
        f"ran {sum(r.baseline.ran for r in rows)} | "
        f"{sum(r.forkman.total for r in rows):.1f} | {fs:.1f} | "
        f"{sum(r.baseline.setup for r in rows):.1f} | {bs:.1f} | "
        f"{fs / bs if bs else 0:.2f} |"
    )
    lines.append(f"\nsame counts: {same} of {len(both)} suites that ran both ways")
    return "\n".join(lines)


def details(rows: list[Row]) -> str:
    out = []
    for r in rows:
        fm, b = r.forkman, r.baseline
        out.append(f"{r.name} {r.version}: forkman {fm.status or '-'}: {fm.message}")
        if not b.ran:
            out.append(f"  baseline: {b.message}")
        only_fm = sorted(set(fm.failures) - set(b.failures))
        only_b = sorted(set(b.failures) - set(fm.failures))
        for f in only_fm[:8]:
            out.append(f"  only forkman: {f}")
        for f in only_b[:8]:
            out.append(f"  only baseline: {f}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated names from the corpus")
    ap.add_argument("--jobs", type=int, default=1, help="releases benchmarked at once")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CORPUS)
    unknown = [n for n in names if n not in CORPUS]
    if unknown:
        ap.error(f"not in the corpus: {', '.join(unknown)} (known: {', '.join(CORPUS)})")
    forkman = [sys.executable, "-m", "forkman"]
    root = Path(tempfile.mkdtemp(prefix="forkman-real-suites-"))
    say(f"work folder: {root}")
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(lambda n: bench(n, root, forkman), names))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(table(rows))
    print()
    print(details(rows))
    if args.json:
        data: list[dict[str, Any]] = [
            {
                "name": r.name,
                "version": r.version,
                "forkman": vars(r.forkman),
                "baseline": vars(r.baseline),
            }
            for r in rows
        ]
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
