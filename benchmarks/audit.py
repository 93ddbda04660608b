"""Benchmark: the local OSV database against parsing advisories per audit.

Prints
- the import time of the full advisory database (folder of OSV YAML files);
- the time to audit N real pins (name==version pairs drawn deterministically
  from the database's own packages and versions) through pip-audit's Auditor
  and forkman's LocalOsvService, from a freshly opened database;
- the same audit done the naive way in the same run (for each pin, parse that
  package's YAML files with libyaml and apply the same OSV matching), the
  ratio between them, and whether both found exactly the same advisories.

Usage:
    PYTHONPATH=. python benchmarks/audit.py [--source ../shared/fixtures/advisory-database/vulns]
        [--pins 1000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version

from forkman.audit._pipaudit import LocalOsvService, audit_pins
from forkman.audit.osvdb import (
    OsvDatabase,
    import_database,
    in_range,
    parse_advisory,
    parse_version,
)

DEFAULT_SOURCE = (
    Path(__file__).resolve().parents[1].parent / "shared/fixtures/advisory-database/vulns"
)


def draw_pins(db: OsvDatabase, count: int, seed: int = 740) -> list[tuple[str, Version]]:
    """`count` name==version pairs from the database's own packages (deterministic)."""
    rng = random.Random(seed)
    packages = db.packages()
    pins: list[tuple[str, Version]] = []
    while len(pins) < count:
        name = rng.choice(packages)
        versions = db.versions_of(name)
        if len(pins) % 4 == 3:  # a quarter of the pins: a fixed (usually clean) version
            versions = db.fixed_versions_of(name) or versions
        version = parse_version(rng.choice(versions)) if versions else None
        if version is not None:  # a few listed versions are not PEP 440 (e.g. "0.5m1")
            pins.append((name, version))
    return pins


def naive_audit(source: Path, pins: list[tuple[str, Version]]) -> dict[int, set[str]]:
    """The baseline: per pin, parse that package's advisory files and match them.

    Answers are sets of ids and aliases (pip-audit merges advisories sharing an alias).
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    folders = {canonicalize_name(p.name): p for p in source.iterdir() if p.is_dir()}
    out: dict[int, set[str]] = {}
    for i, (name, version) in enumerate(pins):
        found: set[str] = set()
        folder = folders.get(name)
        for path in sorted(folder.glob("*.yaml")) if folder else []:
            try:
                record = parse_advisory(yaml.load(path.read_bytes(), Loader=loader))
            except ValueError:
                continue
            if record.withdrawn:
                continue
            for aff in record.affected:
                if aff.name != name:
                    continue
                if canonicalize_version(version) in aff.versions or any(
                    in_range(version, rng) for rng in aff.ranges
                ):
                    found.update([record.id, *record.aliases])
        out[i] = found
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--pins", type=int, default=1000)
    args = parser.parse_args()
    if not args.source.is_dir():
        print(f"advisory folder {args.source} is absent", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "osv.sqlite"
        start = time.perf_counter()
        info = import_database(args.source, target)
        import_s = time.perf_counter() - start
        print(
            f"import: {info.advisories} advisories, {info.packages} packages "
            f"in {import_s:.2f} s ({target.stat().st_size / 1e6:.1f} MB)"
        )
        with OsvDatabase(target) as db:
            pins = draw_pins(db, args.pins)

        # forkman: fresh connection, cold per-package cache, through pip-audit's Auditor
        runs = []
        answers = None
        for _ in range(3):
            start = time.perf_counter()
            with OsvDatabase(target) as db:
                answers = _audit_all(db, pins)
            runs.append(time.perf_counter() - start)
        ours = min(runs)
        vulnerable = sum(1 for ids in answers.values() if ids)
        print(
            f"audit (forkman, pip-audit Auditor + LocalOsvService): {len(pins)} pins in "
            f"{ours:.3f} s (best of 3; {vulnerable} pins vulnerable) target <= 0.5 s: "
            f"{'met' if ours <= 0.5 else 'MISSED'}"
        )
        start = time.perf_counter()
        baseline_answers = naive_audit(args.source, pins)
        base = time.perf_counter() - start
        print(f"audit (baseline, per-pin YAML parsing + same matching): {base:.3f} s")
        print(f"ratio: forkman is {base / ours:.1f}x faster than the baseline")
        same = answers == baseline_answers
        print(f"same advisories found by both: {same}")
        return 0 if same else 1


def _audit_all(db: OsvDatabase, pins: list[tuple[str, Version]]) -> dict[int, set[str]]:
    """Audit `pins` through pip-audit's Auditor; pins may repeat a name, so batch by name."""
    service = LocalOsvService(db)
    out: dict[int, set[str]] = {}
    batches: list[list[int]] = []
    placed: list[dict[str, int]] = []
    for i, (name, _) in enumerate(pins):
        for batch, names in zip(batches, placed, strict=True):
            if name not in names:
                names[name] = i
                batch.append(i)
                break
        else:
            batches.append([i])
            placed.append({name: i})
    for batch in batches:
        answers = audit_pins([pins[i] for i in batch], [("local", service)])
        for i in batch:
            result = answers[pins[i][0]]
            ids: set[str] = set()
            for r in result.results:  # pip-audit merges advisories that share an alias
                ids.update([str(r.id), *map(str, r.aliases)])
            out[i] = ids
    return out


if __name__ == "__main__":
    sys.exit(main())
