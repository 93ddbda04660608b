"""`forkman mcp` (search + execute) against a one-tool-per-operation surface, in one run.

    python benchmarks/agent.py [--runs 20]

Builds a real consumer project on the tests' local HTTP index: ``demo`` (the
sync series: release 1.1 conflicts with a patch and adds a .pth hook),
``tidy`` (1.1 merges cleanly with its patch) and ``steady`` (no newer release),
all forked and patched with the real CLI. Then, through the real stdio server
and the official MCP client, prints side by side:

1. tokens of the tool definitions (``tools/list`` JSON, characters / 4) against
   a one-tool-per-operation surface generated from the same API (each public
   method of ``forkman.Project`` a tool: its docstring, a JSON schema of its
   parameters); target: at most 1/10;
2. the worked maintenance task (which forks have a newer release, dry-run
   their syncs, read each delta's risk review, say which merge cleanly, which
   conflict and which carry findings): tool calls through ``execute`` (1)
   against per-operation tools (a sync dry run, then a review per fork with a
   newer release), and the tokens each returns;
3. latency of ``execute`` for ``return [f.name for f in fm.forks()]`` through
   the stdio server, warm, against ``forkman status --format json`` as a new
   process (medians of --runs, measured alternately); target: at most 0.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASK = """\
run = fm.sync(dry_run=True)
out = {"merge_cleanly": [], "conflict": [], "findings": {}, "up_to_date": []}
for r in run.results:
    if not r.new_version:
        out["up_to_date"].append(r.name)
        continue
    review = fm.review(r.name, upstream=f"{r.old_version}..{r.new_version}")
    if review.findings:
        out["findings"][r.name] = [f"{f.rule}: {f.file}" for f in review.findings]
    if r.conflict:
        out["conflict"].append({"fork": r.name, "to": r.new_version,
                                "patch": r.conflict.subject, "files": r.conflict.files})
    else:
        out["merge_cleanly"].append({"fork": r.name, "to": r.new_version,
                                     "carried": r.carried, "dropped": r.dropped})
