"""Paths read from the configuration or the lock, confined to the project.

A pull request can write ``pyproject.toml`` and ``forkman.lock``: every path
forkman takes from them is relative, normalised (forward slashes, no ``.``,
``..`` or empty parts), inside the project, and (checked against the file
system) does not cross a symlink out of it. Anything else is refused before
forkman looks at the file system through it.

This module imports only the standard library and forkman's errors (`forkman
check` runs in pre-commit hooks).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

from .errors import ConfigError, ForkmanError

_BAD_CHARS = frozenset("\\\0\n\r")


def confined_relpath(
    value: object, key: str, *, error: type[ForkmanError] = ConfigError, allow_dot: bool = False
) -> str:
    """`value` as a normalised project-relative posix path; `error` naming `key` if it is not.

    A trailing slash is dropped; ``.``, ``..``, empty parts, absolute paths,
    backslashes and control characters are refused (``.`` alone only with `allow_dot`).
    """
    if not isinstance(value, str) or not value:
        raise error(f"{key} must be a non-empty relative path, not {value!r}")
    text = value.rstrip("/") if value != "/" else value
    parts = text.split("/")
    if (
        text.startswith("/")
        or any(c in _BAD_CHARS for c in text)
        or (len(text) >= 2 and text[1] == ":")
        or any(p in ("", "..") for p in parts)
        or ("." in parts and not (allow_dot and text == "."))
    ):
        raise error(
            f"{key} must stay inside the project as a normalised relative path "
            f"(no leading /, no . or .. parts), not {value!r}",
            hint=f'write {key} relative to the project root, e.g. "vendor"',
        )
    return text


def is_within(path: str, folder: str) -> bool:
    """Whether normalised relative `path` is `folder` or below it."""
    return path == folder or path.startswith(folder + "/")


def overlaps(a: str, b: str) -> bool:
    """Whether two normalised relative paths are equal or one contains the other."""
    return is_within(a, b) or is_within(b, a)


def require_inside(
    root: str | os.PathLike[str], rel: str, key: str, *, error: type[ForkmanError] = ConfigError
) -> None:
    """Refuse `rel` (normalised, relative to `root`) when it resolves outside `root`.

    Each existing part of the path is resolved: a symlink anywhere along it
    that leads out of the project is refused. Parts that do not exist yet are fine.
    """
    top = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(top, rel))
    if resolved != top and not resolved.startswith(top.rstrip(os.sep) + os.sep):
        raise error(
            f"{key} = {rel!r} leads out of the project through a symlink",
            hint=f"{key} must name a folder inside the project; remove the symlink",
        )


def config_dirs(table: Mapping[str, Any]) -> tuple[str, str]:
    """``vendor-dir`` and ``patches-dir`` of a ``[tool.forkman]`` table, normalised.

    Both are relative paths inside the project, neither inside the other;
    ConfigError naming the key otherwise.
    """
    where = "[tool.forkman]"
    vendor = confined_relpath(table.get("vendor-dir", "vendor"), f"{where}.vendor-dir")
    patches = confined_relpath(table.get("patches-dir", "patches"), f"{where}.patches-dir")
    if overlaps(vendor, patches):
        raise ConfigError(
            f"{where}.vendor-dir ({vendor!r}) and patches-dir ({patches!r}) overlap",
            hint="keep vendored trees and patch series in separate folders",
        )
    return vendor, patches


def confine_config(root: str | os.PathLike[str], table: Mapping[str, Any]) -> None:
    """Refuse configured folders of `table` that lead out of project `root` through a symlink."""
    vendor, patches = config_dirs(table)
    where = "[tool.forkman]"
    require_inside(root, vendor, f"{where}.vendor-dir")
    require_inside(root, patches, f"{where}.patches-dir")
    vendoring = table.get("vendoring")
    if isinstance(vendoring, dict) and isinstance(vendoring.get("destination"), str):
        key = f"{where}.vendoring.destination"
        require_inside(root, confined_relpath(vendoring["destination"], key), key)


def protected_names(value: object, key: str) -> tuple[str, ...]:
    """``protected-files``: names directly in the namespace folder (no paths, no ``.``/``..``)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings")
    for name in value:
        if not name or "/" in name or any(c in _BAD_CHARS for c in name) or name in (".", ".."):
            raise ConfigError(
                f"{key}: {name!r} is not a name in the namespace folder",
                hint='list top-level names of the namespace folder, e.g. "__init__.py"',
            )
    return tuple(value)


def require_no_symlink(
    root: str | os.PathLike[str], rel: str, key: str, *, error: type[ForkmanError] = ConfigError
) -> None:
    """Refuse `rel` when any existing part of it (below `root`) is a symlink.

    A fork's tree is judged where it is: behind a symlink, git (which never
    follows one) and the tree hash would look at different files.
    """
    here = os.fspath(root)
    for part in rel.split("/"):
        here = os.path.join(here, part)
        if os.path.islink(here):
            raise error(
                f"{key} = {rel!r} goes through the symlink {part!r}",
                hint="a fork's tree is a real folder inside the project, never behind a symlink",
            )
        if not os.path.exists(here):
            return
