"""Shortening text for people: cut at a word boundary, never inside a word."""

from __future__ import annotations

ELLIPSIS = "…"


def cut_at_word(text: str, limit: int, *, separators: str = " ") -> str:
    """`text` cut to at most `limit` characters at the last separator (no marker).

    A first word longer than `limit` is cut where it must be: a name has to
    end somewhere.
    """
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = max(head.rfind(sep) for sep in separators)
    if cut <= 0:
        return text[:limit]
    return text[:cut].rstrip(separators)


def shorten(text: str, limit: int) -> str:
    """The first line of `text` in at most `limit` characters, cut at a word with an ellipsis."""
    lines = text.strip().splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    if len(first) <= limit:
        return first
    return cut_at_word(first, limit - len(ELLIPSIS)).rstrip(" ,;:.-") + ELLIPSIS
