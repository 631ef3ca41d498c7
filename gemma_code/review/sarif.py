"""SARIF 2.1.0 output, for code-scanning interfaces (GitHub code scanning, IDE SARIF viewers)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gemma_code import __version__
from gemma_code.review.findings import SEVERITIES
from gemma_code.review.report import Report

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/gemma-code/gemma-code/blob/main/docs/review.md"

# One rule per severity: a model's free-text titles make poor rule ids, severities are stable.
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "7.5", "medium": "5.0", "low": "2.5", "info": "0.0"}


def rule_id(severity: str) -> str:
    return f"gemma-code/{severity}"


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": rule_id(s),
            "name": f"Review{s.capitalize()}",
            "shortDescription": {"text": f"gemma-code review finding of {s} severity"},
            "defaultConfiguration": {"level": LEVELS[s]},
            "properties": {"security-severity": SECURITY_SEVERITY[s], "tags": ["review"]},
        }
        for s in SEVERITIES
    ]


def _artifact(path: str, root: Path | None) -> dict[str, Any]:
    uri = quote(Path(path).as_posix())  # a URI reference: spaces and the like are %-encoded
    return {"uri": uri} if root is None else {"uri": uri, "uriBaseId": "%SRCROOT%"}


def to_sarif(report: Report, root: Path | None = None) -> dict[str, Any]:
    """The report as one SARIF 2.1.0 log with a single run; paths relative to `root`."""
    results: list[dict[str, Any]] = []
    for f in report.findings:
        fingerprint = hashlib.sha256(f"{f.file}\0{f.title}".encode()).hexdigest()[:32]
        result: dict[str, Any] = {
            "ruleId": rule_id(f.severity),
            "ruleIndex": SEVERITIES.index(f.severity),
            "level": LEVELS[f.severity],
            "message": {"text": f"{f.title}\n\n{f.explanation.strip()}".strip()},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": _artifact(f.file, root),
                    "region": {"startLine": max(f.line, 1)},  # SARIF lines start at 1
                }
            }],
            "partialFingerprints": {"gemmaCodeFinding/v1": fingerprint},
            "properties": {"severity": f.severity},
        }
        edit = f.edit_block()
        if edit:
            result["properties"]["fix"] = edit
        results.append(result)
    invocation: dict[str, Any] = {"executionSuccessful": report.error is None}
    notes = [{"level": "note", "message": {"text": n}} for n in report.notices]
    if report.error:
        notes.append({"level": "error", "message": {"text": report.error["message"]}})
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return {
        "version": SARIF_VERSION,
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {"driver": {
                "name": "gemma-code", "version": __version__, "informationUri": INFO_URI,
                "rules": _rules(),
            }},
            **({"originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}}} if root else {}),
            "invocations": [invocation],
            "results": results,
        }],
    }
