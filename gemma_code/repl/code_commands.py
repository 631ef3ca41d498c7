"""Slash commands that touch code: /context /edit /refactor /explain /apply /diff /undo /commit /review.

They lean on the other areas (context builder, edits, review, explain); when one is not
installed the command says so instead of pretending.
"""

from __future__ import annotations

import difflib
import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code.errors import GemmaCodeError, UsageError

if TYPE_CHECKING:
    from gemma_code.edits import FileChange
    from gemma_code.repl.loop import Repl

EDIT_ASK = "Make this change, as edit blocks in the format described above.\n\nInstruction: "
REFACTOR_ASK = (
    "Refactor as described: change the definition and every reference consistently, and nothing "
    "else. Reply with edit blocks in the format described above.\n\nInstruction: "
)


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

    def _expand(self, args: str) -> list[str]:
        """Paths (globs allowed, relative to the current folder) as repo-relative paths."""
        root = self.repl.root
        found: list[str] = []
        for word in args.split():
            path = Path(word).expanduser()
            path = path if path.is_absolute() else self.repl.cwd / path
            matches = sorted(glob.glob(str(path), recursive=True)) if glob.has_magic(word) else [str(path)]
            if not matches:
                raise UsageError(f"no file matches {word}")
            for match in matches:
                resolved = Path(match).resolve()
                try:
                    found.append(str(resolved.relative_to(root.resolve())))
                except ValueError:
                    raise UsageError(f"{word} is outside the repository {root}",
                                     "add files from this repository only") from None
        return found

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
            view = pack_repository(repl.root, args, budget=budget, engine=repl.engine, named=repl.added,
                                   max_file_bytes=repl.settings.max_file_bytes)
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
        reply = self.repl.turn(EDIT_ASK + args, mode="edit", typed=f"/edit {args}")
        if reply is not None:
            self._apply_reply(reply, retries=_max_retries())

    def cmd_refactor(self, args: str) -> None:
        """Like /edit, but the symbol's definition and every call site change together.
        /refactor rename add to add_numbers
        """
        if not args:
            raise UsageError("/refactor needs an instruction", "/refactor rename add to add_numbers")
        try:
            from gemma_code.tasks.edit_files import gather_files
        except ImportError:
            raise Unavailable("/refactor is not available: gemma_code.tasks.edit is not installed") from None
        from gemma_code.tasks.prompting import fence

        repl = self.repl
        files, sites = gather_files(repl.root, [], refactor=True, instruction=args)
        parts = [fence(path, text) for path, text in files.items()]
        if sites is not None:
            parts.append(sites.render())
        repl.watch.remember(files)
        repl.last_instruction = args
        reply = repl.turn("\n".join([*parts, REFACTOR_ASK + args]), mode="refactor",
                          typed=f"/refactor {args}")
        if reply is not None:
            self._apply_reply(reply, retries=_max_retries())

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
        """Parse and plan; failures go back to the model `retries` times; then preview and confirm."""
        try:
            from gemma_code.edits import parse_reply_lenient, plan_edits
            from gemma_code.tasks.edit_prompts import retry_message
        except ImportError:
            raise Unavailable("editing is not available: gemma_code.edits is not installed") from None
        repl = self.repl
        plan = None
        for attempt in range(retries + 1):
            edits, problems = parse_reply_lenient(reply)
            plan = plan_edits(repl.root, edits, base=plan)
            no_edits = not edits and not problems
            if no_edits and not plan.applied:
                repl.notice("the answer holds no edit blocks; nothing to apply")
                return
            if not (plan.failures or problems):
                break
            for failure in plan.failures:
                repl.console.print(failure.explain(), markup=False, highlight=False)
            for problem in problems:
                repl.console.print(problem.explain(), markup=False, highlight=False)
            if attempt == retries:
                repl.error(f"{len(plan.failures) + len(problems)} edit(s) could not be applied; "
                           "nothing was written", "ask the model to fix them, or edit by hand")
                return
            repl.notice("some edits did not apply; sending the reasons back to the model")
            again = repl.turn(retry_message(plan.failures, problems, no_edits), mode="retry",
                              typed="(automatic retry: the edits that did not apply)")
            if again is None:
                return
            reply = again
            plan.failures = []
        assert plan is not None
        self._confirm_and_write(plan.changes(), plan.notes)

    def _confirm_and_write(self, changes: list[FileChange], notes: list[str]) -> None:
        from gemma_code.tasks.edit import write_with_safety

        repl = self.repl
        if not changes:
            repl.notice("nothing to change: the edits are already in place")
            return
        for change in changes:
            self._print_diff(unified_diff(change.path, change.old, change.new))
        for note in notes:
            repl.notice(note)
        if not repl.confirm(f"apply to {len(changes)} file(s)?"):
            repl.notice("not applied")
            return
        done = write_with_safety(repl.root, changes, label="chat")
        paths = [c.path for c in done.changes]
        repl.applied.extend(p for p in paths if p not in repl.applied)
        repl.watch.remember(paths)  # the model wrote these: no need to send them back
        kept = f"; your earlier uncommitted work is in stash {done.stash[:10]}" if done.stash else ""
        repl.notice(f"applied to {', '.join(paths)} (/undo reverts, /commit commits){kept}")

    def cmd_undo(self, args: str) -> None:
        """Undo the last change set: an agent step, /apply or /edit (or `gemma-code apply`).
        /undo
        /undo run
        """
        restored = self.repl.agent.undo(whole_run=args.strip() == "run")
        if restored is not None:
            self.repl.notice("undone: " + (", ".join(restored) or "nothing"))
            return
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
        from gemma_code.gitops import uncommitted_diff

        text = uncommitted_diff(self.repl.root, args.split())
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
        message = args or f"gemma-code chat: {repl.last_instruction or 'changes from the chat'}"
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
                            load=lambda _s: BorrowedEngine(repl.engine))
        report = Report(mode=target.mode, spec=target.spec, fail_on=settings.fail_on)
        report.take(result)
        report.print_table(repl.console)
        repl.cache = None  # the review replaced the engine's KV cache; restore the chat's prefix
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
            from gemma_code.tasks.explain import explain_messages, load_snippet, parse_target
        except ImportError:
            raise Unavailable(
                "/explain is not available: gemma_code.tasks.explain is not installed",
                "ask in plain words instead, after /add FILE",
            ) from None
        repl = self.repl
        target = parse_target(args.strip())
        rel = self._expand(target.path)[0]
        target = type(target)(rel, target.start, target.end, target.symbol)
        snippet = load_snippet(repl.root, target)
        # the explain task's user turn (code, callers, callees, request) joins the conversation
        repl.turn(explain_messages(snippet)[-1].content, mode="explain", typed=f"/explain {args}")



def _max_retries() -> int:
    try:
        from gemma_code.tasks.edit import MAX_RETRIES
    except ImportError:
        return 0
    return MAX_RETRIES
