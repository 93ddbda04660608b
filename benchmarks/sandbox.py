"""Sandbox cost, measured against baselines in the same run.

    PYTHONPATH=. python benchmarks/sandbox.py [--runs 30]

Prints medians and ratios:
1. per-run overhead of the full sandbox over an unsandboxed fork from the same
   warm server (target: <= 10 ms);
2. a one-test pytest suite sandboxed through the warm server vs a cold,
   unsandboxed ``python -m pytest`` (target: <= 0.5x);
3. the same suite under bubblewrap, when ``bwrap`` is installed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from forkman.sandbox import ForkServer, SandboxPolicy


def paired_ms(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """Medians (ms) of `a` and `b`, measured alternately so that load from other
    processes on the machine hits both alike."""
    a()
    b()  # warm up
    sa, sb = [], []
    for _ in range(runs):
        for fn, samples in ((a, sa), (b, sb)):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    return statistics.median(sa) * 1000, statistics.median(sb) * 1000


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory(prefix="forkman-bench-") as tmp:
        suite = Path(tmp) / "suite"
        (suite / "tests").mkdir(parents=True)
        (suite / "tests" / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        policy = SandboxPolicy(writable=(suite,), timeout=60)
        with ForkServer(preload=("pytest",)) as server:  # pytest run in-process, warm
            kind = server.support.best_tier.value
            print(f"host tier: {kind}")

            def sandboxed_true() -> None:
                r = server.run(["/bin/true"], policy, cwd=suite)
                assert r.exit_code == 0, r

            def bare_true() -> None:
                r = server.run(["/bin/true"], policy, cwd=suite, disabled=True)
                assert r.exit_code == 0, r

            bare, boxed = paired_ms(bare_true, sandboxed_true, runs)
            print(
                f"1. /bin/true from the warm server: unsandboxed {bare:.1f} ms, sandboxed "
                f"{boxed:.1f} ms, overhead {boxed - bare:.1f} ms (target <= 10 ms)"
            )

            pytest_args = ["-q", "-p", "no:cacheprovider", "tests"]

            def sandboxed_pytest() -> None:
                r = server.run(pytest_args, policy, cwd=suite, python_module="pytest")
                assert r.exit_code == 0, r.stdout + r.stderr

            def cold_pytest() -> None:
                subprocess.run(
                    [sys.executable, "-m", "pytest", *pytest_args],
                    cwd=suite,
                    check=True,
                    capture_output=True,
                )

            n = max(5, runs // 3)
            cold, warm = paired_ms(cold_pytest, sandboxed_pytest, n)
            print(
                f"2. one-test pytest suite: cold unsandboxed `python -m pytest` {cold:.0f} ms, "
                f"sandboxed in the warm server {warm:.0f} ms, ratio {warm / cold:.2f}x "
                "(target <= 0.5x)"
            )

        bwrap = shutil.which("bwrap")
        if bwrap is None:
            print("3. bubblewrap: not installed, skipped")
            return
        cmd = [
            bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--ro-bind",
            "/",
            "/",
        ]
        for d in ("/home", "/root", "/run", "/tmp"):
            cmd += ["--tmpfs", d]
        for ro in sorted({sys.base_prefix, sys.prefix}, key=len):
            cmd += ["--ro-bind", ro, ro]
        cmd += [
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--bind",
            str(suite),
            str(suite),
            "--chdir",
            str(suite),
            sys.executable,
            "-m",
            "pytest",
            *pytest_args,
        ]

        def bwrap_pytest() -> None:
            subprocess.run(cmd, check=True, capture_output=True)

        bw, cold = paired_ms(bwrap_pytest, cold_pytest, max(5, runs // 3))
        print(
            f"3. the same suite under bubblewrap (cold python): {bw:.0f} ms vs cold unsandboxed "
            f"{cold:.0f} ms ({bw / cold:.2f}x); forkman's warm sandbox ({warm:.0f} ms) is "
            f"{bw / warm:.1f}x faster than bubblewrap"
        )


if __name__ == "__main__":
    main()
