"""Real wheels unpacked into pristine trees, for the namespace layout and report tests."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forkman.model.config import Config, parse_config
from tests.support.index import build_sdist, build_wheel


def wheel_tree(
    tmp: Path, name: str, version: str, files: Mapping[str, str | bytes], **extra: str
) -> Path:
    """Build a real wheel and unpack it (our own archive: plain extraction is safe)."""
    folder = tmp / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(folder, name, version, dict(files))
    if extra:
        # add dist-info files (licenses, METADATA fields) by rebuilding the archive
        with zipfile.ZipFile(wheel) as zf:
            content = {i.filename: zf.read(i) for i in zf.infolist()}
        distinfo = next(k.split("/")[0] for k in content if k.endswith(".dist-info/METADATA"))
        for key, value in extra.items():
            if key == "metadata":
                content[f"{distinfo}/METADATA"] += value.encode()
            else:
                content[f"{distinfo}/{key}"] = value.encode()
        wheel.unlink()
        with zipfile.ZipFile(wheel, "w") as zf:
            for k, v in content.items():
                zf.writestr(k, v)
    dest = tmp / "pristine" / f"{name}-{version}"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
    return dest


def sdist_file(tmp: Path, name: str, version: str, files: Mapping[str, str]) -> Path:
    folder = tmp / "sdists"
    folder.mkdir(parents=True, exist_ok=True)
    return build_sdist(folder, name, version, files)


def ns_config(**vendoring: Any) -> Config:
    table = {"namespace": "mypkg._vendor", "destination": "src/mypkg/_vendor", **vendoring}
    return parse_config({"prefer": "wheel", "vendoring": table})
