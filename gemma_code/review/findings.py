"""Review findings: the model's reply schema, a small validator, and a parser that survives truncation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")
MAX_FINDINGS = 10  # per reply (per group of files)
RANK = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}  # critical=5 ... info=1

# What the model must produce. Properties are generated in this order (the grammar fixes it):
# the explanation comes before the severity so the model reasons before it grades.
FINDING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "maxLength": 256},
        "line": {"type": "integer", "minimum": 0},
        "title": {"type": "string", "maxLength": 100},
        "explanation": {"type": "string", "maxLength": 500},
        "severity": {"enum": list(SEVERITIES)},
        "fix": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "search": {"type": "string", "maxLength": 2000},
                        "replace": {"type": "string", "maxLength": 2000},
                    },
                    "required": ["search", "replace"],
                    "additionalProperties": False,
                },
            ]
        },
    },
    "required": ["file", "line", "title", "explanation", "severity", "fix"],
    "additionalProperties": False,
}

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": FINDING_SCHEMA, "maxItems": MAX_FINDINGS}},
    "required": ["findings"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Fix:
    """Replace `search` (exact lines of the file) with `replace`."""

    search: str
    replace: str


@dataclass(frozen=True)
class Finding:
    """One problem the reviewer found in a change."""

    severity: str
    file: str
    line: int
    title: str
    explanation: str
    fix: Fix | None = None

    def edit_block(self) -> str | None:
        """The fix as a SEARCH/REPLACE block that `gemma-code apply` accepts, or None."""
        if self.fix is None:
            return None
        return search_replace_block(self.file, self.fix.search, self.fix.replace)

    def to_dict(self) -> dict[str, Any]:
        fix = None
        if self.fix is not None:
            fix = {"search": self.fix.search, "replace": self.fix.replace, "edit": self.edit_block()}
        return {
            "severity": self.severity, "file": self.file, "line": self.line, "title": self.title,
            "explanation": self.explanation, "fix": fix,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        fix = data.get("fix")
        return cls(
            severity=str(data["severity"]), file=str(data["file"]), line=int(data["line"]),
            title=str(data["title"]), explanation=str(data["explanation"]),
            fix=Fix(str(fix["search"]), str(fix["replace"])) if fix else None,
        )


def search_replace_block(path: str, search: str, replace: str) -> str:
    """One edit in the SEARCH/REPLACE format the edits parser reads."""
    body_search = search if search.endswith("\n") or not search else search + "\n"
    body_replace = replace if replace.endswith("\n") or not replace else replace + "\n"
    return f"{path}\n<<<<<<< SEARCH\n{body_search}=======\n{body_replace}>>>>>>> REPLACE\n"


def reaches(severity: str, threshold: str) -> bool:
    """True when `severity` is at or above `threshold` (critical > high > ... > info)."""
    return RANK[severity] >= RANK[threshold]


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Errors of `value` against the small JSON Schema subset used here (empty list: valid)."""
    if "anyOf" in schema:
        options = [validate(value, option, where) for option in schema["anyOf"]]
        return [] if any(not errs for errs in options) else min(options, key=len)
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{where}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    checks = {
        "null": value is None,
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(checks[k] for k in kinds):
        return [f"{where}: expected {' or '.join(kinds)}, got {type(value).__name__}"]
    errors: list[str] = []
    if "maxLength" in schema and isinstance(value, str) and len(value) > schema["maxLength"]:
        errors.append(f"{where}: longer than {schema['maxLength']} characters")
    if "maxItems" in schema and isinstance(value, list) and len(value) > schema["maxItems"]:
        errors.append(f"{where}: more than {schema['maxItems']} items")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below {schema['minimum']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        errors += [f"{where}: missing `{key}`" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected key `{key}`")
    return errors


@dataclass
class ParsedReply:
    """Findings read from one reply, and what went wrong reading it."""

    findings: list[Finding]
    truncated: bool = False  # the reply stopped mid-JSON; complete findings were kept
    problems: tuple[str, ...] = ()


def parse_reply(text: str) -> ParsedReply:
    """Read the model's JSON; on a truncated or invalid reply keep every complete, valid finding."""
    text = text.strip()
    start = text.find("{")
    if start < 0:
        return ParsedReply([], truncated=not text, problems=("the reply holds no JSON object",))
    decoder = json.JSONDecoder()
    try:
        data, _end = decoder.raw_decode(text, start)
    except json.JSONDecodeError:
        kept, problems = _salvage(text[start:])
        return ParsedReply(kept, truncated=True, problems=("the reply was cut off", *problems))
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        return ParsedReply([], problems=("the reply has no `findings` list",))
    findings: list[Finding] = []
    problems_list: list[str] = []
    for i, item in enumerate(data["findings"]):
        errors = validate(item, FINDING_SCHEMA, f"findings[{i}]")
        if errors:
            problems_list.extend(errors)
            continue
        findings.append(Finding.from_dict(item))
    return ParsedReply(findings, problems=tuple(problems_list))


def _salvage(text: str) -> tuple[list[Finding], list[str]]:
    """Complete finding objects from a reply cut off inside the `findings` array."""
    key = text.find('"findings"')
    bracket = text.find("[", key) if key >= 0 else -1
    if bracket < 0:
        return [], []
    decoder = json.JSONDecoder()
    findings: list[Finding] = []
    problems: list[str] = []
    pos = bracket + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            break
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        errors = validate(item, FINDING_SCHEMA, f"findings[{len(findings)}]")
        if errors:
            problems.extend(errors)
        else:
            findings.append(Finding.from_dict(item))
    return findings, problems
