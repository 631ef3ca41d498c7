"""The agent's first prompt (rules, tools, project instructions, packed repository context),
and keeping a long run inside the context window.

Layout, for KV reuse: the system turn holds what does not change within a repository (rules,
AGENTS.md/GEMMA.md, the repository map and files, the tool declarations); the task and the
mode come in the first user turn; each step only appends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from gemma_code.engine.base import Message
from gemma_code.tasks.prompting import BASE_RULES

INSTRUCTION_FILES = ("AGENTS.md", "GEMMA.md")
MAX_INSTRUCTION_TOKENS = 4_000
SHORTENED_KEEP_TOKENS = 200  # what an old tool result keeps when the window runs short

AGENT_RULES = BASE_RULES + """

You work in the user's repository through tools: list_files, read_file, search, edit_file,
write_file and run_command (plus any external tools declared below). Work in small steps:
1. Find what matters: the repository context below often has it already; otherwise search,
   then read only the lines you need.
2. Change files with edit_file: old_text must be copied exactly from the file and match one
   place only. Use write_file for new files.
3. Check your work with run_command (the tests, a linter) when the task changes code.
4. When done, answer briefly: what you changed and how you checked it. Do not call a tool
   to say you are finished.
Never call the same tool with the same arguments twice in a row: the result will not
change. If a call is refused or fails, read the reason and do something different.
Paths are relative to the repository root; nothing outside the repository can be touched."""

MODE_NOTES = {
    "plan": "Mode: plan. You may only read and search; edits and commands are refused. "
            "Investigate, then answer with a plan: which files to change and how.",
    "ask": "Mode: ask. Reading is free; the user approves each edit and each command.",
    "auto-edit": "Mode: auto-edit. Edits apply at once; the user approves each command.",
    "full-auto": "Mode: full-auto. Edits apply and commands run in a sandbox without "
                 "network, able to write only inside the repository.",
}


def project_instructions(
    root: Path, count_tokens: Callable[[str], int], limit: int = MAX_INSTRUCTION_TOKENS
) -> tuple[str, list[str]]:
    """AGENTS.md and GEMMA.md from the repository root, as text (bounded), and notes."""
    from gemma_code.tools.base import bound_text

    parts: list[str] = []
    notes: list[str] = []
    for name in INSTRUCTION_FILES:
        path = root / name
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError as exc:
            notes.append(f"could not read {name}: {exc.strerror}")
            continue
        if not text:
            continue
        text, cut = bound_text(text + "\n", limit, count_tokens, what=name)
        if cut:
            notes.append(f"{name} was cut to {limit:,} tokens")
        parts.append(f"# Project instructions ({name})\n\n{text.strip()}")
    return "\n\n".join(parts), notes


def system_text(instructions: str, repo_context: str | None) -> str:
    """The system turn's text: rules, project instructions, repository context."""
    parts = [AGENT_RULES]
    if instructions:
        parts.append(instructions)
    if repo_context:
        parts.append("# Repository context\n\n" + repo_context)
    return "\n\n".join(parts)


def task_text(task: str, mode: str) -> str:
    """The first user turn: the mode, then the task."""
    return f"{MODE_NOTES[mode]}\n\n{task.strip()}"


def shorten_results(
    messages: list[Message],
    over: int,
    count_tokens: Callable[[str], int],
    *,
    keep_last: int,
) -> tuple[list[Message], list[str]]:
    """Shorten older tool results (oldest first) until `over` tokens are freed.

    The last `keep_last` messages are left alone. Each shortened result keeps its start and
    says how long it was, so nothing disappears silently. Returns the messages and notes.
    """
    from gemma_code.tools.base import bound_text

    out = list(messages)
    notes: list[str] = []
    freed = 0
    for index in range(len(out) - keep_last):
        if freed >= over:
            break
        message = out[index]
        if message.role != "tool" or not isinstance(message.response, dict):
            continue
        key = "output" if "output" in message.response else "error"
        text = str(message.response.get(key, ""))
        before = count_tokens(text)
        if before <= SHORTENED_KEEP_TOKENS * 2:
            continue
        short, _ = bound_text(text, SHORTENED_KEEP_TOKENS, count_tokens, what="this older result",
                              more=f"it was {before:,} tokens; call the tool again if you "
                                   "need it")
        response = {**message.response, key: short}
        out[index] = dataclasses.replace(message, response=response)
        freed += before - count_tokens(short)
        notes.append(f"shortened an older {message.name} result from {before:,} tokens to fit "
                     "the context window")
    return out, notes


def declared_names(messages: Sequence[Message]) -> list[str]:
    """The tool names the system message declares."""
    return [tool.name for tool in messages[0].tools] if messages else []
