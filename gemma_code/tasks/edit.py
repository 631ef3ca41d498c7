"""`edit` and `refactor`: instruction + context to the model, reply parsed and planned, retried.

Nothing is written here: the caller previews `EditOutcome.plan.changes()` and writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.edits.apply import Plan, plan_edits
from gemma_code.edits.model import Edit, Failure, FileChange
from gemma_code.edits.parse import ParseProblem, parse_reply_lenient
from gemma_code.engine.base import Engine, GenerationStats, Message
from gemma_code.errors import GitError, UsageError
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


def system_prompt(fmt: str = DEFAULT_FORMAT, *, refactor: bool = False) -> str:
    """Rules, the job, and the edit format: the stable prefix of every edit prompt."""
    job = ("Refactor the user's code as asked: change the definition and every reference "
           "consistently, and nothing else." if refactor else
           "Change the user's code as the instruction asks, and nothing else.")
    return f"{BASE_RULES} {job}\n\n{FORMATS[fmt]}"


def edit_messages(
    instruction: str,
    *,
    files: dict[str, str],
    repo_context: str | None = None,
    symbol: SymbolSites | None = None,
    refactor: bool = False,
    fmt: str = DEFAULT_FORMAT,
) -> list[Message]:
    """System turn (rules, format, repository context), then the files and the instruction."""
    system = system_prompt(fmt, refactor=refactor)
    if repo_context:
        system += "\n\n# Repository context\n\n" + repo_context
    parts = [fence(path, text) for path, text in files.items()]
    if symbol is not None:
        parts.append(symbol.render())
    parts.append("Instruction: " + instruction.strip())
    return [Message("system", system), Message("user", "\n".join(parts))]


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
    """Ask, parse, plan; send failures back for corrected edits up to `retries` times."""
    messages = list(messages)
    plan: Plan | None = None
    outcome = EditOutcome(Plan(Path(root)))
    pending: list[Failure] = []
    for attempt in range(retries + 1):
        reply, stats = generate(engine, messages, max_tokens=max_tokens, think=think,
                                temperature=temperature)
        edits, problems = parse_reply_lenient(reply)
        done_before = (len(plan.applied), len(plan.already_applied)) if plan else (0, 0)
        plan = plan_edits(root, edits, base=plan)
        # an earlier failure stays open until a later round changes that file
        touched = {e.path for e in plan.applied[done_before[0]:]}
        touched |= {e.path for e in plan.already_applied[done_before[1]:]}
        plan.failures += [f for f in pending if f.edit.path not in touched]
        pending = list(plan.failures)
        outcome.rounds.append(Round(reply, edits, problems, list(plan.failures), stats))
        outcome.plan = plan
        no_edits = not edits and not problems
        if not (plan.failures or problems or (no_edits and attempt == 0 and not plan.applied)):
            break
        if attempt == retries:
            break
        messages += [Message("model", reply),
                     Message("user", retry_message(plan.failures, problems, no_edits, fmt))]
        plan = _without_failures(plan)
    outcome.messages = messages
    return outcome


def _without_failures(plan: Plan) -> Plan:
    plan.failures = []
    return plan


def commit_message(instruction: str, changes: Sequence[FileChange], *, refactor: bool = False) -> str:
    """A commit message from the instruction and the files changed."""
    first = " ".join(instruction.split())
    if len(first) > 64:
        first = first[:61].rstrip() + "..."
    verb = "refactor" if refactor else "edit"
    lines = [f"gemma-code {verb}: {first}", ""]
    lines += [f"- {c.action} {c.path}" for c in changes]
    return "\n".join(lines) + "\n"


@dataclass
class Written:
    """A change set on disk: its journal entry, and how earlier uncommitted work was kept."""

    changes: list[FileChange]
    journal_id: str | None
    dirty: list[str] = field(default_factory=list)
    stash: str | None = None
    commit: str | None = None
    commit_error: GitError | None = None


def check_commit(root: Path, paths: Sequence[str]) -> None:
    """Refuse `--commit` before anything is written: outside git (GitError), or when a touched file
    holds uncommitted work that the commit would sweep in with the edit (UsageError)."""
    from gemma_code import gitops

    if gitops.repo_root(root) is None:
        raise GitError(f"{root} is not inside a git repository; nothing was written",
                       "--commit needs a git repository: run `git init`, or drop --commit")
    pending = gitops.uncommitted_paths(root, paths)
    if pending:
        raise UsageError(f"--commit would also commit your uncommitted changes in "
                         f"{', '.join(pending)}; nothing was written",
                         "commit or stash them first, or drop --commit")


def write_with_safety(root: Path, changes: Sequence[FileChange], *, label: str = "edit",
                      extra: dict[str, str] | None = None,
                      commit: str | None = None) -> Written:
    """Write `changes` journaled; uncommitted edits in those files also go into a `git stash create`
    object first; with `commit` (a message), commit exactly those files (checked before writing;
    a commit that then fails is kept in `commit_error`, the files stay written)."""
    from gemma_code import gitops
    from gemma_code.edits.writer import write_changes

    if commit is not None:
        check_commit(root, [c.path for c in changes])
    meta = dict(extra or {})
    dirty = gitops.dirty_paths(root, [c.path for c in changes if c.old is not None])
    stash = gitops.stash_create(root) if dirty else None
    if stash:
        meta["stash"] = stash
    entry = write_changes(root, changes, label=label, extra=meta)
    done = Written(list(changes), entry, dirty, stash)
    if commit is not None:
        try:
            done.commit = gitops.commit_paths(root, [c.path for c in changes], commit)
        except GitError as exc:  # the files are written: say so, and how to revert them
            done.commit_error = exc
            # check_commit saw these paths equal to HEAD: the index goes back to that
            gitops.unstage(root, [c.path for c in changes])
    return done
