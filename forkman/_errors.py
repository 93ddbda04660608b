"""The one error hierarchy of forkman.

Every failure a user can meet is a :class:`ForkmanError`. The CLI catches it
once, prints :meth:`ForkmanError.diagnostics` to stderr and exits with
:attr:`ForkmanError.exit_code` (2: bad input, or an error that stopped the
work). Findings (a failed check, a vulnerability, a failing test) are results,
not errors, and map to exit code 1 in the CLI.
"""

from __future__ import annotations


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


class BuildError(ForkmanError):
    """Building a fork (inside the sandbox) failed; nothing was tested."""
