"""Review output: the stable JSON document, plain text for hooks, and a rich table for terminals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gemma_code import __version__
from gemma_code.review.findings import FINDING_SCHEMA, SEVERITIES, Finding, reaches

if TYPE_CHECKING:
    from rich.console import Console

    from gemma_code.tasks.review import ReviewResult

JSON_SCHEMA_VERSION = 1

_STR = {"type": "string"}
_INT = {"type": "integer"}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "schema_version", "tool", "status", "blocking", "fail_on", "target", "model", "cached",
        "complete", "files", "notices", "counts", "findings", "error", "stats",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"enum": [JSON_SCHEMA_VERSION]},
        "tool": {
            "type": "object", "required": ["name", "version"], "additionalProperties": False,
            "properties": {"name": _STR, "version": _STR},
        },
        "status": {"enum": ["ok", "error"]},
        "blocking": {"type": "boolean"},
        "fail_on": {"enum": list(SEVERITIES)},
        "target": {
            "type": "object", "required": ["mode", "spec"], "additionalProperties": False,
            "properties": {"mode": {"enum": ["staged", "range", "files"]}, "spec": _STR},
        },
        "model": _STR,
        "cached": {"type": "boolean"},
        "complete": {"type": "boolean"},
        "files": {
            "type": "object", "required": ["reviewed", "skipped"], "additionalProperties": False,
            "properties": {
                "reviewed": {"type": "array", "items": _STR},
                "skipped": {"type": "array", "items": {
                    "type": "object", "required": ["path", "reason"], "additionalProperties": False,
                    "properties": {"path": _STR, "reason": _STR},
                }},
            },
        },
        "notices": {"type": "array", "items": _STR},
        "counts": {
            "type": "object", "required": list(SEVERITIES), "additionalProperties": False,
            "properties": {s: _INT for s in SEVERITIES},
        },
        "findings": {"type": "array", "items": {
            **FINDING_SCHEMA,
            "properties": {
                **FINDING_SCHEMA["properties"],
                "fix": {"anyOf": [{"type": "null"}, {
                    "type": "object", "required": ["search", "replace", "edit"],
                    "additionalProperties": False,
                    "properties": {"search": _STR, "replace": _STR, "edit": _STR},
                }]},
            },
        }},
        "error": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["message", "hint", "exit_code"],
            "additionalProperties": False,
            "properties": {"message": _STR, "hint": {"type": ["string", "null"]}, "exit_code": _INT},
        }]},
        "stats": {
            "type": "object", "additionalProperties": False,
            "required": ["requests", "prompt_tokens", "completion_tokens", "seconds"],
            "properties": {
                "requests": _INT, "prompt_tokens": _INT, "completion_tokens": _INT,
                "seconds": {"type": "number"},
            },
        },
    },
}


@dataclass
class Report:
    """Everything a review prints, whatever the format."""

    mode: str
    spec: str
    fail_on: str
    findings: list[Finding] = field(default_factory=list)
    reviewed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    model: str = ""
    cached: bool = False
    complete: bool = True
    error: dict[str, Any] | None = None  # the model could not run: message, hint, exit_code
    stats: dict[str, Any] = field(default_factory=lambda: {
        "requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
    })

    @property
    def blocking(self) -> bool:
        return any(reaches(f.severity, self.fail_on) for f in self.findings)

    def take(self, result: ReviewResult) -> None:
        """Fill in what a finished review found, read, skipped and cost."""
        self.findings, self.reviewed, self.skipped = result.findings, result.reviewed, result.skipped
        self.notices, self.model, self.cached = result.notices, result.model, result.cached
        self.complete = result.complete
        self.stats = {
            "requests": result.requests, "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens, "seconds": round(result.seconds, 3),
        }

    def to_json(self) -> dict[str, Any]:
        """The documented `--format json` document (docs/review.md)."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "tool": {"name": "gemma-code", "version": __version__},
            "status": "error" if self.error else "ok",
            "blocking": self.blocking,
            "fail_on": self.fail_on,
            "target": {"mode": self.mode, "spec": self.spec},
            "model": self.model,
            "cached": self.cached,
            "complete": self.complete,
            "files": {
                "reviewed": self.reviewed,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            },
            "notices": self.notices,
            "counts": {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES},
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
            "stats": self.stats,
        }

    def summary(self) -> str:
        """One line: how many findings, whether they block, how long it took."""
        if self.error:
            return f"review not done: {self.error['message']}"
        counts = [f"{n} {s}" for s in SEVERITIES if (n := sum(f.severity == s for f in self.findings))]
        found = ", ".join(counts) if counts else "no findings"
        verdict = f"blocking (--fail-on {self.fail_on})" if self.blocking else "not blocking"
        cached = ", cached" if self.cached else ""
        return (
            f"gemma-code review: {found} in {len(self.reviewed)} file(s); {verdict}"
            f" [{self.stats['seconds']:.1f} s{cached}]"
        )

    def to_text(self) -> str:
        """Plain text for hooks and pipes: one block per finding, then notices and a summary."""
        out: list[str] = []
        for f in self.findings:
            out.append(f"{f.file}:{f.line}: {f.severity}: {f.title}")
            out += [f"    {line}" for line in f.explanation.strip().splitlines()]
            edit = f.edit_block()
            if edit:
                out.append("    suggested fix (gemma-code apply accepts it):")
                out += [f"    {line}" for line in edit.rstrip("\n").splitlines()]
            out.append("")
        for path, reason in self.skipped:
            out.append(f"skipped {path}: {reason}")
        out += [f"note: {n}" for n in self.notices]
        out.append(self.summary())
        return "\n".join(out) + "\n"

    def print_table(self, console: Console) -> None:
        """A rich table of findings, then skipped files, notices and the summary."""
        from rich.markup import escape
        from rich.table import Table

        styles = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
        if self.findings:
            table = Table(title="gemma-code review", title_justify="left", show_lines=True)
            table.add_column("severity")
            table.add_column("where", no_wrap=True)
            table.add_column("finding")
            for f in self.findings:
                body = f"[bold]{escape(f.title)}[/]\n{escape(f.explanation.strip())}"
                if f.fix is not None:
                    body += "\n[dim]fix offered: see --format json or text[/]"
                table.add_row(f"[{styles[f.severity]}]{f.severity}[/]", escape(f"{f.file}:{f.line}"), body)
            console.print(table)
        for path, reason in self.skipped:
            console.print(f"[dim]skipped {escape(path)}: {escape(reason)}[/]")
        for note in self.notices:
            console.print(f"[yellow]note:[/] {escape(note)}")
        style = "bold red" if self.blocking or self.error else "green"
        console.print(f"[{style}]{escape(self.summary())}[/]")
