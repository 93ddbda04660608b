"""The migration proof on a real project that vendors with the vendoring tool: pip.

pip 26.2's sdist carries what pip vendors (``src/pip/_vendor``, 18 pinned
packages, byte for byte what pip ships), ``vendor.txt`` and ``[tool.vendoring]``,
but not ``tools/vendoring/patches``, which live only in pip's repository (not
reachable here). So the test first recovers patches with the vendoring tool
itself, and proves them with it:

1. the real vendoring tool (1.4.0, the version pip 26.2 was vendored with) is
   installed from PyPI and run up to its patch step (download and drops): the
   tree its patches apply to;
2. where pip's tree differs, a pre-rewrite version of the file is made (that
   tree's lines where they agree, pip's lines elsewhere) and accepted only when
   the tool's own import rewriting turns it into pip's file exactly; the
   differences become one patch per package, as pip keeps them;
3. ``vendoring sync`` with those patches must reproduce pip's shipped tree
   exactly (it adds only the ``.pyi`` stubs pip's sdist leaves out): the project
   as committed.

Then forkman: ``migrate vendoring`` and ``sync --all`` on that project must
leave ``src/pip/_vendor`` byte for byte as committed (``git status`` says
nothing), with ``forkman check`` and ``forkman verify`` passing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests

from forkman._config import load_config
from forkman._lock import load_lock
from forkman._project import Project
from forkman.vendoring._config import vendoring_config
from forkman.vendoring.migrate import migrate_vendoring
from tests.conftest import git
from tests.support.cli import run

pytestmark = [pytest.mark.network, pytest.mark.slow]

PIP_SDIST = (
    "https://files.pythonhosted.org/packages/db/96/"
    "e6f8e9d9d7b9cc4457092712a7e919c3186aa2c2fa9ffed2c5d29cc947e8/pip-26.2.tar.gz",
    "2d8542afcc84cdd8e846c2b36b2861fad1da376dd98f8e7113e9108a3c331690",
)
VENDORING = "vendoring==1.4.0"
DEST = "src/pip/_vendor"

# Run with the vendoring tool's interpreter, in the project: the tool's own steps up to
# (not including) its patches.
TOOL_PREFIX = """
from pathlib import Path
from vendoring.configuration import load_configuration
from vendoring.tasks.cleanup import cleanup_existing_vendored
from vendoring.tasks.vendor import download_libraries, remove_unnecessary_items

