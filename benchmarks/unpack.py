"""Benchmark: forkman's validated unpacking against the standard library's.

Builds a synthetic sdist (.tar.gz) and wheel (.whl) with many small files,
then unpacks each several times with

- forkman: ``forkman.sources.unpack.unpack_archive`` (validate everything, stage, rename), and
- baseline: ``tarfile.extractall(filter="data")`` / ``zipfile.extractall``,

and prints the median times and forkman's ratio to the baseline.

    PYTHONPATH=. python benchmarks/unpack.py [--files 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from forkman.sources.unpack import unpack_archive


def build_archives(root: Path, count: int) -> tuple[Path, Path]:
    payload = [
        (f"pkg/sub{i % 50}/module_{i}.py", (f"VALUE_{i} = {i}\n" * 40).encode())
        for i in range(count)
    ]
    sdist = root / "bench-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, data in payload:
            info = tarfile.TarInfo(f"bench-1.0/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    wheel = root / "bench-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in payload:
            zi = zipfile.ZipInfo(name)
            zi.create_system = 3
            zi.external_attr = 0o100644 << 16
            zf.writestr(zi, data)
    return sdist, wheel


def measure(
    ours: Callable[[Path], None], theirs: Callable[[Path], None], root: Path, rounds: int
) -> tuple[float, float]:
    """Median times of both, alternating rounds so disk noise hits both alike."""
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for i in range(rounds):
        for key, fn in (("ours", ours), ("theirs", theirs)):
            dest = root / f"out-{key}-{i}"
            start = time.perf_counter()
            fn(dest)
            times[key].append(time.perf_counter() - start)
            shutil.rmtree(dest)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sdist, wheel = build_archives(root, args.files)

        def forkman_sdist(dest: Path) -> None:
            unpack_archive(sdist, dest)

        def baseline_sdist(dest: Path) -> None:
            with tarfile.open(sdist) as tar:
                tar.extractall(dest, filter="data")

        def forkman_wheel(dest: Path) -> None:
            unpack_archive(wheel, dest)

        def baseline_wheel(dest: Path) -> None:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(dest)

        print(f"{args.files} files, median of {args.rounds} rounds")
        for label, ours, theirs, base_name in (
            ("sdist", forkman_sdist, baseline_sdist, 'tarfile.extractall(filter="data")'),
            ("wheel", forkman_wheel, baseline_wheel, "zipfile.extractall"),
        ):
            t_ours, t_base = measure(ours, theirs, root, args.rounds)
            print(
                f"{label}: forkman {t_ours * 1000:.0f} ms, {base_name} {t_base * 1000:.0f} ms, "
                f"ratio {t_ours / t_base:.2f}x"
            )


if __name__ == "__main__":
    main()
