"""Slash commands that touch code: /context /edit /refactor /explain /apply /diff /undo /commit /review.

They lean on the other areas (context builder, edits, review, explain); when one is not
installed the command says so instead of pretending.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code.errors import GemmaCodeError, UsageError

if TYPE_CHECKING:
    from gemma_code.edits import ApplyResult, Edit
    from gemma_code.repl.loop import Repl

EDIT_PREFIX = (
    "Make this change to the code. Reply with a short plan, then every change as SEARCH/REPLACE "
    "blocks: the file path on its own line, then\n<<<<<<< SEARCH\n(exact current lines)\n=======\n"
    "(new lines)\n>>>>>>> REPLACE\nCopy the SEARCH lines exactly from the file, enough to be "
    "unique. To create a file, leave SEARCH empty.\n\nChange: "
)
REFACTOR_PREFIX = (
    "Refactor as described, updating every definition and every call site in the files you "
    "were shown, and nothing else. "
)
RETRIES = 1  # failed edits go back to the model this many times


class Unavailable(GemmaCodeError):
    """A command whose supporting module is not installed in this build."""


class BorrowedEngine:
    """Lends the chat's engine to a task that closes its engine when done."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.info = engine.info

    def count_tokens(self, text: str) -> int:
        return int(self._engine.count_tokens(text))

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._engine.stream(*args, **kwargs)

    def close(self) -> None:
        """The chat keeps using the engine: closing is the chat's job."""


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """A unified diff of one file change, for the preview."""
    a = (old or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    b = (new or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, f"a/{path}" if old is not None else "/dev/null",
                                 f"b/{path}" if new is not None else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class CodeCommands:
    """Mixin of Commands: the commands that read or change the repository."""

    repl: Repl

    def _print_diff(self, text: str) -> None:
        from rich.syntax import Syntax

        if self.repl.console.is_terminal:
            self.repl.console.print(Syntax(text, "diff", theme="ansi_dark", background_color="default"))
        else:
            self.repl.console.print(text.rstrip("\n"), markup=False, highlight=False)

    # ----- context ----------------------------------------------------------------------------
    def cmd_context(self, args: str) -> None:
        """Show what the repository context holds; with a question, what would be packed for it.
        /context
        /context where are uploads retried?
        """
        from gemma_code.repl.repo import pack_repository

        repl = self.repl
        view = repl.packed
        if args:
            budget = min(repl.settings.budget, repl.engine.info.n_ctx // 2)
            view = pack_repository(repl.root, args, budget=budget, count_tokens=repl.engine.count_tokens,
                                   named=[repl.root / p for p in repl.added])
        for note in view.notes:
            repl.notice(note)
        if not view.files:
            if not view.notes:
                repl.notice("the repository context is empty")
            return
        for path, tokens, mode in view.files:
            repl.console.print(f"  {tokens:>7,}  {mode:<8} {path}", markup=False)
        repl.console.print(f"  {view.used:>7,}  of a {view.budget:,}-token budget"
                           + ("" if args else " (in the system turn)"), markup=False)

    # ----- edits ------------------------------------------------------------------------------
    def cmd_edit(self, args: str) -> None:
        """Ask for a change as edits, preview the diff, and apply it when you agree.
        /edit add a --verbose flag to the CLI
        """
        if not args:
            raise UsageError("/edit needs an instruction", "/edit rename add() to add_numbers()")
        self.repl.last_instruction = args
        reply = self.repl.turn(EDIT_PREFIX + args, mode="edit")
        if reply is not None:
            self._apply_reply(reply, retries=RETRIES)

    def cmd_refactor(self, args: str) -> None:
        """Like /edit, but every definition and call site must change together.
        /refactor rename util.add to add_numbers
        """
        if not args:
            raise UsageError("/refactor needs an instruction", "/refactor rename add to add_numbers")
        self.repl.last_instruction = args
        text = REFACTOR_PREFIX + self._symbol_sites(args) + EDIT_PREFIX + args
        reply = self.repl.turn(text, mode="refactor")
        if reply is not None:
            self._apply_reply(reply, retries=RETRIES)

    def _symbol_sites(self, instruction: str) -> str:
        """Where the names in the instruction are defined and used, when the tag index is there."""
        try:
            from gemma_code.context.tags import find_definitions, find_references
        except ImportError:
            return ""
        words = {w.strip("`'\"().,:") for w in instruction.split()}
        lines: list[str] = []
        for name in sorted(w for w in words if w.isidentifier() and len(w) > 2):
            for tag in list(find_definitions(self.repl.root, name))[:20]:
                lines.append(f"{name} defined at {_where(tag)}")
            for tag in list(find_references(self.repl.root, name))[:50]:
                lines.append(f"{name} used at {_where(tag)}")
        return ("Known sites:\n" + "\n".join(lines) + "\n\n") if lines else ""

    def cmd_apply(self, args: str) -> None:
        """Apply the edits in the model's last answer (or in a saved reply file).
        /apply
        /apply reply.md
        """
        repl = self.repl
        if args:
            path = Path(args).expanduser()
            try:
                text = (path if path.is_absolute() else repl.cwd / path).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot read {args}: {exc.strerror}") from None
        elif repl.last_reply is None:
            raise UsageError("no answer to apply yet", "ask for a change first, or /edit INSTRUCTION")
        else:
            text = repl.last_reply
        self._apply_reply(text, retries=0)

    def _apply_reply(self, reply: str, *, retries: int) -> None:
        """Parse, check, preview, confirm, apply; failures go back to the model `retries` times."""
        try:
            from gemma_code.edits import EditsFailedError, apply_edits, parse_reply
        except ImportError:
            raise Unavailable("editing is not available: gemma_code.edits is not installed") from None
        repl = self.repl
        edits = parse_reply(reply)
        try:
            checked = apply_edits(repl.root, edits, check=True)
        except EditsFailedError as exc:
            repl.error(exc.message)
            repl.console.print(exc.details(), markup=False, highlight=False)
            if retries > 0 and repl.confirm("send the failures back to the model to fix?"):
                again = repl.turn("Some edits could not be applied; nothing was written:\n"
                                  + exc.details() + "\nSend corrected SEARCH/REPLACE blocks for all "
                                  "of the change.", mode="retry")
                if again is not None:
                    self._apply_reply(again, retries=retries - 1)
            return
        self._confirm_and_write(edits, checked)

    def _confirm_and_write(self, edits: list[Edit], checked: ApplyResult) -> None:
        from gemma_code.edits import apply_edits

        repl = self.repl
        if not checked.changes:
            repl.notice("nothing to change: the edits are already in place")
            return
        for change in checked.changes:
            self._print_diff(unified_diff(change.path, change.old, change.new))
        for note in checked.notes:
            repl.notice(note)
        if not repl.confirm(f"apply to {len(checked.changes)} file(s)?"):
            repl.notice("not applied")
            return
        done = apply_edits(repl.root, edits)
        repl.applied.extend(p for p in done.paths if p not in repl.applied)
        repl.notice(f"applied to {', '.join(done.paths)} (/undo reverts, /commit commits)")

    def cmd_undo(self, args: str) -> None:
        """Undo the last change set applied by /apply or /edit (or by `gemma-code apply`).
        /undo
        """
        try:
            from gemma_code.edits import undo_last
        except ImportError:
            raise Unavailable("undo is not available: gemma_code.edits is not installed") from None
        result = undo_last(self.repl.root)
        what = result.restored + [f"{p} (removed)" for p in result.removed]
        self.repl.notice("undone: " + ", ".join(what))

    def cmd_diff(self, args: str) -> None:
        """Show the uncommitted changes in the repository (`git diff HEAD`).
        /diff
        /diff src/app.py
        """
        from gemma_code.review.changes import git

        text = git(self.repl.root, "diff", "--no-color", "HEAD", "--", *args.split())
        if not text.strip():
            self.repl.notice("no uncommitted changes")
            return
        self._print_diff(text)

    def cmd_commit(self, args: str) -> None:
        """Commit the files changed in this chat (or all changed tracked files).
        /commit
        /commit fix the off-by-one in pagination
        """
        from gemma_code import gitops

        repl = self.repl
        if gitops.repo_root(repl.root) is None:
            raise UsageError("not a git repository", "/commit needs git; run `git init` first")
        paths = gitops.dirty_paths(repl.root, repl.applied) if repl.applied else []
        if not paths:
            paths = gitops.dirty_paths(repl.root, gitops.tracked_files(repl.root))
        if not paths:
            repl.notice("nothing to commit")
            return
        message = args or f"gemma-code: {repl.last_instruction or 'changes from the chat'}"
        if not repl.confirm(f"commit {', '.join(paths)} as {message!r}?"):
            repl.notice("not committed")
            return
        sha = gitops.commit_paths(repl.root, paths, message)
        repl.applied.clear()
        repl.notice(f"committed {sha[:10]}")

    def cmd_review(self, args: str) -> None:
        """Review the staged change, a commit range, or named files; findings are printed.
        /review
        /review --range main..HEAD
        /review src/app.py
        """
        try:
            from gemma_code.review.report import Report
            from gemma_code.tasks.review import collect_target, run_review
        except ImportError:
            raise Unavailable("review is not available: gemma_code.tasks.review is not installed") from None
        repl = self.repl
        words = args.split()
        range_spec = None
        if words[:1] == ["--range"]:
            if len(words) < 2:
                raise UsageError("--range needs A..B", "/review --range main..HEAD")
            range_spec, words = words[1], words[2:]
        files = [repl.cwd / w for w in words]
        target = collect_target(range_spec=range_spec, files=files, cwd=repl.root)
        settings = repl.settings
        result = run_review(target, settings, max_tokens=settings.max_tokens,
                            load=lambda _s: BorrowedEngine(repl.engine))  # type: ignore[arg-type,return-value]
        report = Report(
            mode=target.mode, spec=target.spec, fail_on=settings.fail_on, findings=result.findings,
            reviewed=result.reviewed, skipped=result.skipped, notices=result.notices,
            model=result.model, cached=result.cached, complete=result.complete,
        )
        report.stats.update(requests=result.requests, prompt_tokens=result.prompt_tokens,
                            completion_tokens=result.completion_tokens, seconds=result.seconds)
        report.print_table(repl.console)
        repl.notice("the review ran outside the conversation; it is not part of the chat history")

    # ----- explain ----------------------------------------------------------------------------
    def cmd_explain(self, args: str) -> None:
        """Explain a file, a line range or a symbol.
        /explain src/app.py
        /explain src/app.py:10-40
        /explain src/app.py::main
        """
        if not args:
            raise UsageError("/explain needs a target", "/explain src/app.py::main")
        try:
            from gemma_code.tasks import explain
        except ImportError:
            raise Unavailable(
                "/explain is not available: gemma_code.tasks.explain is not installed",
                "ask in plain words instead, after /add FILE",
            ) from None
        text = explain_request(explain, self.repl.root, self.repl.cwd, args.strip())
        self.repl.turn(text, mode="explain")


def _where(tag: Any) -> str:
    path = getattr(tag, "path", "?")
    line = getattr(tag, "line", None) or getattr(tag, "start_line", None)
    return f"{path}:{line}" if line else str(path)


def explain_request(module: Any, root: Path, cwd: Path, target: str) -> str:
    """The user turn for /explain, built by the explain task from PATH[:L1-L2|::SYMBOL]."""
    builder = getattr(module, "explain_request", None)
    if builder is None:
        raise Unavailable("/explain is not available: the explain task offers no explain_request()")
    return str(builder(root, cwd, target))