return out
"""


def tokens(text: str) -> int:
    """The usual estimate: four characters a token."""
    return len(text) // 4


def make_project(base: Path) -> tuple[Path, Any]:
    """The consumer project with three forks, and its running local index."""
    for key, value in {
        "HOME": str(base / "home"),
        "FORKMAN_CACHE_DIR": str(base / "home" / "cache"),
        "NO_COLOR": "1",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.org",
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        os.environ[key] = value
    (base / "home").mkdir()
    from tests.support.cli import run
    from tests.support.index import LocalIndex
    from tests.support.series import lines, make_series

    index = LocalIndex(base / "index").start()
    root = base / "consumer"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{index.url}"\n'
    )
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=root, check=True)
    os.chdir(root)
    make_series(root, index)

    def publish(name: str, version: str) -> None:
        body = lines(30, l25="line25 = 'upstream'") if version == "1.1" else lines(30)
        index.add_sdist(
            name,
            version,
            {
                "pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n',
                f"{name}.py": body,
            },
        )

    for name in ("tidy", "steady"):
        publish(name, "1.0")
        assert run("fork", f"{name}>=1,<2").exit_code == 0
        path = root / "vendor" / name / f"{name}.py"
        path.write_text(lines(30, l3="line3 = 'mine'"))
        assert run("patch", name, "-m", f"Patch {name}").exit_code == 0
    publish("tidy", "1.1")  # after the fork: a newer release that merges cleanly
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "forks"], cwd=root, check=True)
    return root, index


def _json_type(annotation: str) -> dict[str, Any]:
    text = annotation.replace(" ", "")
    options: list[dict[str, Any]] = []
    for part in text.split("|"):
        if part in ("str", "PathLike[str]", "os.PathLike[str]"):
            options.append({"type": "string"})
        elif part == "bool":
            options.append({"type": "boolean"})
        elif part == "int":
            options.append({"type": "integer"})
        elif part == "float":
            options.append({"type": "number"})
        elif part == "None":
            options.append({"type": "null"})
        elif part.startswith(("Sequence", "list", "tuple")):
            options.append({"type": "array", "items": {"type": "string"}})
    if not options:
        return {}
    return options[0] if len(options) == 1 else {"anyOf": options}


def per_operation_tools() -> list[dict[str, Any]]:
    """One tool per public method of forkman.Project, as per-endpoint MCP servers expose."""
    from forkman.agent._catalog import operations

    tools = []
    for op in operations():
        properties: dict[str, Any] = {}
        required: list[str] = []
        for p in op.parameters:
            schema = _json_type(p.annotation)
            if p.kind == "variadic":
                schema = {"type": "array", "items": {"type": "string"}}
            if p.default is not None:
                schema = {**schema, "default": p.default}
            properties[p.name] = schema
            if p.default is None and p.kind != "variadic":
                required.append(p.name)
        tools.append(
            {
                "name": f"forkman_{op.name}",
                "description": op.doc,
                "inputSchema": {"type": "object", "properties": properties, "required": required},
            }
        )
    return tools


def per_operation_task(root: Path) -> tuple[int, int]:
    """The worked task through per-operation tools: calls made, characters returned."""
    import forkman
    from forkman.agent._host import to_data

    fm = forkman.Project.open(root)
    run = fm.sync(dry_run=True)
    returned = [json.dumps(to_data(run))]
    calls = 1
    for report in run.results:
        if not report.new_version:
            continue
        review = fm.review(report.name, upstream=f"{report.old_version}..{report.new_version}")
        returned.append(json.dumps(to_data(review)))
        calls += 1
    return calls, sum(len(r) for r in returned)


async def through_mcp(root: Path, runs: int) -> dict[str, Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "forkman", "--project", str(root), "mcp"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=str(root),
    )
    out: dict[str, Any] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        out["tools_json"] = json.dumps(
            listed.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        task = await session.call_tool("execute", {"code": TASK})
        out["task_text"] = "".join(getattr(c, "text", "") for c in task.content)
        code = {"code": "return [f.name for f in fm.forks()]"}
        for _ in range(3):
            await session.call_tool("execute", code)  # warm
        samples_exec: list[float] = []
        samples_cli: list[float] = []
        for _ in range(runs):
            t = time.perf_counter()
            await session.call_tool("execute", code)
            samples_exec.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "forkman", "status", "--format", "json"],
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
                check=True,
            )
            samples_cli.append(time.perf_counter() - t)
        out["execute_ms"] = statistics.median(samples_exec) * 1000
        out["status_ms"] = statistics.median(samples_cli) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import anyio

    with tempfile.TemporaryDirectory(prefix="forkman-agent-bench-") as tmp:
        root, index = make_project(Path(tmp))
        try:
            measured = anyio.run(through_mcp, root, args.runs)
            per_op_json = json.dumps({"tools": per_operation_tools()})
            calls, per_op_chars = per_operation_task(root)
        finally:
            index.stop()
    task = json.loads(measured["task_text"])
    ours, theirs = tokens(measured["tools_json"]), tokens(per_op_json)
    task_tokens, per_op_tokens = tokens(measured["task_text"]), per_op_chars // 4
    exec_ms, status_ms = measured["execute_ms"], measured["status_ms"]
    rows = [
        "1. tool definitions (tools/list JSON, tokens = characters / 4)",
        f"   search + execute:           {ours:>6} tokens (2 tools)",
        f"   one tool per operation:     {theirs:>6} tokens ({len(per_operation_tools())} tools)",
        f"   ratio:                      {ours / theirs:.3f}  (target <= 0.100)",
        "2. worked maintenance task (newer releases, dry-run syncs, risk reviews)",
        f"   answer: {json.dumps(task.get('result', task))}",
        f"   execute:                    {1:>6} call,  {task_tokens:>5} tokens returned",
        f"   one tool per operation:     {calls:>6} calls, {per_op_tokens:>5} tokens returned",
        f"   ratio (tokens returned):    {task_tokens / max(1, per_op_tokens):.3f}",
        "3. latency: `return [f.name for f in fm.forks()]`, warm, vs a new process",
        f"   execute (stdio, warm):      {exec_ms:>6.1f} ms (median of {args.runs})",
        f"   forkman status --format json: {status_ms:>4.1f} ms (median of {args.runs})",
        f"   ratio:                      {exec_ms / status_ms:.3f}  (target <= 0.500)",
    ]
    print("\n".join(rows))


if __name__ == "__main__":
    main()
