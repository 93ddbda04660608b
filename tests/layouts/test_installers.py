"""Every installer uses the forks: pip, uv pip, uv lock + sync, and a PEP 517 build.

The consumer depends on fork ``aaa``; ``aaa`` depends on fork ``bbb`` (an
indirect dependency). The index serves both upstream releases, whose code
says ``index``; each fork carries a patch that makes it say ``fork``. Each
installer installs into a fresh environment, from the local index on
127.0.0.1 only, and the environment imports both: the forks' code must be
what runs. Afterwards nothing was written into ``vendor/`` and ``forkman
check`` and ``forkman doctor`` are clean. Forks of sdists and of wheels both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.conftest import git
from tests.layouts.test_wiring import BACKEND, project_files
from tests.support.cli import run
from tests.support.index import LocalIndex

pytestmark = pytest.mark.slow

PROBE = "import aaa, bbb; print(aaa.VALUE, bbb.VALUE)"


def _wheel_of(files: dict[str, str], dest: Path) -> Path:
    """Build a wheel of `files` with the dependency-free test backend (no index needed)."""
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(text)
        code = f"import sys, backend; print(backend.build_wheel({str(dest)!r}))"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp, check=True, capture_output=True, text=True
        ).stdout.strip()
    return dest / out


def _release(index: LocalIndex, name: str, deps: str = "") -> None:
    files = project_files(name, "1.0", "VALUE = 'index'\n", deps)
    index.add_sdist(name, "1.0", files)
    folder = index.root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    index.add_file(name, _wheel_of(files, folder))


def _env(tmp: Path, index: LocalIndex) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp / "uv-cache"),
        "UV_DEFAULT_INDEX": index.url,
        "UV_PYTHON_DOWNLOADS": "never",
    }


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(params=["sdist", "wheel"])
def consumer(
    request: pytest.FixtureRequest, cwd: Path, local_index: LocalIndex
) -> tuple[Path, str]:
    """A consumer with forks aaa (direct) and bbb (indirect), each patched to say 'fork'."""
    kind = str(request.param)
    _release(local_index, "bbb")
    _release(local_index, "aaa", '"bbb==1.0"')
    pyproject = cwd / "pyproject.toml"
    pyproject.write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "consumer"\nversion = "0.1.0"\ndependencies = ["aaa==1.0"]\n'
        + pyproject.read_text().split("\n\n", 1)[1]
    )
    (cwd / "backend.py").write_text(BACKEND + "\nbuild_editable = build_wheel\n")
    (cwd / "consumer").mkdir()
    (cwd / "consumer" / "__init__.py").write_text("from aaa import VALUE\n")
    assert run("init").exit_code == 0
    for name in ("bbb", "aaa"):
        args = ["fork", f"{name}==1.0"] + (["--wheel"] if kind == "wheel" else [])
        res = run(*args)
        assert res.exit_code == 0, res
        module = cwd / "vendor" / name / name / "__init__.py"
        module.write_text("VALUE = 'fork'\n")
        res = run("patch", name, "-m", "Say fork")
        assert res.exit_code == 0, res
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "forks")
    return cwd, kind


def _after(root: Path, python: Path) -> None:
    """What must hold after any install: the forks run, vendor/ untouched, all clean."""
    out = subprocess.run(
        [str(python), "-c", PROBE], cwd="/", capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["fork", "fork"]
    assert git(root, "status", "--porcelain", "--untracked-files=all", "--", "vendor") == ""
    res = run("check")
    assert res.exit_code == 0, res
    res = run("doctor", "--python", str(python))
    assert res.exit_code == 0, res


def _venv(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    return tmp / "venv" / "bin" / "python"


def test_pip(consumer: tuple[Path, str], local_index: LocalIndex, tmp_path: Path) -> None:
    root, _ = consumer
    python = _venv(tmp_path)
    env = _env(tmp_path, local_index)
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--index-url",
            local_index.url,
            "-r",
            "forkman-requirements.txt",
            "-e",
            ".",
        ],
        root,
        env,
    )
    _after(root, python)
    # control: the index's bbb, installed over the fork, is what doctor reports
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--index-url",
            local_index.url,
            "--force-reinstall",
            "--no-deps",
            "bbb==1.0",
        ],
        root,
        env,
    )
    res = run("doctor", "--python", str(python))
    assert res.exit_code == 1, res
    assert "bbb: python" in res.stdout and "from an index" in res.stdout
    assert "aaa: python" not in res.stdout


def test_uv_pip(consumer: tuple[Path, str], local_index: LocalIndex, tmp_path: Path) -> None:
    root, _ = consumer
    env = _env(tmp_path, local_index)
    uv = find_uv_bin()
    _run([uv, "venv", "-q", "--python", sys.executable, str(tmp_path / "venv")], root, env)
    python = tmp_path / "venv" / "bin" / "python"
    _run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            "-r",
            "forkman-requirements.txt",
            "-e",
            ".",
        ],
        root,
        env,
    )
    _after(root, python)


def test_uv_lock_and_sync(
    consumer: tuple[Path, str], local_index: LocalIndex, tmp_path: Path
) -> None:
    root, _ = consumer
    env = {**_env(tmp_path, local_index), "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    uv = find_uv_bin()
    _run([uv, "lock", "-q", "--python", sys.executable], root, env)
    lock = (root / "uv.lock").read_text()
    assert "registry" not in lock.split('name = "bbb"', 1)[1].split("[[package]]", 1)[0]
    _run([uv, "sync", "-q", "--locked", "--python", sys.executable], root, env)
    _after(root, tmp_path / "venv" / "bin" / "python")
    # control: without the constraint, uv takes the indirect bbb from the index,
    # and doctor names it
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace('constraint-dependencies = ["bbb", "aaa"]', "")
    )
    _run([uv, "lock", "-q", "--python", sys.executable], root, env)
    res = run("doctor")
    assert res.exit_code == 1, res
    assert "bbb: uv.lock: uv.lock resolves bbb to registry" in res.stdout
    assert "aaa: uv.lock" not in res.stdout


def test_pep517_build(consumer: tuple[Path, str], local_index: LocalIndex, tmp_path: Path) -> None:
    root, _ = consumer
    python = _venv(tmp_path)
    env = _env(tmp_path, local_index)
    wheels = tmp_path / "wheels"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-index",
            "--no-deps",
            "-w",
            str(wheels),
            ".",
        ],
        root,
        env,
    )
    (built,) = wheels.glob("consumer-*.whl")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--index-url",
            local_index.url,
            "-r",
            "forkman-requirements.txt",
            str(built),
        ],
        root,
        env,
    )
    _after(root, python)


def test_archives_follow_the_fork_and_are_deterministic(
    consumer: tuple[Path, str], local_index: LocalIndex
) -> None:
    root, kind = consumer
    record = json.loads((root / ".forkman/dist/bbb/record.json").read_text())
    archive = root / record["path"]
    before = archive.read_bytes()
    assert archive.name == ("bbb-1.0-py3-none-any.whl" if kind == "wheel" else "bbb.tar.gz")
    # a clone has no .forkman/: `forkman wire` makes the same bytes again
    archive.unlink()
    assert run("doctor").exit_code == 1
    res = run("wire")
    assert res.exit_code == 0, res
    assert archive.read_bytes() == before
    # a restored edit is not in the archive; a recorded one is, at once
    (root / "vendor/bbb/bbb/__init__.py").write_text("VALUE = 'again'\n")
    assert run("patch", "bbb", "-m", "Say again").exit_code == 0
    assert archive.read_bytes() != before
    assert run("doctor").exit_code == 0
