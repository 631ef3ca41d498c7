"""`review`: findings on a change, from grammar-constrained generation, split per file and cached."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_code.config import Settings
from gemma_code.engine.base import Engine, GenerationStats, Message
from gemma_code.errors import GemmaCodeError, GitError, ModelError, UsageError
from gemma_code.gitops import head_tree, index_contents, repo_root, staged_tree
from gemma_code.review import cache
from gemma_code.review.changes import (
    FileChange,
    file_changes,
    range_changes,
    skip_reason,
    staged_changes,
)
from gemma_code.review.deadline import alarm
from gemma_code.review.findings import SEVERITIES, Finding, parse_reply
from gemma_code.review.grammar import REVIEW_GRAMMAR
from gemma_code.review.plan import change_symbols, plan_requests
from gemma_code.tasks.prompting import BASE_RULES, prompt_tokens

SYSTEM_PROMPT = (
    BASE_RULES
    + " You review code changes before they are committed. Report only real problems in the "
    "added or changed lines: bugs, security holes, data loss, crashes, broken error handling, "
    "races, leaked secrets. Do not report style or naming. Severity: critical (exploitable, data "
    "loss, secret leaked), high (wrong result or crash in normal use), medium (edge-case bug), "
    "low (minor risk), info (worth a look). `line` is the number shown at the start of the line "
    "in the change. When you are sure of a fix, give `fix` with `search` copied exactly from the "
    "file's current lines and `replace` as the new lines; otherwise `fix` is null. Reply with "
    'JSON only: {"findings": [...]}; an empty list when the change is fine.'
)
REVIEW_TEMPERATURE = 0.2  # findings should not change from one run to the next
MAX_REQUEST_TOKENS = 8192  # diff tokens per model call
PROMPT_MARGIN = 64


class ReviewTimeoutError(ModelError):
    """The review did not finish within --timeout."""


@dataclass
class ReviewTarget:
    """What is reviewed: the parsed change and an id of its exact content (for the cache)."""

    mode: str  # staged | range | files
    spec: str
    root: Path | None
    changes: list[FileChange]
    identity: str


@dataclass
class ReviewResult:
    """Findings plus what was and was not reviewed."""

    findings: list[Finding] = field(default_factory=list)
    reviewed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    model: str = ""
    cached: bool = False
    complete: bool = True  # False when a reply was cut off or unreadable
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def to_record(self) -> dict[str, Any]:
        return {
            "findings": [f.to_dict() for f in self.findings], "reviewed": self.reviewed,
            "skipped": [list(s) for s in self.skipped], "notices": self.notices, "model": self.model,
            "complete": self.complete, "requests": self.requests,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ReviewResult:
        return cls(
            findings=[Finding.from_dict(f) for f in data["findings"]], reviewed=list(data["reviewed"]),
            skipped=[(str(p), str(r)) for p, r in data["skipped"]], notices=list(data["notices"]),
            model=str(data["model"]), complete=bool(data["complete"]), requests=int(data["requests"]),
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]), cached=True,
        )


def collect_target(
    *, range_spec: str | None = None, files: Sequence[Path] = (), cwd: Path | None = None
) -> ReviewTarget:
    """The staged change (default), a commit range, or named files."""
    here = (cwd or Path.cwd()).resolve()
    if range_spec and files:
        raise UsageError("give --range or FILES, not both", "e.g. gemma-code review --range main..HEAD")
    if files:
        changes = file_changes(list(files))
        digest = cache.cache_key({"files": [(c.path, c.added_text()) for c in changes]})
        # outside a repository named files still get reviewed
        return ReviewTarget("files", " ".join(str(f) for f in files), repo_root(here), changes,
                            digest)
    root = repo_root(here)
    if root is None:
        raise GitError(f"{here} is not inside a git repository",
                       "run this in a repository, or name FILES to review them as they are")
    if range_spec:
        changes, ids = range_changes(root, range_spec)
        return ReviewTarget("range", range_spec, root, changes, f"range:{ids}")
    changes = staged_changes(root)
    return ReviewTarget(
        "staged", "index", root, changes, f"staged:{head_tree(root)}:{staged_tree(root)}"
    )


def cache_material(target: ReviewTarget, settings: Settings, max_tokens: int) -> dict[str, Any]:
    """Everything that decides a review's findings, known before the model loads."""
    return {
        "target": target.identity, "engine": settings.engine, "model": settings.model,
        "script": settings.script, "max_tokens": max_tokens, "context": settings.context,
        "budget": settings.budget, "base_url": settings.base_url if settings.engine == "openai" else "",
    }


