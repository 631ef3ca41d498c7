"""`edit` and `refactor`: instruction + context to the model, reply parsed and planned, retried.

Nothing is written here: the caller previews `EditOutcome.plan.changes()` and writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.edits.apply import Plan, plan_edits
from gemma_code.edits.model import Edit, Failure, FileChange
from gemma_code.edits.parse import ParseProblem, parse_reply_lenient
from gemma_code.engine.base import Engine, GenerationStats, Message
from gemma_code.tasks.edit_prompts import DEFAULT_FORMAT, FORMATS, retry_message
from gemma_code.tasks.prompting import BASE_RULES, check_fits, fence

MAX_RETRIES = 2
MAX_SYMBOL_FILES = 12  # files holding a refactored symbol that go into the prompt in full


@dataclass
class Round:
    """One model reply and what came of it."""

    reply: str
    edits: list[Edit]
    problems: list[ParseProblem]
    failures: list[Failure]
    stats: GenerationStats | None = None


@dataclass
class EditOutcome:
    """Every round, and the plan with every edit that applied (the last round's failures)."""

    plan: Plan
    rounds: list[Round] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    cancelled: bool = False  # the user stopped a correction round (chat)

    @property
    def failures(self) -> list[Failure]:
        return self.plan.failures

    @property
    def problems(self) -> list[ParseProblem]:
        return self.rounds[-1].problems if self.rounds else []

    def changes(self) -> list[FileChange]:
        return self.plan.changes()


@dataclass
class SymbolSites:
    """Where a symbol is defined and used: (path, 1-based line, source line)."""

    name: str
    definitions: list[tuple[str, int, str]] = field(default_factory=list)
    references: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        seen: dict[str, None] = {}
        for path, _, _ in self.definitions + self.references:
            seen.setdefault(path, None)
        return list(seen)

    def render(self, limit: int = 60) -> str:
        rows = [f"- definition {p}:{n}: {t.strip()}" for p, n, t in self.definitions]
        rows += [f"- reference {p}:{n}: {t.strip()}" for p, n, t in self.references]
        more = f"\n- ... and {len(rows) - limit} more" if len(rows) > limit else ""
        return f"Symbol `{self.name}`:\n" + "\n".join(rows[:limit]) + more


def find_symbol(root: Path, name: str) -> SymbolSites:
    """Definitions and references of `name` across the repository (tree-sitter tags)."""
    from gemma_code.context.tags import find_definitions, find_references

    sites = SymbolSites(name)
    for tag in find_definitions(root, name):
        sites.definitions.append((tag.path, tag.line, tag.text))
    for tag in find_references(root, name):
        sites.references.append((tag.path, tag.line, tag.text))
    return sites


EDIT_JOB = "Change the code as the instruction asks, and nothing else."
REFACTOR_JOB = ("Refactor the code as asked: change the definition and every reference "
                "consistently, and nothing else.")


def system_prompt(fmt: str = DEFAULT_FORMAT) -> str:
    """Rules and the edit format: the stable prefix of every edit prompt (edit and refactor alike)."""
    return f"{BASE_RULES}\n\n{FORMATS[fmt]}"


def edit_request(
    instruction: str,
    *,
    files: dict[str, str] | None = None,
    symbol: SymbolSites | None = None,
    refactor: bool = False,
) -> str:
    """The user turn asking for edits: the files in full, the symbol's sites, the job, the
    instruction. `gemma-code edit`/`refactor` and the chat's /edit and /refactor send this text."""
    parts = [fence(path, text) for path, text in (files or {}).items()]
    if symbol is not None:
        parts.append(symbol.render())
    job = REFACTOR_JOB if refactor else EDIT_JOB
    parts.append(f"{job} Reply with edits in the format described above.\n\n"
                 f"Instruction: {instruction.strip()}")
    return "\n".join(parts)


def edit_messages(
    instruction: str,
    *,
    files: dict[str, str],
    repo_context: str | None = None,
    symbol: SymbolSites | None = None,
    refactor: bool = False,
    fmt: str = DEFAULT_FORMAT,
) -> list[Message]:
    """System turn (rules, format, repository context), then the edit request."""
    system = system_prompt(fmt)
    if repo_context:
        system += "\n\n# Repository context\n\n" + repo_context
    user = edit_request(instruction, files=files, symbol=symbol, refactor=refactor)
    return [Message("system", system), Message("user", user)]


def generate(engine: Engine, messages: Sequence[Message], *, max_tokens: int, think: bool = False,
             temperature: float | None = None) -> tuple[str, GenerationStats | None]:
    """The model's whole reply text (thoughts dropped) and its stats.

    Edit replies mostly copy code from the prompt, so prompt-lookup speculative decoding is on.
    """
    check_fits(engine, messages, max_tokens=max_tokens, think=think)
    text, stats = "", None
    for chunk in engine.stream(messages, max_tokens=max_tokens, think=think,
                               temperature=temperature, speculative=True):
        if chunk.kind == "text":
            text += chunk.text
        elif chunk.stats is not None:
            stats = chunk.stats
    return text, stats


AskAgain = Callable[[str], str | None]
"""Sends a retry message to the model and returns its reply (None: the user cancelled)."""
OnRetry = Callable[[Sequence[Failure], Sequence[ParseProblem]], None]
"""Told what did not apply before each correction round (the chat shows it)."""


def edit_rounds(
    root: Path,
    reply: str,
    *,
    ask_again: AskAgain,
    retries: int = MAX_RETRIES,
    fmt: str = DEFAULT_FORMAT,
    on_retry: OnRetry | None = None,
) -> EditOutcome:
    """The one retry policy of edit, refactor and apply: parse `reply` and plan it; send what did
    not apply back through `ask_again` up to `retries` times.

    A failure stays open until a later round changes its file, so a round-1 failure cannot be
    dropped by a round-2 reply that fixes something else. A first reply with no edit blocks is
    asked again too. Nothing is written.
    """
    plan: Plan | None = None
    outcome = EditOutcome(Plan(Path(root)))
    pending: list[Failure] = []
    for attempt in range(retries + 1):
        edits, problems = parse_reply_lenient(reply)
        done_before = (len(plan.applied), len(plan.already_applied)) if plan else (0, 0)
        plan = plan_edits(root, edits, base=plan)
        # an earlier failure stays open until a later round changes that file
        touched = {e.path for e in plan.applied[done_before[0]:]}
        touched |= {e.path for e in plan.already_applied[done_before[1]:]}
        plan.failures += [f for f in pending if f.edit.path not in touched]
        pending = list(plan.failures)
        outcome.rounds.append(Round(reply, edits, problems, list(plan.failures)))
        outcome.plan = plan
        no_edits = not edits and not problems
        if not (plan.failures or problems or (no_edits and attempt == 0 and not plan.applied)):
            break
        if attempt == retries:
            break
        if on_retry is not None:
            on_retry(plan.failures, problems)
        again = ask_again(retry_message(plan.failures, problems, no_edits, fmt))
        if again is None:
            outcome.cancelled = True
            break
        reply = again
        plan.failures = []
    return outcome


def run_edit(
    engine: Engine,
    root: Path,
    messages: list[Message],
    *,
    max_tokens: int,
    think: bool = False,
    temperature: float | None = None,
    retries: int = MAX_RETRIES,
    fmt: str = DEFAULT_FORMAT,
) -> EditOutcome:
    """Ask the model for edits, one engine call per round (`gemma-code edit`/`refactor`)."""
    messages = list(messages)
    reply, stats = generate(engine, messages, max_tokens=max_tokens, think=think,
                            temperature=temperature)
    replies, round_stats = [reply], [stats]

    def ask(text: str) -> str:
        messages.extend([Message("model", replies[-1]), Message("user", text)])
        again, again_stats = generate(engine, messages, max_tokens=max_tokens, think=think,
                                      temperature=temperature)
        replies.append(again)
        round_stats.append(again_stats)
        return again

    outcome = edit_rounds(root, reply, ask_again=ask, retries=retries, fmt=fmt)
    for round_, used in zip(outcome.rounds, round_stats, strict=False):
        round_.stats = used
    outcome.messages = messages
    return outcome
