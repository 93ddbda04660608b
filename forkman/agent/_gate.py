"""The gate of ``execute``: which ``fm`` calls the guest may make, and which change the project.

A call must name a public method of :class:`forkman.Project` and bind to its
signature; fork names must be forks of the project (or, for ``fork``, a
requirement or a ``git+https`` URL); paths must be relative, inside the
project and free of ``..``; callbacks cannot cross the sandbox and the
sandbox cannot be turned off.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, NotFound, SecurityError
from . import _catalog

PATH_PARAMS = frozenset(
    {"path", "paths", "file", "files", "attestation", "database", "output", "dest"}
)
"""Arguments naming files: relative, inside the project, no ``..``."""
FORK_PARAMS = frozenset({"name", "names"})
"""Arguments naming existing forks (``name`` of ``fork`` names a new one)."""
REFUSED_FLAGS = {"no_sandbox": "an agent cannot turn the sandbox off"}
"""Arguments an agent may never set."""

_NEW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Gate:
    """Validates one call and decides whether it is performed or planned."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self.root = Path(project.root).resolve()

    def _fork_names(self) -> set[str]:
        return {f.name for f in self.project.forks()}

    def _path(self, value: object, key: str, *, in_project: bool) -> None:
        from ..core.paths import confined_relpath, require_inside

        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        rel = confined_relpath(value, key, error=BadInput)
        if in_project:
            require_inside(self.root, rel, key, error=BadInput)

    def _spec(self, value: object) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"spec must be a requirement or git+https URL, not {value!r}")
        text = value.strip()
        if text.startswith("git+"):
            if not text.startswith("git+https://") or any(c in text for c in " \0\n"):
                raise BadInput(
                    f"{text!r}: only git+https:// URLs may be forked from here",
                    hint="local paths and other schemes cannot be reached from the agent",
                )
            return
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise BadInput(f"{text!r} is not a requirement: {exc}") from None
        if req.url:
            raise BadInput(
                f"{text!r} names a URL; fork a release from the index or a git+https URL"
            )

    def check(self, op: _catalog.Operation, args: list[Any], kwargs: dict[str, Any]) -> bool:
        """Validate a call of `op`; whether it may change the project (then it is gated)."""
        func = getattr(type(self.project), op.name)
        sig = inspect.signature(func)
        try:
            bound = sig.bind(None, *args, **kwargs)  # None stands for self
        except TypeError as exc:
            raise BadInput(f"fm.{op.name}{op.signature}: {exc}", hint=op.summary) from None
        creates = "spec" in sig.parameters
        arguments = dict(list(bound.arguments.items())[1:])
        for key, value in arguments.items():
            self._argument(op, sig.parameters[key], value, creates=creates)
        return _catalog.writes(op, arguments)

    def _argument(
        self, op: _catalog.Operation, param: inspect.Parameter, value: Any, *, creates: bool
    ) -> None:
        """Validate argument `param` of a call of `op` (`creates`: `op` makes a new fork)."""
        key = param.name
        annotation = str(param.annotation)
        values = (
            list(value)
            if param.kind is inspect.Parameter.VAR_POSITIONAL
            or (isinstance(value, list | tuple) and key in ("names", "files", "paths"))
            else [value]
        )
        if key in REFUSED_FLAGS and value:
            raise SecurityError(f"fm.{op.name}({key}=...): {REFUSED_FLAGS[key]}")
        if value is not None and ("Callable" in annotation or "Confirm" in annotation):
            raise BadInput(f"fm.{op.name}: {key} cannot cross the sandbox")
        if key == "spec":
            self._spec(value)
        elif key == "name" and creates:
            if value is not None and not (isinstance(value, str) and _NEW_NAME.match(value)):
                raise BadInput(f"{value!r} is not a fork name (letters, digits, . _ -)")
        elif key in FORK_PARAMS:
            if value is not None:
                self._forks(values)
        elif key in PATH_PARAMS and value is not None:
            for v in values:
                # `path` of a fork's file is relative to the fork; the API confines it there
                self._path(v, key, in_project=key != "path")

    def _forks(self, values: list[Any]) -> None:
        """Each of `values` names a fork of the project (in any spelling of its name)."""
        from packaging.utils import canonicalize_name

        names = self._fork_names()
        for v in values:
            if not isinstance(v, str) or v not in names:
                canon = {canonicalize_name(n): n for n in names}
                if isinstance(v, str) and canonicalize_name(v) in canon:
                    continue
                raise NotFound(
                    f"{v!r} is not a fork of this project",
                    hint="the forks are: " + (", ".join(sorted(names)) or "none"),
                )
