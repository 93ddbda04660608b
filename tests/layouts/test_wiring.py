"""The project layout's wiring, down to a fresh virtual environment importing the fork."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from forkman.core.errors import BadInput
from forkman.layouts.dist import build_archive
from forkman.layouts.wiring import (
    REQUIREMENTS_FILE,
    apply_wiring,
    plan_unwire,
    plan_wire,
    unwire,
    wire,
    wired,
)
from forkman.model.lock import IndexSource, Lock, LockEntry, load_lock, write_lock
from forkman.model.project import Project
from forkman.store.treehash import tree_hash
from tests.conftest import git
from tests.support.index import LocalIndex

# A dependency-free PEP 517 backend, so installs need nothing from any index.
BACKEND = """\
import base64, hashlib, os, zipfile

def _meta():
    import tomllib
    with open("pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _meta()
    name, version = project["name"], project["version"]
    files = {}
    for d, _, fs in os.walk(name):
        for f in sorted(fs):
            p = os.path.join(d, f)
            if "__pycache__" not in p:
                files[p] = open(p, "rb").read()
    di = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
    for dep in project.get("dependencies", []):
        meta += f"Requires-Dist: {dep}\\n"
    files[f"{di}/METADATA"] = meta.encode()
    files[f"{di}/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    def b64(v):
        return base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=").decode()
    rec = [f"{k},sha256={b64(v)},{len(v)}" for k, v in files.items()]
    files[f"{di}/RECORD"] = ("\\n".join(rec + [f"{di}/RECORD,,"]) + "\\n").encode()
    out = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, out), "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return out
"""


def project_files(name: str, version: str, module: str, deps: str = "") -> dict[str, str]:
    return {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
        ),
        "backend.py": BACKEND,
        f"{name}/__init__.py": module,
    }


UPSTREAM = "def greet():\n    return 'hello from the index'\n"
PATCHED = "def greet():\n    return 'hello from the fork'\n"


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


CONSUMER_TOML = """\
# The consumer.
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "consumer"   # keep this comment
version = "0.1.0"
dependencies = ["greetlib==1.0"]

[tool.forkman]
index-url = "{index}"
"""


@pytest.fixture
def consumer(tmp_path: Path, local_index: LocalIndex) -> Project:
    root = tmp_path / "consumer"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_tree(
        root,
        {
            **project_files("consumer", "0.1.0", "from greetlib import greet\n"),
            "pyproject.toml": CONSUMER_TOML.format(index=local_index.url),
        },
    )
    return Project(root)


def test_wire_writes_uv_source_and_requirements(consumer: Project) -> None:
    before = consumer.pyproject.read_text()
    wire(consumer, "greetlib", "vendor/greetlib")
    text = consumer.pyproject.read_text()
    assert text.startswith(before)  # nothing else touched, comments kept
    data = tomllib.loads(text)
    assert data["tool"]["uv"]["sources"]["greetlib"] == {
        "path": ".forkman/dist/greetlib/greetlib.tar.gz"
    }
    # an indirect dependency on greetlib resolves to the fork too
    assert data["tool"]["uv"]["constraint-dependencies"] == ["greetlib"]
    req = (consumer.root / REQUIREMENTS_FILE).read_text()
    assert "./.forkman/dist/greetlib/greetlib.tar.gz  # fork: greetlib\n" in req
    wire(consumer, "greetlib", "vendor/greetlib")  # idempotent
    wire(consumer, "Other_Lib", "vendor/other-lib")
    assert wired(consumer) == {
        "greetlib": ".forkman/dist/greetlib/greetlib.tar.gz",
        "other-lib": ".forkman/dist/other-lib/other_lib.tar.gz",
    }
    assert unwire(consumer, "other-lib")
    assert unwire(consumer, "greetlib")
    assert consumer.pyproject.read_text() == before
    assert not (consumer.root / REQUIREMENTS_FILE).exists()
    assert not unwire(consumer, "greetlib")


def test_wire_refuses_a_foreign_source_and_changes_nothing(consumer: Project) -> None:
    consumer.pyproject.write_text(
        consumer.pyproject.read_text()
        + '\n[tool.uv.sources]\ngreetlib = { git = "https://example.invalid/g" }\n'
    )
    before = consumer.pyproject.read_text()
    with pytest.raises(BadInput, match="already has a source"):
        wire(consumer, "greetlib", "vendor/greetlib")
    assert consumer.pyproject.read_text() == before
    assert not (consumer.root / REQUIREMENTS_FILE).exists()
    assert not unwire(consumer, "greetlib")  # the user's source stays
    assert consumer.pyproject.read_text() == before


def test_foreign_requirement_lines_are_refused(consumer: Project) -> None:
    (consumer.root / REQUIREMENTS_FILE).write_text("requests==2.0\n")
    with pytest.raises(BadInput, match="did not write"):
        wire(consumer, "greetlib", "vendor/greetlib")
    with pytest.raises(BadInput, match="inside the project"):
        wire(consumer, "greetlib", "../elsewhere")


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    return venv / "bin" / "python"


def _pip(python: Path, cwd: Path, *args: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(cwd)}
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fresh_venv_installs_the_patched_fork(
    consumer: Project, local_index: LocalIndex, tmp_path: Path
) -> None:
    # upstream greetlib 1.0 on the index: a wheel (what pip would take) and its sdist
    local_index.add_wheel("greetlib", "1.0", {"greetlib/__init__.py": UPSTREAM})
    sdist = local_index.add_sdist("greetlib", "1.0", project_files("greetlib", "1.0", UPSTREAM))
    # the fork: the sdist's tree under vendor/, with a visible patch, and its lock entry
    vendored = consumer.root / "vendor" / "greetlib"
    write_tree(vendored, project_files("greetlib", "1.0", UPSTREAM))
    upstream_tree = tree_hash(vendored)
    (vendored / "greetlib" / "__init__.py").write_text(PATCHED)
    entry = LockEntry(
        name="greetlib",
        version="1.0",
        path="vendor/greetlib",
        source=IndexSource(
            index_url=local_index.url,
            url=local_index.file_url(sdist),
            filename=sdist.path.name,
            sha256=sdist.sha256,
            requirement="greetlib==1.0",
        ),
        upstream_tree=upstream_tree,
        vendored_tree=tree_hash(vendored),
        fetched="2026-01-01T00:00:00Z",
    )
    write_lock(consumer.lock_path, Lock().with_entry(entry))
    wire(consumer, "greetlib", load_lock(consumer.lock_path).forks["greetlib"].path)
    build_archive(consumer.root, entry)

    python = _venv(tmp_path)
    _pip(python, consumer.root, "--index-url", local_index.url, "-r", REQUIREMENTS_FILE, ".")
    probe = "import consumer, greetlib; print(consumer.greet()); print(greetlib.__file__)"
    out = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "hello from the fork"
    assert "site-packages" in out[1]  # installed, not found through the cwd

    # control: the same install without the wiring gets the index release
    assert unwire(consumer, "greetlib")
    _pip(python, consumer.root, "--index-url", local_index.url, "--force-reinstall", ".")
    out = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "hello from the index"


def test_plans_write_nothing_until_applied(consumer: Project) -> None:
    before = consumer.pyproject.read_text()
    edit = plan_wire(consumer, "greetlib", "vendor/greetlib")
    assert edit.changed and edit.requirements_text is not None
    assert consumer.pyproject.read_text() == before
    assert not (consumer.root / REQUIREMENTS_FILE).exists()
    assert 'greetlib = {path = ".forkman/dist/greetlib/greetlib.tar.gz"}' in edit.pyproject_text
    apply_wiring(consumer, edit)
    assert not plan_wire(consumer, "greetlib", "vendor/greetlib").changed
    undo = plan_unwire(consumer, "greetlib")
    assert undo.changed and undo.requirements_text is None
    apply_wiring(consumer, undo)
    assert consumer.pyproject.read_text() == before
    assert not plan_unwire(consumer, "greetlib").changed


def test_wiring_of_an_earlier_forkman_is_replaced(consumer: Project) -> None:
    """``{ path = "vendor/NAME", editable = false }`` was forkman's: wire takes it over."""
    consumer.pyproject.write_text(
        consumer.pyproject.read_text()
        + '\n[tool.uv.sources]\ngreetlib = { path = "vendor/greetlib", editable = false }\n'
    )
    (consumer.root / REQUIREMENTS_FILE).write_text("./vendor/greetlib  # fork: greetlib\n")
    wire(consumer, "greetlib", "vendor/greetlib")
    data = tomllib.loads(consumer.pyproject.read_text())
    assert data["tool"]["uv"]["sources"] == {
        "greetlib": {"path": ".forkman/dist/greetlib/greetlib.tar.gz"}
    }
    assert wired(consumer) == {"greetlib": ".forkman/dist/greetlib/greetlib.tar.gz"}
