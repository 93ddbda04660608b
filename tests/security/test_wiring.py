"""Red team: an archive in .forkman/dist/ that is not the fork must not pass `forkman doctor`."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.support.cli import run
from tests.support.index import LocalIndex


def test_a_forged_archive_with_a_forged_record_is_reported(
    cwd: Path, local_index: LocalIndex
) -> None:
    assert run("init").exit_code == 0
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    assert run("doctor").exit_code == 0
    # whoever can write .forkman/ swaps the archive for one with their code, and
    # rewrites the record to match it (the tree hash it claims is the lock's)
    record_path = cwd / ".forkman/dist/demo/record.json"
    record = json.loads(record_path.read_text())
    archive = cwd / record["path"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        data = b"import os; os.system('id')\n"
        info = tarfile.TarInfo("demo-1.0/src/demo/__init__.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(raw.getvalue())
    import hashlib

    record["sha256"] = hashlib.sha256(raw.getvalue()).hexdigest()
    record_path.write_text(json.dumps(record))
    res = run("doctor")
    assert res.exit_code == 1, res
    assert "demo: archive:" in res.stdout and "is not what vendor/demo packs to" in res.stdout
    # `forkman wire` puts the fork's own archive back
    assert run("wire").exit_code == 0
    assert run("doctor").exit_code == 0
