"""The commands of `forkman`: name -> ``"module:attribute"`` (module relative to forkman.cli).

A table, not imports: only the module of the command being run is imported
(:class:`forkman.cli._app.LazyGroup`). Add a line here to expose a new command.
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "init": "_core:init_cmd",
    "fork": "_core:fork_cmd",
    "unfork": "_core:unfork_cmd",
    "status": "_core:status_cmd",
    "check": "_check_cmd:check_cmd",
    "verify": "_core:verify_cmd",
    "db": "_audit:db_group",
    "audit": "_audit:audit_cmd",
    "provenance": "_audit:provenance_cmd",
    "review": "_audit:review_cmd",
    "licenses": "_vendoring:licenses_cmd",
    "sbom": "_vendoring:sbom_cmd",
    "migrate": "_vendoring:migrate_group",
    "wire": "_vendoring:wire_cmd",
    "doctor": "_vendoring:doctor_cmd",
    "ci": "_ci_cmd:ci_cmd",
    "card": "_ci_cmd:card_cmd",
    "watch": "_actors:watch_cmd",
    "sandbox": "_sandbox:sandbox_group",
    "test": "_sandbox:test_cmd",
    "patch": "_patch:patch_cmd",
    "patches": "_patch:patches_cmd",
    "diff": "_patch:diff_cmd",
    "restore": "_patch:restore_cmd",
    "sync": "_patch:sync_cmd",
    "mcp": "_agent:mcp_cmd",
    "agent": "_agent:agent_group",
}
