"""The ``patch`` operation of fork actors: changes to the patch series (see :mod:`.handlers`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..actors import ActorContext, ActorState, OperationArgs, OperationResult, register_operation
from ..core.errors import BadInput
from ..model.project import Project
from ._handler_support import ActorObserver, recover_transaction


class PatchMode(enum.Enum):
    """What a ``patch`` message changes in the series."""

    RECORD = "record"
    """Record the tree's edits as the next patch (message, fixes, origin, forwarded, author)."""
    DROP = "drop"
    """Drop patch `number`."""
    MOVE = "move"
    """Move patch `number` to position `to`."""
    EDIT = "edit"
    """Change patch `number`'s header (message, fixes, origin, forwarded, author)."""
    IMPORT = "import"
    """Apply patch `files` (absolute paths) and add them (before_rewrite)."""


@dataclass(frozen=True)
class PatchOutput(OperationResult):
    """What a ``patch`` message changed."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"file"})
    mode: PatchMode
    """The change made."""
    patches: tuple[str, ...]
    """record: the new patch; import: the patches imported; otherwise the whole series."""
    file: str | None = None
    """record: the new patch's file."""


@dataclass(frozen=True)
class PatchArgs(OperationArgs[PatchOutput]):
    """``patch``: one change to the fork's patch series (the fields `mode` reads)."""

    KIND: ClassVar[str] = "patch"
    mode: PatchMode = PatchMode.RECORD
    """The change."""
    number: int | None = None
    """drop, move, edit: the patch (1-based)."""
    to: int | None = None
    """move: the new position."""
    message: str | None = None
    """record, edit: the description."""
    fixes: tuple[str, ...] = ()
    """record, edit: vulnerability ids fixed (edit: empty keeps them)."""
    origin: str | None = None
    """record, edit: where the change comes from."""
    forwarded: str | None = None
    """record, edit: ``no``, ``not-needed`` or where it was sent."""
    author: str | None = None
    """record, edit: the author."""
    files: tuple[str, ...] = ()
    """import: the patch files (absolute paths)."""
    before_rewrite: bool = False
    """import: the files were written against the tree before its imports were rewritten."""

    def patch_number(self) -> int:
        """`number`, which drop, move and edit need."""
        if self.number is None:
            raise BadInput(f"patch {self.mode.value} needs the patch's number")
        return self.number


def run_patch(project: Project, name: str, args: PatchArgs, ctx: ActorContext) -> PatchOutput:
    """``patch``: see :class:`PatchArgs`."""
    from . import patches as _patches

    observer = ActorObserver(ctx)
    mode = args.mode
    if mode is PatchMode.RECORD:
        record = _patches.record_patch(
            project,
            name,
            args.message or "",
            fixes=args.fixes,
            origin=args.origin or "",
            forwarded=args.forwarded or "no",
            author=args.author,
            observer=observer,
        )
        return PatchOutput(mode, (record.file,), file=record.file)
    if mode is PatchMode.IMPORT:
        entry = _patches.import_patches(
            project,
            name,
            [Path(f) for f in args.files],
            before_rewrite=args.before_rewrite,
            observer=observer,
        )
        imported = entry.patches[len(entry.patches) - len(args.files) :]
        return PatchOutput(mode, tuple(p.file for p in imported))
    if mode is PatchMode.DROP:
        entry = _patches.drop_patch(project, name, args.patch_number(), observer)
    elif mode is PatchMode.MOVE:
        if args.to is None:
            raise BadInput("patch move needs the position to move the patch to")
        entry = _patches.move_patch(project, name, args.patch_number(), args.to, observer)
    else:
        entry = _patches.edit_patch(
            project,
            name,
            args.patch_number(),
            message=args.message,
            fixes=args.fixes or None,
            origin=args.origin,
            forwarded=args.forwarded,
            author=args.author,
            observer=observer,
        )
    return PatchOutput(mode, tuple(p.file for p in entry.patches))


PATCH = register_operation(
    PatchArgs, PatchOutput, run_patch, recover=recover_transaction, state=ActorState.PATCHING
)
