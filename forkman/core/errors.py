"""The one error hierarchy of forkman.

Every failure a user can meet is a :class:`ForkmanError`. The CLI catches it
once, prints :meth:`ForkmanError.diagnostics` to stderr and exits with
:attr:`ForkmanError.exit_code` (2: bad input, or an error that stopped the
work). Findings (a failed check, a vulnerability, a failing test) are results,
not errors, and map to exit code 1 in the CLI.
"""

from __future__ import annotations

import importlib

MYPY = False  # importing typing at run time would slow `forkman check` down
if MYPY:
    from collections.abc import Mapping
    from typing import Any


class ForkmanError(Exception):
    """Base error: a message, and a hint that tells the user what to do next."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The text shown to the user: what went wrong, then what to do."""
        text = f"error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        """The error as JSON, to cross a process or actor boundary (see :func:`error_from_json`).

        Example::

            {"kind": "NotFound", "type": "forkman.core.errors.NotFound",
             "message": "no fork named 'x'", "hint": "see `forkman status`", "exit_code": 2}
        """
        cls = type(self)
        return {
            "kind": cls.__name__,
            "type": f"{cls.__module__}.{cls.__qualname__}",
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


def error_class(kind: str, qualified: str | None = None) -> type[ForkmanError]:
    """The ForkmanError subclass named `kind` (``forkman.<module>.<Class>`` in `qualified`).

    Only classes inside forkman are looked up, and only subclasses of
    :class:`ForkmanError` are returned; anything else is :class:`ForkmanError`
    itself (the message and hint still say what happened).
    """
    if qualified and qualified.startswith("forkman.") and "." in qualified:
        module_name, _, attr = qualified.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:
            found = None
        if isinstance(found, type) and issubclass(found, ForkmanError):
            return found
    pending: list[type[ForkmanError]] = [ForkmanError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == kind:
            return cls
        pending.extend(cls.__subclasses__())
    return ForkmanError


def error_from_json(data: Mapping[str, Any]) -> ForkmanError:
    """The error :meth:`ForkmanError.to_json` (or an actor reply's ``error_*`` fields) describes.

    Accepts both shapes: ``{"kind", "type", "message", "hint", "exit_code"}`` and
    the fields a failed actor reply carries (``error_kind``, ``error_type``,
    ``error_message``, ``error_hint``, ``exit_code``). The class, message, hint
    and exit code come back as they were raised.
    """
    kind = str(data.get("kind") or data.get("error_kind") or "ForkmanError")
    qualified = data.get("type") or data.get("error_type")
    message = data.get("message") or data.get("error_message") or "failed"
    hint = data.get("hint", data.get("error_hint"))
    cls = error_class(kind, str(qualified) if qualified else None)
    error = cls.__new__(cls)
    ForkmanError.__init__(error, str(message), hint=str(hint) if hint else None)
    code = data.get("exit_code")
    if isinstance(code, int) and code != cls.exit_code:
        error.exit_code = code
    return error


class BadInput(ForkmanError):
    """The user asked for something that cannot be done as asked."""


class ProjectError(ForkmanError):
    """The project is not usable: no pyproject.toml, not a git repository, ..."""


class ConfigError(ForkmanError):
    """`[tool.forkman]` is malformed."""


class LockError(ForkmanError):
    """forkman.lock is malformed, from a newer forkman, or disagrees with itself."""


class NetworkError(ForkmanError):
    """An index or git remote could not be reached or answered badly."""


class IntegrityError(ForkmanError):
    """Downloaded or stored bytes do not match the hash that pins them."""


class UnsafeArchive(ForkmanError):
    """An archive tried to write outside its directory or is otherwise hostile."""


class NotFound(ForkmanError):
    """A package, version, fork or file that was asked for does not exist."""


class Busy(ForkmanError):
    """Another forkman process is working on the same repository."""


class SecurityError(ForkmanError):
    """A security control could not be satisfied; forkman fails closed."""


class Blocked(SecurityError):
    """A change was refused for what a review found (risky upstream changes).

    A finding, not an error that stopped forkman: exit code 1.
    """

    exit_code = 1


class GitError(ForkmanError):
    """A git command failed (:func:`forkman.core.git.run`), or git is not installed."""

    def __init__(
        self, message: str, *, hint: str | None = None, returncode: int = 0, stderr: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.stderr = stderr


class BuildError(ForkmanError):
    """Building a fork (inside the sandbox) failed; nothing was tested."""
