"""`forkman mcp` through the real MCP client over stdio, against a real consumer project.

The project is the sync series of tests/support/series.py: fork ``demo`` 1.0
from the local index with three patches; release 1.1 merges one, conflicts
with one and absorbs one.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from forkman.model.lock import load_lock
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex
from tests.support.mcp import agent
from tests.support.series import lines, make_series

pytestmark = pytest.mark.sandbox

SKIP = (".git",)
AGENT_RECORD = (".forkman/agent.sqlite",)


@pytest.fixture
def series(cwd: Path, local_index: LocalIndex) -> Path:
    make_series(cwd, local_index)
    return cwd


def project_files(root: Path) -> dict[str, str]:
    """The project as a person sees it (the agent record and actor state aside)."""
    return {k: v for k, v in snapshot(root, skip=SKIP).items() if not k.startswith(".forkman/")}


def test_exactly_two_tools_and_search_finds_sync(series: Path) -> None:
    async def scenario() -> None:
        async with agent(series) as a:
            tools = await a.tools()
            assert sorted(t["name"] for t in tools) == ["execute", "search"]
            assert tools[0]["inputSchema"]["required"] in (["query"], ["code"])
            # the API's methods are named in execute's description, found by introspection
            execute = next(t for t in tools if t["name"] == "execute")
            for name in ("forks", "sync", "sync_continue", "review", "write_file"):
                assert name in execute["description"]
            found = await a.search("carry my patches to the new release")
            assert not found.is_error
            assert found.text.startswith("fm.sync(")
            assert "dry_run=False" in found.text and "example:" in found.text
            nothing = await a.search("xyzzy")
            assert "no operation matches" in nothing.text and "sync" in nothing.text
            everything = await a.search("")
            assert "more matches cut" in everything.text
            assert "Narrow the query" in everything.text

    anyio.run(scenario)


def test_execute_returns_values_logs_and_errors_with_hints(series: Path) -> None:
    async def scenario() -> None:
        async with agent(series) as a:
            answer = await a.execute("return [f.name for f in fm.forks()]")
            assert not answer.is_error, answer.text
            assert answer.data["result"] == ["demo"]

            answer = await a.execute(
                "subjects = [p.subject for p in fm.patches('demo')]\n"
                "print('patches:', len(subjects))\n"
                "return {'subjects': subjects, 'status': fm.patches('demo')[0].status.value}"
            )
            assert answer.data["result"]["subjects"] == ["Patch a", "Patch b", "Patch c"]
            assert answer.data["logs"] == "patches: 3\n"

            answer = await a.execute("print('before')\nfm.patches('nope')")
            assert answer.is_error
            error = answer.data["error"]
            assert error["type"] == "NotFound"
            assert error["message"] == "'nope' is not a fork of this project"
            assert error["hint"] == "the forks are: demo"
            assert error["where"] == ["line 2: fm.patches('nope')"]
            assert answer.data["logs"] == "before\n"

            # an error of the API itself keeps forkman's hint
            answer = await a.execute("fm.diff('demo', upstream='9.9..9.8')")
            assert answer.is_error and answer.data["error"]["hint"]

            answer = await a.execute("return fm.no_such_method()")
            assert answer.is_error and "fm has no method 'no_such_method'" in answer.text

            answer = await a.execute("return object()")
            assert answer.data["error"]["type"] == "TypeError"
            assert "not JSON" in answer.data["error"]["message"]

            answer = await a.execute("return (")
            assert answer.data["error"]["type"] == "SyntaxError"

            answer = await a.execute("print('x' * 100000)\nreturn 1")
            assert answer.data["result"] == 1
            assert "[logs cut at" in answer.data["logs"]

            answer = await a.execute("return ['y' * 1000] * 100")
            assert "result cut at" in " ".join(answer.data["notes"])

            # the last bare expression is the result
            answer = await a.execute("x = 2\nx * 21")
            assert answer.data["result"] == 42

    anyio.run(scenario)


def test_a_write_in_read_only_mode_becomes_a_plan_that_approve_applies(series: Path) -> None:
    before = project_files(series)

    async def plan_sync() -> int:
        async with agent(series) as a:
            answer = await a.execute(
                "run = fm.sync('demo', dry_run=True)\n"
                "r = run.results[0]\n"
                "plan = fm.sync('demo', yes=True)\n"
                "return {'outcome': r.outcome, 'conflict': r.conflict.files, 'plan': plan}"
            )
            assert not answer.is_error, answer.text
            data = answer.data
            assert data["result"]["outcome"] == "dry-run"
            assert data["result"]["conflict"] == ["vendor/demo/b.py"]
            plan = data["result"]["plan"]
            assert plan["status"] == "pending"
            assert f"forkman agent approve {plan['plan']}" in plan["note"]
            assert data["pending_plans"] == [plan["plan"]]
            return int(plan["plan"])

    plan_id = anyio.run(plan_sync)
    assert project_files(series) == before  # nothing was performed
    log = run("agent", "log")
    assert log.exit_code == 0
    assert f"{plan_id}  fm.sync('demo', yes=True)" in log.stdout
    assert "fm.sync('demo', dry_run=True): done" in log.stdout

    res = run("agent", "approve", str(plan_id), "--yes")
    assert res.exit_code == 1, res  # the sync stopped at a conflict, as `forkman sync` does
    assert "fork demo stopped at a conflict" in res.stdout
    assert (series / "vendor/demo/b.py").read_text().startswith("<<<<<<< upstream 1.1")
    assert "conflict" in run("status").stdout
    res = run("agent", "approve", str(plan_id), "--yes")
    assert res.exit_code == 2 and "is applied, not pending" in res.stderr

    # the agent reads the markers, writes a resolution and continues: all three gated
    async def resolve() -> list[int]:
        async with agent(series) as a:
            answer = await a.execute(
                "text = fm.read_file('demo', 'b.py')\n"
                "assert '<<<<<<<' in text\n"
                f"fm.write_file('demo', 'b.py', {lines(10, l1='line1 = 1')!r})\n"
                "return fm.sync_continue('demo')"
            )
            assert not answer.is_error, answer.text
            return list(answer.data["pending_plans"])

    plans = anyio.run(resolve)
    assert len(plans) == 2
    res = run("agent", "reject", str(plans[1]))
    assert res.exit_code == 0 and "rejected" in res.stdout
    assert run("agent", "approve", str(plans[0]), "--yes").exit_code == 0
    assert "<<<<<<<" not in (series / "vendor/demo/b.py").read_text()
    res = run("agent", "approve", str(plans[1]), "--yes")
    assert res.exit_code == 2 and "is rejected, not pending" in res.stderr
    assert load_lock(series / "forkman.lock").forks["demo"].version == "1.0"

    log = json.loads(run("agent", "log", "--format", "json").stdout)
    statuses = {p["id"]: p["status"] for p in log["plans"]}
    assert statuses == {plan_id: "applied", plans[0]: "applied", plans[1]: "rejected"}


def test_allow_writes_performs_the_sync_and_its_conflict_resolution(series: Path) -> None:
    async def scenario() -> None:
        async with agent(series, "--allow-writes") as a:
            answer = await a.execute(
                "run = fm.sync('demo', yes=True)\n"
                "r = run.results[0]\n"
                "if r.outcome != 'conflict':\n"
                "    return r\n"
                "for path in r.conflict.files:\n"
                "    rel = path.removeprefix('vendor/demo/')\n"
                "    text = fm.read_file('demo', rel)\n"
                "    marks = ('<<<<<<<', '=======', '>>>>>>>')\n"
                "    keep = [l for l in text.splitlines() if not l.startswith(marks)\n"
                "            and l != \"line1 = 'upstream'\"]\n"
                "    fm.write_file('demo', rel, '\\n'.join(keep) + '\\n')\n"
                "done = fm.sync_continue('demo')\n"
                "return [(x.name, x.outcome, x.new_version) for x in done.results]"
            )
            assert not answer.is_error, answer.text
            assert answer.data["result"] == [["demo", "synced", "1.1"]]
            assert "pending_plans" not in answer.data

    anyio.run(scenario)
    assert load_lock(series / "forkman.lock").forks["demo"].version == "1.1"
    assert (series / "vendor/demo/b.py").read_text().startswith("line1 = 'mine'\n")
    assert run("check").exit_code == 0


def test_mcp_without_a_project_is_a_clear_error(tmp_path: Path) -> None:
    res = run("--project", str(tmp_path), "mcp")
    assert res.exit_code == 2
    assert "no pyproject.toml" in res.stderr