config = load_configuration(Path("."))
cleanup_existing_vendored(config)
download_libraries(config.requirements, config.destination)
remove_unnecessary_items(config.destination, config.drop_paths)
"""

# Run with the tool's interpreter, in the project whose destination holds the tool's tree
# before patches: turns each file pip changed into a pre-rewrite version the tool's own
# rewriting maps onto pip's file exactly (or stops, naming the file).
RECOVER = r'''
import difflib, shutil, sys, tempfile
from pathlib import Path
from vendoring.configuration import load_configuration
from vendoring.tasks.vendor import detect_vendored_libs, rewrite_file_imports

shipped = Path(sys.argv[1])
config = load_configuration(Path("."))
dest = config.destination
libs = detect_vendored_libs(dest, config.protected_files)
skip = set(config.protected_files) | {"bom.cdx.json"}

def rewrite(text):
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "x.py"
        f.write_text(text, encoding="utf-8")
        rewrite_file_imports(f, config.namespace, libs, config.substitute)
        return f.read_text(encoding="utf-8")

def rewrites_to(text, target):
    try:
        return rewrite(text) == target
    except Exception:
        return False

def rewrite_lines(text):
    out = []
    for line in text.splitlines(keepends=True):
        try:
            out.append(rewrite(line))
        except Exception:
            out.append(line)
    return out

def files(root):
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
        and p.relative_to(root).parts[0] not in skip
    }

def after_patches(rel):  # the tool adds licenses and stubs after its patches
    name = rel.rsplit("/", 1)[-1]
    return rel.endswith(".pyi") or "LICENSE" in name or "COPYING" in name

before, after = files(dest), files(shipped)
for rel in sorted(before | after):
    if after_patches(rel):
        continue
    src, want = dest / rel, shipped / rel
    if rel not in after:
        src.unlink()
        continue
    if not rel.endswith(".py"):
        if rel not in before or src.read_bytes() != want.read_bytes():
            src.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(want, src)
        continue
    target = want.read_text(encoding="utf-8")
    original = src.read_text(encoding="utf-8") if rel in before else ""
    if rel in before and rewrites_to(original, target):
        continue
    a, b = rewrite_lines(original), target.splitlines(keepends=True)
    o = original.splitlines(keepends=True)
    pre = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        pre += o[i1:i2] if tag == "equal" else b[j1:j2]
    text = "".join(pre)
    if not rewrites_to(text, target):
        sys.exit(f"cannot recover a pre-rewrite form of {rel}")
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(text, encoding="utf-8")
'''


def _tool_env(venv: Path) -> dict[str, str]:
    # the tool runs `pip` from PATH: its own environment's
    return {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def _files(root: Path, *, skip_suffix: str = "\0") -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(skip_suffix)
    }


@pytest.fixture(scope="module")
def pip_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip 26.2 as its repository would have it: shipped tree, stubs, patches, committed."""
    base = tmp_path_factory.mktemp("pip")
    url, sha256 = PIP_SDIST
    data = requests.get(url, timeout=120).content
    assert hashlib.sha256(data).hexdigest() == sha256
    (base / "pip.tar.gz").write_bytes(data)
    with tarfile.open(base / "pip.tar.gz") as tar:
        tar.extractall(base, filter="data")
    shipped = base / "pip-26.2"
    venv = base / "tool"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", VENDORING],
        check=True,
        timeout=600,
    )
    tool_python = str(venv / "bin" / "python")
    env = _tool_env(venv)

    # 1. the tree the tool's patches apply to
    work = base / "work"
    shutil.copytree(shipped, work)
    subprocess.run([tool_python, "-c", TOOL_PREFIX], cwd=work, env=env, check=True)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the tool's tree before patches")
    # 2. pip's changes as pre-rewrite patches, one per package
    done = subprocess.run(
        [tool_python, "-c", RECOVER, str(shipped / DEST)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    git(work, "add", "-A")
    changed = git(work, "diff", "--cached", "--name-only", "--", DEST).split()
    tops = sorted({path.split("/")[3] for path in changed})
    project = base / "project"
    shutil.copytree(shipped, project)
    patches = project / "tools" / "vendoring" / "patches"
    patches.mkdir(parents=True)
    for top in tops:
        text = git(work, "diff", "--cached", "--binary", "--", f"{DEST}/{top}")
        (patches / f"{top}.patch").write_text(text)
    # 3. the tool with those patches reproduces what pip ships
    git(project, "init", "-q", "-b", "main")
    subprocess.run(
        [str(venv / "bin" / "vendoring"), "sync"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    tool_tree = _files(project / DEST, skip_suffix=".pyi")
    assert tool_tree == _files(shipped / DEST), "the recovered patches are not pip's changes"
    git(project, "add", "-A")
    git(project, "commit", "-qm", "pip 26.2, vendored by the vendoring tool with its patches")
    assert len(tops) >= 5, tops  # pip patches several of its vendored packages
    return project


def test_migrate_reads_pips_table(pip_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "pip"
    shutil.copytree(pip_project, root, symlinks=True)
    project = Project(root)
    result = migrate_vendoring(project)
    pins = {}
    for line in (root / DEST / "vendor.txt").read_text().splitlines():
        if line.strip():
            name, version = line.strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    assert result.pins == pins and len(pins) == 18
    assert result.namespace == "pip._vendor" and result.destination == DEST
    vcfg = vendoring_config(load_config(project.pyproject))
    # the tool's SBOM stays the project's file
    assert vcfg.protected_files == ("__init__.py", "README.rst", "vendor.txt", "bom.cdx.json")
    assert vcfg.license_source == "archive" and vcfg.rewrite_mode.value == "vendoring-compat"
    # the drop rules, as the tool applied them, left nothing they match in the tree
    vendor = root / DEST
    for path in vendor.rglob("*"):
        rel = path.relative_to(vendor).as_posix()
        assert not any(rule.matches(rel) for rule in vcfg.drop), rel
    assert (vendor / "pygments/lexers/python.py").exists()
    assert any(r.matches("pygments/lexers/rust.py") for r in vcfg.drop)
    # every patch of pip's became a fork's, marked as written before import rewriting
    assert {p.fork for p in result.patches} >= {"requests", "urllib3", "setuptools"}
    for patch in result.patches:
        assert "Forkman-Stage: before-rewrite" in (root / patch.file).read_text()


def test_migrate_then_sync_reproduces_pip_byte_for_byte(pip_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "pip"
    shutil.copytree(pip_project, root, symlinks=True)
    res = run("migrate", "vendoring", cwd=root)
    assert res.exit_code == 0, res
    res = run("sync", "--all", "--yes", cwd=root)
    assert res.exit_code == 0, res
    # byte for byte what the project committed: nothing changed, nothing added or removed
    assert git(root, "status", "--porcelain", "--untracked-files=all", "--", DEST) == ""
    lock = load_lock(root / "forkman.lock")
    assert len(lock.forks) == 18
    patched = sorted(name for name, entry in lock.forks.items() if entry.patches)
    assert {"requests", "urllib3", "setuptools", "pygments"} <= set(patched), patched
    res = run("check", cwd=root)
    assert res.exit_code == 0 and "ok: 18 fork(s) match forkman.lock" in res.stdout, res
    res = run("verify", cwd=root)
    assert res.exit_code == 0, res
    assert res.stdout.count(": ok") == 18
    # from now on releases come in through a reviewed sync; a dry run changes nothing
    res = run("sync", "--all", "--dry-run", cwd=root)
    assert res.exit_code == 0, res
    assert git(root, "status", "--porcelain", "--untracked-files=all", "--", DEST) == ""