def repo_context(
    engine: Engine, target: ReviewTarget, paths: Sequence[str], budget: int, notices: list[str]
) -> str | None:
    """Code around the change from the context builder, steered by the changed files and symbols."""
    if target.root is None or budget <= 0:
        return None
    from gemma_code.context import build_context

    symbols = change_symbols(target.changes)
    question = "Review the change to " + ", ".join(paths)
    if symbols:
        question += " touching " + ", ".join(symbols[:40])
    try:
        # a staged review's diff is index against HEAD: show the staged files, not the work tree's
        staged = index_contents(target.root, paths) if target.mode == "staged" else None
        packed = build_context(
            target.root, question, budget=budget, count_tokens=engine.count_tokens,
            seeds=tuple(paths), tokenizer_id=engine.info.name, contents=staged,
        )
    except Exception as exc:  # a hook must still review the diff when the context builder fails
        notices.append(f"no repository context ({type(exc).__name__}: {exc}); reviewed the diff alone")
        return None
    text: str = packed.text
    return text or None


def review_messages(diff_text: str, context: str | None) -> list[Message]:
    """System turn (rules, then repository context: the stable prefix), then the change."""
    system = SYSTEM_PROMPT
    if context:
        system += "\n\n# Repository context\n\n" + context
    user = "Review this change. Numbers are line numbers in the new file.\n\n" + diff_text
    return [Message("system", system), Message("user", user)]


def _normalize(finding: Finding, paths: Sequence[str]) -> Finding:
    """Point a finding at a reviewed file when the model garbled the path."""
    if finding.file in paths or not paths:
        return finding
    by_name = [p for p in paths if Path(p).name == Path(finding.file).name]
    target = by_name[0] if len(by_name) == 1 else paths[0] if len(paths) == 1 else None
    if target is None:
        return finding
    return Finding(finding.severity, target, finding.line, finding.title, finding.explanation, finding.fix)


def checked_fixes(root: Path | None, findings: list[Finding], notices: list[str]) -> list[Finding]:
    """Keep a finding's fix only when `gemma-code apply` would accept it on the current files."""
    from gemma_code.edits.apply import plan_edits
    from gemma_code.edits.parse import parse_reply as parse_edits

    out: list[Finding] = []
    dropped = 0
    for finding in findings:
        block = finding.edit_block()
        if block is None or root is None:
            out.append(finding)
            continue
        ok = False
        if finding.fix is not None and finding.fix.search.strip():
            try:
                edits = parse_edits(block)
                plan = plan_edits(root, edits)
                ok = bool(edits) and not plan.failures and len(plan.applied) == len(edits)
            except GemmaCodeError:
                ok = False
        if not ok:
            dropped += 1
            finding = Finding(finding.severity, finding.file, finding.line, finding.title,
                              finding.explanation, None)
        out.append(finding)
    if dropped:
        notices.append(f"{dropped} suggested fix(es) dropped: they do not apply to the current files")
    return out


