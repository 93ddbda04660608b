"""A fork with a three-patch series and an upstream release that exercises every sync path.

Release 1.0 of ``demo`` has ``a.py``, ``b.py``, ``c.py``. The series:

1. ``a.py`` line 3 (1.1 changes line 15: merges cleanly),
2. ``b.py`` line 1 (1.1 changes the same line differently: conflicts),
3. ``c.py`` line 2 (1.1 makes the very same change: absorbed upstream).

Release 1.1 also adds ``new.py``, a dependency and a ``.pth`` file.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run
from tests.support.index import LocalIndex


def lines(n: int, **changes: str) -> str:
    """``line1 = 1`` ... ``lineN = N``, with ``l<k>=text`` replacing line k."""
    out = [f"line{i} = {i}" for i in range(1, n + 1)]
    for key, value in changes.items():
        out[int(key[1:]) - 1] = value
    return "\n".join(out) + "\n"


def release_files(version: str) -> dict[str, str]:
    """The files of demo `version` (1.0, 1.1 or 1.2)."""
    deps = '["attrs"]' if version == "1.0" else '["attrs", "requests>=2"]'
    files = {
        "pyproject.toml": (
            f'[project]\nname = "demo"\nversion = "{version}"\ndependencies = {deps}\n'
        ),
        "a.py": lines(20),
        "b.py": lines(10),
        "c.py": lines(10),
    }
    if version != "1.0":
        files["a.py"] = lines(20, l15="line15 = 'upstream'")
        files["b.py"] = lines(10, l1="line1 = 'upstream'")
        files["c.py"] = lines(10, l2="line2 = 'fixed'")
        files["new.py"] = "NEW = True\n"
        files["demo_hook.pth"] = "demo_extra\n"  # a path line: flagged, not executable
    return files


def add_releases(index: LocalIndex, *versions: str) -> None:
    """Publish demo releases on the local index."""
    for version in versions:
        index.add_sdist("demo", version, release_files(version))


def edit(root: Path, rel: str, text: str) -> None:
    """Write a file of the vendored demo tree."""
    (root / "vendor" / "demo" / rel).write_text(text)


def make_series(root: Path, local_index: LocalIndex) -> None:
    """Fork demo 1.0 (constraint <2) and record the three patches; 1.1 is on the index."""
    add_releases(local_index, "1.0", "1.1")
    assert run("init").exit_code == 0
    res = run("fork", "demo>=1,<1.1")
    assert res.exit_code == 0, res
    # widen the constraint so sync may move to 1.1; release 1.1 adds a .pth hook on
    # purpose (the delta summary must show it), so these tests block only on critical
    # risks: the default risk policy is tested in tests/operations/test_sync_risk.py
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"<1.1,>=1"', '"<2,>=1"')
        + '\n[tool.forkman.audit]\nblock-on = "critical"\n'
    )
    edit(root, "a.py", lines(20, l3="line3 = 'mine'"))
    assert run("patch", "demo", "-m", "Patch a", "--fixes", "PYSEC-0000-1").exit_code == 0
    edit(root, "b.py", lines(10, l1="line1 = 'mine'"))
    assert run("patch", "demo", "-m", "Patch b").exit_code == 0
    edit(root, "c.py", lines(10, l2="line2 = 'fixed'"))
    assert run("patch", "demo", "-m", "Patch c\n\nSame fix as upstream will make.").exit_code == 0
