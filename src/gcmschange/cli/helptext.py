"""Examples and exit codes at the foot of every verb's `--help`, kept in one table.

The root `--help` lists every exit code; each verb says which of them it can end with and
shows the two or three command lines people actually type, as `git` and `ansible` do.
"""

from __future__ import annotations

import click

# verb -> (examples, the exit codes it can end with and what each means there)
EPILOGS: dict[str, tuple[tuple[str, ...], str]] = {
    "validate": (
        ("gcmschange validate", "gcmschange validate changes/CHG-LAB-0001.yaml --output junit"),
        "0 valid; 1 a problem found (each one line, file:line:column); 2 usage",
    ),
    "render": (
        ("gcmschange render CHG-LAB-0001", "gcmschange render CHG-LAB-0001 -o /tmp/rendered"),
        "0 rendered; 1 invalid change or template",
    ),
    "plan": (
        ("gcmschange plan CHG-LAB-0001", "gcmschange plan CHG-LAB-0001 --output markdown"),
        "0 planned; 1 invalid or refused; 6 some host unreachable (plan incomplete)",
    ),
    "approve": (
        ("gcmschange approve CHG-LAB-0001 --key ~/.ssh/id_ed25519 --comment 'Reviewed'",),
        "0 signed and committed; 1 refused (unknown key, self-approval, stale plan)",
    ),
    "approvals": (
        ("gcmschange approvals CHG-LAB-0001", "gcmschange approvals CHG-LAB-0001 --gate"),
        "0 listed / gate passes; 1 gate refused, with what is still missing",
    ),
    "apply": (
        ("gcmschange apply CHG-LAB-0001", "GCMS_ACCELERATE=true gcmschange apply CHG-LAB-0001"),
        "0 applied and verified; 1 refused before any host was touched; 4 failed, rolled back "
        "and verified; 5 rollback failed (page someone); 130 interrupted (resume or roll back)",
    ),
    "run": (
        ("gcmschange run CHG-LAB-0001",),
        "as apply; also 6 when the plan could not reach every host (nothing applied)",
    ),
    "rollback": (
        ("gcmschange rollback CHG-LAB-0001",),
        "0 rolled back and verified (what was asked); 5 rollback failed (page someone); 1 refused",
    ),
    "resume": (
        ("gcmschange status CHG-LAB-0001", "gcmschange resume CHG-LAB-0001"),
        "as apply: the run continues from its journal, or rolls back",
    ),
    "status": (
        ("gcmschange status CHG-LAB-0001 --output json",),
        "0 shown; 1 unknown change or damaged journal",
    ),
    "verify": (("gcmschange verify CHG-LAB-0001",), "0 every check passed; 1 a check failed"),
    "locks": (("gcmschange locks", "GCMS_REMOTE=upstream gcmschange locks"), "0 listed"),
    "unlock": (
        ("gcmschange unlock lab/portal --reason 'holder crashed, INC-1234'",),
        "0 released (recorded in the audit log); 1 no such lock",
    ),
    "drift": (
        ("gcmschange drift lab", "gcmschange drift prod --systems portal --output junit"),
        "0 clean; 1 some host drifted; 6 some host unreachable",
    ),
    "calendar": (
        ("gcmschange calendar --env prod -o changes.ics",),
        "0 written; 1 with --strict when a conflict is found",
    ),
    "site": (("gcmschange site -o public",), "0 built"),
}


def attach(root: click.Group) -> None:
    """Give each registered verb its examples and exit codes (idempotent)."""
    for name, (examples, codes) in EPILOGS.items():
        command = root.commands.get(name)
        if command is None or command.epilog:
            continue
        lines = ["\b", "Examples:", *(f"  {e}" for e in examples), "", f"Exit codes: {codes}."]
        command.epilog = "\n".join(lines)