class Deadline:
    """A review's time budget, counted from `started` (a `clock()` reading: when the command
    began). `guard()` also interrupts long C calls (a model load, a prefill) on the real clock;
    the caller holds it around loading the engine and running the review."""

    def __init__(self, timeout: float | None, *, started: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self.start = clock() if started is None else started
        self.stage = "reading the change"  # what runs now, for the timeout message

    def too_late(self) -> ReviewTimeoutError:
        return ReviewTimeoutError(
            f"the review took longer than its {self.timeout:g} s time budget (while {self.stage})",
            "raise --timeout (or `review_timeout` in config), or use a faster model or machine",
        )

    def check(self, now: str = "generating") -> None:
        self.stage = now
        if self.timeout is not None and self.clock() - self.start > self.timeout:
            raise self.too_late()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Check now, then raise ReviewTimeoutError even inside a long C call, once time is up."""
        self.check("reading the change")
        self.stage = "loading the model"
        left = (self.timeout - (self.clock() - self.start)
                if self.timeout is not None and self.clock is time.monotonic else None)
        with alarm(left, self.too_late):
            yield


def cached_review(
    target: ReviewTarget,
    settings: Settings,
    *,
    max_tokens: int,
    use_cache: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> ReviewResult | None:
    """A result that needs no model: the cached review of the same content reviewed the same way,
    or the verdict on a change with nothing reviewable. None: the model must run (`run_review`)."""
    start = clock()
    if use_cache:
        record = cache.load(cache.cache_key(cache_material(target, settings, max_tokens)))
        if record is not None:
            try:
                result = ReviewResult.from_record(record)
            except (KeyError, TypeError, ValueError):
                result = None
            if result is not None:
                result.seconds = clock() - start
                return result
    if not any(skip_reason(c) is None for c in target.changes):
        result = ReviewResult(
            skipped=[(c.path, skip_reason(c) or "") for c in target.changes], model=settings.model
        )
        if not target.changes:
            result.notices.append("nothing to review: the change is empty")
        result.seconds = clock() - start
        return result
    return None


def run_review(
    engine: Engine,
    target: ReviewTarget,
    settings: Settings,
    *,
    max_tokens: int,
    deadline: Deadline | None = None,
    use_cache: bool = True,
) -> ReviewResult:
    """Review `target` with the caller's engine (opened and closed by the caller, under
    `deadline.guard()` when there is a time budget); the result is cached when `use_cache`.
    Ask `cached_review` first to skip loading a model.

    Raises ModelError (and ReviewTimeoutError) when the model cannot run or runs past the
    deadline.
    """
    deadline = deadline or Deadline(None)
    result = _reviewed(engine, target, settings, max_tokens, deadline.check)
    if use_cache:  # a cut-off reply is cached too: a re-run would cut off the same way
        problem = cache.save(cache.cache_key(cache_material(target, settings, max_tokens)),
                             result.to_record())
        if problem:
            result.notices.append(problem)
    result.seconds = deadline.clock() - deadline.start
    return result


def _reviewed(engine: Engine, target: ReviewTarget, settings: Settings, max_tokens: int,
              check_deadline: Callable[[str], None]) -> ReviewResult:
    """The model's part of a review: plan the requests, add context, generate, collect findings."""
    check_deadline("loading the model")
    result = ReviewResult(model=engine.info.name)
    probe = review_messages("", None)
    overhead = prompt_tokens(engine, probe, think=False) + PROMPT_MARGIN
    room = engine.info.n_ctx - max_tokens - overhead
    if room < 256:
        raise ModelError(
            f"the {engine.info.n_ctx:,}-token context leaves no room for a diff after "
            f"{max_tokens:,} reply tokens",
            "lower --max-tokens or raise --n-ctx",
        )
    context_budget = min(settings.budget, room // 3) if settings.context else 0
    per_request = min(MAX_REQUEST_TOKENS, room - context_budget)
    requests, result.reviewed, result.skipped, result.notices = plan_requests(
        target.changes, engine.count_tokens, per_request=per_request,
        check=lambda: check_deadline("splitting the diff"),
    )
    check_deadline("splitting the diff")
    context = repo_context(engine, target, result.reviewed, context_budget, result.notices)
    check_deadline("packing the repository context")
    seen: set[tuple[str, int, str]] = set()
    for paths, text in requests:
        check_deadline("generating")
        reply, stats = _generate(engine, review_messages(text, context), max_tokens, check_deadline)
        result.requests += 1
        if stats is not None:
            result.prompt_tokens += stats.prompt_tokens
            result.completion_tokens += stats.completion_tokens
        parsed = parse_reply(reply)
        cut = parsed.truncated or (stats is not None and stats.stop_reason == "length")
        if cut or parsed.problems:
            result.complete = False
            what = "was cut off at --max-tokens" if cut else "did not match the findings schema"
            result.notices.append(
                f"the reply for {', '.join(paths)} {what}; kept {len(parsed.findings)} "
                "complete finding(s)"
            )
        for finding in parsed.findings:
            finding = _normalize(finding, paths)
            ident = (finding.file, finding.line, finding.title)
            if ident not in seen:
                seen.add(ident)
                result.findings.append(finding)
    result.findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.file, f.line))
    fix_root = target.root if target.mode != "files" else Path.cwd()
    result.findings = checked_fixes(fix_root, result.findings, result.notices)
    return result


def _generate(
    engine: Engine, messages: list[Message], max_tokens: int, check_deadline: Callable[[str], None]
) -> tuple[str, GenerationStats | None]:
    """One grammar-constrained generation; checks the time budget between chunks."""
    text = ""
    stats = None
    chunks = engine.stream(
        messages, max_tokens=max_tokens, think=False, grammar=REVIEW_GRAMMAR,
        temperature=REVIEW_TEMPERATURE,
    )
    try:
        for chunk in chunks:
            if chunk.kind == "text":
                text += chunk.text
            elif chunk.stats is not None:
                stats = chunk.stats
            check_deadline("generating")
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
    return text, stats
