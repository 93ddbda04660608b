"""The consumer project: where its pyproject, lock, vendored trees and state live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..core.errors import ProjectError
from .config import Config, load_config
from .lock import LOCK_NAME, Lock, load_lock

STATE_DIR = ".forkman"
REQUIREMENTS_FILE = "forkman-requirements.txt"
"""The requirements file that installs the project's wired forks (see
:mod:`forkman.layouts.wiring`)."""


def cache_root() -> Path:
    """forkman's per-user cache (downloads by sha256, test environments)."""
    env = os.environ.get("FORKMAN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "forkman"


@dataclass(frozen=True)
class Project:
    """A consumer project: a directory with a pyproject.toml."""

    root: Path
    """The directory holding pyproject.toml (made absolute: git runs in other folders)."""

    def __post_init__(self) -> None:
        if not self.root.is_absolute():
            object.__setattr__(self, "root", self.root.absolute())

    @property
    def pyproject(self) -> Path:
        """The project's pyproject.toml."""
        return self.root / "pyproject.toml"

    @property
    def lock_path(self) -> Path:
        """The project's forkman.lock."""
        return self.root / LOCK_NAME

    @property
    def state_dir(self) -> Path:
        """The `.forkman/` state folder: a cache, rebuildable from the lock.

        Checked once per Project object: when git tracks anything there, or the
        folder is a symlink, a SecurityError refuses it (see
        :mod:`forkman.model.statetrust`).
        """
        return self._trusted_state_dir

    @cached_property
    def _trusted_state_dir(self) -> Path:
        from .statetrust import require_trusted_state

        require_trusted_state(self.root)
        return self.root / STATE_DIR

    @cached_property
    def config(self) -> Config:
        """The parsed ``[tool.forkman]`` table (read once per Project object)."""
        return load_config(self.pyproject)

    def with_config(self, config: Config) -> Project:
        """This project, with `config` in place of its pyproject's table.

        `forkman ci --base` runs its stages on the settings a pull request cannot
        change (see :mod:`forkman.ci.policy`); everything that takes this Project
        reads them through :attr:`config`.
        """
        project = Project(self.root)
        project.__dict__["config"] = config  # the cached_property's own slot
        return project

    def load_lock(self) -> Lock:
        """The current lock (read fresh each call)."""
        return load_lock(self.lock_path)

    def vendor_path(self, name: str) -> Path:
        """Where fork `name` is vendored by default."""
        return self.root / self.config.vendor_dir / name

    def patches_path(self, name: str) -> Path:
        """The folder holding fork `name`'s patch series."""
        return self.root / self.config.patches_dir / name

    def fork_git_dir(self, name: str) -> Path:
        """The bare git repository holding fork `name`'s history."""
        return self.state_dir / "forks" / f"{name}.git"

    def relpath(self, path: Path) -> str:
        """`path` relative to the project root, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    def ensure_state_dir(self) -> Path:
        """Create `.forkman/` (ignored by git through its own .gitignore)."""
        state = self.state_dir
        state.mkdir(exist_ok=True)
        if state.is_symlink() or not state.is_dir():
            from .statetrust import require_trusted_state

            require_trusted_state(self.root)  # raises: it changed since it was checked
        ignore = state / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# forkman state: a cache, rebuilt from forkman.lock\n*\n")
        return state

    def require_git(self) -> None:
        """Refuse to work outside a git work tree (forks are reviewed through git)."""
        from ..core.errors import GitError
        from ..core.git import run

        try:
            out = run("rev-parse", "--is-inside-work-tree", cwd=self.root, check=False)
        except GitError:  # git is not installed
            raise ProjectError("git is not installed", hint="install git and try again") from None
        if out.returncode != 0 or out.stdout.decode(errors="replace").strip() != "true":
            raise ProjectError(
                f"{self.root} is not inside a git repository",
                hint="run `git init` first: vendored forks are reviewed and committed with git",
            )


def find_project(start: Path | None = None) -> Project:
    """The nearest directory at or above `start` with a pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return Project(candidate)
    raise ProjectError(
        f"no pyproject.toml in {here} or any parent directory",
        hint="run forkman inside your project, or pass --project DIR",
    )


BYTECODE_IGNORES = {
    "__pycache__/": ("__pycache__", "__pycache__/", "**/__pycache__", "**/__pycache__/"),
    "*.pyc": ("*.pyc", "*.py[cod]", "*.py[co]", "*.py[oc]"),
}
"""The .gitignore lines `forkman init` makes sure of, each with the lines that say the same."""


def ignore_bytecode(project: Project) -> list[str]:
    """Add the missing :data:`BYTECODE_IGNORES` lines to the project's .gitignore.

    The file is created if needed, else appended to (atomically); lines already
    there are left alone. The lines added.
    """
    from ..core.fs import atomic_write_bytes

    path = project.root / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        text = ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line, same in BYTECODE_IGNORES.items() if not present & set(same)]
    if not missing:
        return []
    if text and not text.endswith("\n"):
        text += "\n"
    text += "".join(f"{line}\n" for line in missing)
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))
    return missing
