"""Typed fork-actor messages: JSON round trips, registration by import, unknown kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from forkman.actors import Codec, Message, fork_key, open_engine
from forkman.actors.registry import registered_operations
from forkman.core.errors import BadInput, NotFound
from forkman.model.config import DistPreference
from forkman.model.project import Project
from forkman.operations import handlers as h
from forkman.operations.sync import SyncOutcome

SAMPLES: list[Codec] = [
    h.ForkArgs(
        "attrs>=23",
        index_url="http://i/simple",
        prefer=DistPreference.WHEEL,
        prereleases=True,
        layout="namespace",
        adopt=True,
        expect_modules=("attr", "attrs"),
    ),
    h.ForkOutput("23.1.0", "vendor/attrs", ("slow index",)),
    h.UnforkArgs(),
    h.UnforkOutput("23.1.0", "vendor/attrs"),
    h.VerifyArgs(),
    h.VerifyOutput(False, "rebuild", "tree differs", "run forkman verify"),
    h.TestArgs(no_sandbox=True),
    h.TestOutput("passed", True, "ok", "full", passed=3, failures=({"id": "t"},), timeout=600),
    h.SyncArgs(h.SyncMode.SYNC, to="2.0", yes=True, expect_versions={"attrs": "2.0"}),
    h.SyncArgs(h.SyncMode.REVENDOR),
    h.SyncOutput(
        "attrs",
        SyncOutcome.CONFLICT,
        "1.0",
        "2.0",
        "stopped",
        delta=("a.py changed",),
        carried=("0001-x.patch",),
        risks=({"kind": "setup"},),
        conflict=h.ConflictOutput(1, "0001-x.patch", "x", ("a.py",), ("b.py",)),
    ),
    h.PatchArgs(h.PatchMode.MOVE, 3, 1),
    h.PatchArgs(h.PatchMode.IMPORT, files=("/tmp/a.patch",), before_rewrite=True),
    h.PatchOutput(h.PatchMode.RECORD, ("0001-x.patch",), file="0001-x.patch"),
    h.RestoreArgs(),
    h.RestoreOutput(("b.py",)),
    h.CheckUpstreamArgs(),
    h.CheckUpstreamOutput("1.0", "1.1", "1.0 -> 1.1 available", would_conflict=False),
    h.AuditArgs(online=True, database="/db/osv.sqlite"),
    h.AuditOutput("vulnerable", False, ("PYSEC-1",), "vulnerable: PYSEC-1"),
    h.AuditReportArgs(),
    h.AuditReportOutput({"name": "attrs"}, "2026-01-01T00:00:00Z", None, ("osv",)),
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_every_message_and_result_round_trips_through_json(value: Codec) -> None:
    import json

    data = json.loads(json.dumps(value.to_json()))
    assert type(value).from_json(data) == value


def test_importing_the_handlers_registers_every_shipped_operation() -> None:
    kinds = {
        "fork",
        "unfork",
        "verify",
        "test",
        "sync",
        "patch",
        "restore",
        "check-upstream",
        "audit",
        "audit-report",
    }
    registered = registered_operations()
    assert kinds <= set(registered)
    for kind in kinds:
        assert kind == registered[kind].args.KIND


def test_messages_journaled_before_they_were_typed_still_read() -> None:
    """The JSON of every message is what it was: modes are the enums' values."""
    assert h.SyncArgs.from_json({"mode": "continue"}) == h.SyncArgs(h.SyncMode.CONTINUE)
    assert h.SyncArgs.from_json(
        {"to": None, "yes": True, "dry_run": False, "accept_risk": True}
    ) == h.SyncArgs(yes=True, accept_risk=True)
    assert h.PatchArgs.from_json({"mode": "drop", "number": 2}) == h.PatchArgs(h.PatchMode.DROP, 2)
    assert h.ForkArgs.from_json({"spec": "attrs", "prefer": "wheel"}).prefer is DistPreference.WHEEL
    # the conflict marker the actor adds to a sync result is read past
    output = h.SyncOutput("attrs", SyncOutcome.CONFLICT)
    assert h.SyncOutput.from_json({**output.to_json(), "state": "conflict"}) == output


def test_a_message_that_does_not_fit_its_type_is_refused_with_a_hint() -> None:
    with pytest.raises(BadInput, match="SyncArgs has no field 'report'") as info:
        h.SyncArgs.from_json({"report": True})
    assert "another forkman version" in (info.value.hint or "")
    with pytest.raises(BadInput, match=r"SyncArgs.mode: 'merge' is not a SyncMode"):
        h.SyncArgs.from_json({"mode": "merge"})
    with pytest.raises(BadInput, match=r"PatchArgs.number: True is not a int"):
        h.PatchArgs.from_json({"mode": "drop", "number": True})
    with pytest.raises(BadInput, match="ForkArgs"):
        h.ForkArgs.from_json({})


def test_an_unknown_kind_reaching_a_fork_actor_fails_clearly(tmp_path: Path) -> None:
    """A journaled message no imported module registered is a failed reply, never dropped."""
    with open_engine(Project(tmp_path)) as engine:
        reply = engine.ask(fork_key("attrs"), Message("merge", {}))
    assert not reply.ok
    error = reply.exception()
    assert isinstance(error, NotFound)
    assert "no operation 'merge'" in error.message
    assert "forkman.operations.handlers" in (error.hint or "")
