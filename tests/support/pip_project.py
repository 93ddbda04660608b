"""pip 26.2 as its repository has it, rebuilt from what the package registry offers.

pip vendors 18 packages with the vendoring tool. Its sdist carries the tree
pip ships (``src/pip/_vendor``), ``vendor.txt`` and ``[tool.vendoring]``, but not
``tools/vendoring/patches``, which live only in pip's repository.
:func:`build_pip_project` recovers those patches with the vendoring tool itself
and proves them with it:

1. the real vendoring tool (1.4.0, the version pip 26.2 was vendored with) is
   installed from PyPI and run up to its patch step (download and drops): the
   tree its patches apply to;
2. where pip's tree differs, a pre-rewrite version of the file is made (that
   tree's lines where they agree, pip's lines elsewhere) and accepted only when
   the tool's own import rewriting turns it into pip's file exactly; the
   differences become one patch per package, as pip keeps them;
3. ``vendoring sync`` with those patches must reproduce pip's shipped tree
   exactly (adding only the ``.pyi`` stubs pip's sdist leaves out): the
   project, committed.

Used by the migration proof (``tests/operations/test_migrate_pip.py``) and by
``benchmarks/vendor.py``. Needs the package registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import requests

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
RECOVER = r"""
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
"""


def _files(root: Path, *, skip_suffix: str = "\0") -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(skip_suffix)
    }


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def install_tool(venv: Path) -> Path:
    """A virtual environment with the vendoring tool; its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", VENDORING],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return venv / "bin" / "python"


def tool_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment the tool runs in: it runs `pip` from PATH, its own environment's."""
    return {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", **extra}


def build_pip_project(base: Path, venv: Path | None = None) -> Path:
    """pip 26.2 as its repository would have it (shipped tree, stubs, patches), committed
    in a git repository under `base`; the tool is installed in `venv` (default: under
    `base`) unless it is there already."""
    base.mkdir(parents=True, exist_ok=True)
    url, sha256 = PIP_SDIST
    data = requests.get(url, timeout=120).content
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{url} does not have its recorded sha256")
    (base / "pip.tar.gz").write_bytes(data)
    with tarfile.open(base / "pip.tar.gz") as tar:
        tar.extractall(base, filter="data")
    shipped = base / "pip-26.2"
    venv = venv or base / "tool"
    if not (venv / "bin" / "vendoring").exists():
        install_tool(venv)
    tool_python = str(venv / "bin" / "python")
    env = tool_env(venv)

    # 1. the tree the tool's patches apply to
    work = base / "work"
    shutil.copytree(shipped, work)
    subprocess.run(
        [tool_python, "-c", TOOL_PREFIX], cwd=work, env=env, check=True, capture_output=True
    )
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "the tool's tree before patches")
    # 2. pip's changes as pre-rewrite patches, one per package
    done = subprocess.run(
        [tool_python, "-c", RECOVER, str(shipped / DEST)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"recovering pip's patches failed: {done.stderr}")
    _git(work, "add", "-A")
    changed = _git(work, "diff", "--cached", "--name-only", "--", DEST).split()
    tops = sorted({path.split("/")[3] for path in changed})
    project = base / "project"
    shutil.copytree(shipped, project)
    patches = project / "tools" / "vendoring" / "patches"
    patches.mkdir(parents=True)
    for top in tops:
        text = _git(work, "diff", "--cached", "--binary", "--", f"{DEST}/{top}")
        (patches / f"{top}.patch").write_text(text)
    # 3. the tool with those patches reproduces what pip ships
    _git(project, "init", "-q", "-b", "main")
    subprocess.run(
        [str(venv / "bin" / "vendoring"), "sync"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    tool_tree = _files(project / DEST, skip_suffix=".pyi")
    if tool_tree != _files(shipped / DEST):
        raise RuntimeError("the tool with the recovered patches does not give pip's tree")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "pip 26.2, vendored by the vendoring tool with its patches")
    return project
