"""What every upstream source offers: find a release, fetch it, unpack it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version


class DistKind(enum.Enum):
    """The kind of a release file."""

    SDIST = "sdist"
    WHEEL = "wheel"


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a project on a simple-API index."""

    filename: str
    """The file's name."""
    url: str
    """Absolute download URL, without fragment."""
    sha256: str | None
    """The sha256 the index announces (None when it announces none)."""
    version: Version
    """The version parsed from the filename."""
    kind: DistKind
    """sdist or wheel."""
    yanked: bool = False
    """Whether the index marks the file yanked."""
    requires_python: str | None = None
    """The file's Requires-Python, if announced."""
    provenance_url: str | None = None
    """PEP 740 provenance URL, if announced."""
    yanked_reason: str | None = None
    """Why the file was yanked, when the index says."""


@dataclass(frozen=True)
class UpstreamRelease:
    """A chosen release file, verified and stored in the download cache."""

    name: str
    """The project's canonical name."""
    version: Version
    """The release version."""
    file: ReleaseFile
    """The file chosen from the index."""
    index_url: str
    """The index the file was found on."""
    path: Path
    """The downloaded file in the cache (its sha256 checked)."""
    sha256: str
    """The verified sha256 hex digest."""
