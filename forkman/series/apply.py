"""Apply one patch file to a tree, as `forkman verify` and the history rebuild do."""

from __future__ import annotations

from pathlib import Path

from ..core import git
from ..core.errors import IntegrityError


def apply_patch_file(tree: Path, patch: Path) -> None:
    """Apply a patch file (DEP-3 header + git diff) to `tree`; IntegrityError if it fails.

    `tree` is a scratch folder forkman made: git runs as in the repositories
    forkman keeps (clean environment, no user configuration), and never looks
    above `tree` for a repository.
    """
    proc = git.run(
        "apply",
        "--binary",
        "--whitespace=nowarn",
        str(patch.resolve()),
        cwd=tree,
        owned=True,
        env={"GIT_CEILING_DIRECTORIES": str(tree.parent)},
        check=False,
    )
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise IntegrityError(f"{patch.name} does not apply: {stderr}")
