"""Validation reports for people and machines, chosen by name; each writes to a given stream.

text: one line per problem (`file:line:col: JSON-path: message`) and the blast radius.
json: the same, structured. junit: one test case per change, for CI test widgets.
codequality: GitLab's Code Quality JSON, so findings show in the merge-request widget.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, TextIO
from xml.etree import ElementTree as ET

from gcmschange.errors import Problem
from gcmschange.validate.run import FileResult, Report


class Reporter(Protocol):
    def __call__(self, report: Report, stream: TextIO, /) -> None: ...


def _problem_json(p: Problem) -> dict[str, Any]:
    loc = p.location
    return {
        "file": loc.file,
        "line": loc.line,
        "column": loc.column,
        "path": loc.path,
        "message": p.message,
        "code": p.code,
        "severity": p.severity,
    }


def _failed(result: FileResult) -> bool:
    return any(p.severity == "error" for p in result.problems)


def _blast_json(result: FileResult) -> dict[str, list[str]] | None:
    if result.blast is None:
        return None
    return {"systems": list(result.blast.systems), "partners": list(result.blast.partners)}


def as_json(report: Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "changes": [
            {
                "file": r.file,
                "id": r.change_id,
                "ok": not _failed(r),
                "problems": [_problem_json(p) for p in r.problems],
                "blast_radius": _blast_json(r),
            }
            for r in report.results
        ],
        "problems": [_problem_json(p) for p in report.problems],
    }


def write_json(report: Report, stream: TextIO) -> None:
    # Compact: the C encoder (indent would make it pure Python, seconds for 10,000 changes).
    stream.write(json.dumps(as_json(report), ensure_ascii=False) + "\n")


def _text_lines(result: FileResult) -> list[str]:
    errors = sum(p.severity == "error" for p in result.problems)
    warnings = len(result.problems) - errors
    verdict = "INVALID" if errors else "ok"
    counts = f" ({errors} error(s), {warnings} warning(s))" if result.problems else ""
    lines = [f"{result.file}: {result.change_id or '-'}: {verdict}{counts}"]
    lines += [f"  {p}" + (" [warning]" if p.severity == "warning" else "") for p in result.problems]
    if result.blast is not None:
        lines.append(f"  blast radius: systems {', '.join(result.blast.systems)}")
        partners = ", ".join(result.blast.partners) or "none"
        lines.append(f"  partners affected: {partners}")
    return lines


def write_text(report: Report, stream: TextIO) -> None:
    lines = [f"{p}" for p in report.problems]
    for result in report.results:
        lines += _text_lines(result)
    failed = sum(_failed(r) for r in report.results)
    lines.append(f"{len(report.results)} change(s) checked, {failed} invalid")
    stream.write("\n".join(lines) + "\n")


def write_junit(report: Report, stream: TextIO) -> None:
    failures = sum(_failed(r) for r in report.results)
    suite = ET.Element(
        "testsuite",
        name="gcmschange validate",
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
    )
    for result in report.results:
        case = ET.SubElement(
            suite, "testcase", classname="changes", name=result.change_id or result.file
        )
        errors = [str(p) for p in result.problems if p.severity == "error"]
        if errors:
            failure = ET.SubElement(case, "failure", message=errors[0], type="validation")
            failure.text = "\n".join(errors)
        notes = [str(p) for p in result.problems if p.severity != "error"]
        if notes:
            ET.SubElement(case, "system-out").text = "\n".join(notes)
    stream.write(ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n")


def _fingerprint(p: Problem) -> str:
    loc = p.location
    return hashlib.sha256(f"{loc.file}\0{loc.path}\0{p.code}\0{p.message}".encode()).hexdigest()


def write_codequality(report: Report, stream: TextIO) -> None:
    issues = [
        {
            "description": f"{p.location.path}: {p.message}" if p.location.path else p.message,
            "check_name": f"gcmschange.{p.code}",
            "fingerprint": _fingerprint(p),
            "severity": "major" if p.severity == "error" else "minor",
            "location": {"path": p.location.file, "lines": {"begin": max(p.location.line, 1)}},
        }
        for p in report.all_problems()
    ]
    stream.write(json.dumps(issues, indent=2, ensure_ascii=False) + "\n")


REPORTERS: dict[str, Reporter] = {
    "text": write_text,
    "json": write_json,
    "junit": write_junit,
    "codequality": write_codequality,
}
