"""The patch file format: a DEP-3 style header, a ``---`` line, then a git diff.

::

    Description: Fix slots pickling
     Longer explanation, continued on lines that start with a space.
    Author: Jane Doe <jane@example.org>
    Origin: https://github.com/python-attrs/attrs/pull/1234
    Forwarded: no
    Last-Update: 2026-11-26
    Fixes: PYSEC-2024-1, GHSA-xxxx-xxxx-xxxx
    ---
    diff --git a/src/attr/_make.py b/src/attr/_make.py
    ...

The body is ``git diff --binary --full-index`` output with ``a/`` and ``b/``
prefixes relative to the fork's root, so ``git apply`` (what ``forkman
verify`` runs) applies the file as it is: git skips the header. Files made
by other tools can be imported: a DEP-3 header, a ``git format-patch`` mail
(``From:`` and ``Subject:``), or a bare diff.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field, replace

from ..core.text import cut_at_word

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]?(.*)$")
_KNOWN = ("Description", "Author", "Origin", "Forwarded", "Last-Update", "Fixes")


@dataclass(frozen=True)
class PatchHeader:
    """The DEP-3 header of one patch."""

    description: str
    """Subject line, then an optional longer text."""
    author: str = ""
    """``Name <email>``."""
    origin: str = ""
    """Where the change comes from (a URL, ``upstream``, ``backport``, ...), if known."""
    forwarded: str = "no"
    """``no``, ``not-needed``, or the URL where it was sent upstream."""
    last_update: str = ""
    """The date of the last change to the patch (YYYY-MM-DD)."""
    fixes: tuple[str, ...] = ()
    """Vulnerability ids the patch fixes."""
    extra: tuple[tuple[str, str], ...] = field(default=())
    """Other header fields, kept in order."""

    @property
    def subject(self) -> str:
        """The first line of the description."""
        return self.description.split("\n", 1)[0].strip()

    def commit_message(self) -> str:
        """The description as a git commit message."""
        return self.description.strip() + "\n"

    def with_update(self, day: str) -> PatchHeader:
        """A copy with Last-Update set to `day`."""
        return replace(self, last_update=day)


def slugify(text: str, limit: int = 50) -> str:
    """A file-name-safe slug of `text` (``Fix slots pickling`` -> ``fix-slots-pickling``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    # cut between words: `...-mark-as-forked`, never `...-mark-as-forke`
    return cut_at_word(slug, limit, separators="-") or "patch"


def _emit(lines: list[str], key: str, value: str) -> None:
    first, *rest = value.split("\n")
    lines.append(f"{key}: {first}".rstrip())
    for line in rest:
        lines.append(" " + line if line.strip() else " .")


def render_patch(header: PatchHeader, body: str) -> str:
    """The text of a patch file."""
    lines: list[str] = []
    _emit(lines, "Description", header.description.strip())
    if header.author:
        _emit(lines, "Author", header.author)
    if header.origin:
        _emit(lines, "Origin", header.origin)
    if header.forwarded:
        _emit(lines, "Forwarded", header.forwarded)
    if header.last_update:
        _emit(lines, "Last-Update", header.last_update)
    if header.fixes:
        _emit(lines, "Fixes", ", ".join(header.fixes))
    for key, value in header.extra:
        _emit(lines, key, value)
    text = "\n".join(lines) + "\n---\n"
    if body and not body.endswith("\n"):
        body += "\n"
    return text + body


def split_patch(text: str) -> tuple[str, str]:
    """(header text, diff body) of a patch file."""
    match = re.search(r"^(diff --git |--- \S)", text, re.MULTILINE)
    if match is None:
        return text, ""
    return text[: match.start()], text[match.start() :]


def parse_patch(text: str) -> tuple[PatchHeader, str]:
    """The header and diff body of a patch file (DEP-3, git format-patch or bare diff)."""
    head, body = split_patch(text)
    if head.startswith("From ") and "\nSubject:" in head:
        return _parse_mail(head), body
    fields: list[tuple[str, str]] = []
    for line in head.splitlines():
        if line.strip() == "---":
            break
        if line[:1] in (" ", "\t") and fields:
            cont = line[1:]
            key, value = fields[-1]
            fields[-1] = (key, value + "\n" + ("" if cont.strip() == "." else cont))
            continue
        m = _FIELD.match(line)
        if m:
            fields.append((m.group(1), m.group(2).strip()))
    values = {k.lower(): v for k, v in fields}
    description = values.get("description") or values.get("subject") or ""
    fixes = tuple(f.strip() for f in re.split(r"[,\s]+", values.get("fixes", "")) if f.strip())
    taken = {x.lower() for x in _KNOWN} | {"subject"}
    if "author" not in values:
        taken.add("from")  # it is the author
    extra = tuple((k, v) for k, v in fields if k.lower() not in taken)
    return (
        PatchHeader(
            description=description.strip(),
            author=values.get("author", values.get("from", "")),
            origin=values.get("origin", ""),
            forwarded=values.get("forwarded", "no"),
            last_update=values.get("last-update", ""),
            fixes=fixes,
            extra=extra,
        ),
        body,
    )


def _parse_mail(head: str) -> PatchHeader:
    lines = head.splitlines()
    author = subject = ""
    body: list[str] = []
    in_body = False
    for i, line in enumerate(lines):
        if in_body:
            if line.strip() == "---":
                break
            body.append(line)
        elif line.startswith("From:"):
            author = line[5:].strip()
        elif line.startswith("Subject:"):
            subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", line[8:].strip())
            j = i + 1
            while j < len(lines) and lines[j][:1] in (" ", "\t"):
                subject += " " + lines[j].strip()
                j += 1
        elif not line.strip():
            in_body = True
    text = "\n".join(body).strip()
    description = subject + ("\n" + text if text else "")
    return PatchHeader(description=description, author=author)


def today() -> str:
    """Today's date (UTC), YYYY-MM-DD, for Last-Update."""
    return _dt.datetime.now(_dt.UTC).date().isoformat()


STAGE_FIELD = "Forkman-Stage"
"""Patch header field naming the tree a patch was written against, when not the vendored one."""
BEFORE_REWRITE = "before-rewrite"
"""`STAGE_FIELD` value: written against the namespace tree before its imports were rewritten."""


def applies_before_rewrite(header: PatchHeader) -> bool:
    """Whether the patch was written against the tree before import rewriting."""
    return any(
        key.lower() == STAGE_FIELD.lower() and value.strip().lower() == BEFORE_REWRITE
        for key, value in header.extra
    )
