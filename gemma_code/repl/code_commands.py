"""Slash commands that touch code: /context /edit /refactor /explain /apply /diff /undo /commit /review.

They parse the line, confirm with the user and render; the flows are the task functions that
`gemma-code edit`, `refactor`, `apply`, `explain` and `review` run too (gemma_code/tasks/).
"""

from __future__ import annotations

import difflib
import glob
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gemma_code.errors import UsageError

if TYPE_CHECKING:
    from gemma_code.edits import FileChange
    from gemma_code.edits.model import Failure
    from gemma_code.edits.parse import ParseProblem
    from gemma_code.repl.loop import Repl
    from gemma_code.tasks.edit import EditOutcome


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
        from gemma_code.tasks.edit import edit_request

        if not args:
            raise UsageError("/edit needs an instruction", "/edit rename add() to add_numbers()")
        self.repl.last_instruction = args
        self._edit(edit_request(args), mode="edit", typed=f"/edit {args}")

    def cmd_refactor(self, args: str) -> None:
        """Like /edit, but the symbol's definition and every call site change together.
        /refactor rename add to add_numbers
        """
        from gemma_code.tasks.edit import edit_request
        from gemma_code.tasks.edit_files import gather_files

        if not args:
            raise UsageError("/refactor needs an instruction", "/refactor rename add to add_numbers")
        repl = self.repl
        files, sites = gather_files(repl.root, [], refactor=True, instruction=args)
        repl.watch.remember(files)
        repl.last_instruction = args
        self._edit(edit_request(args, files=files, symbol=sites, refactor=True), mode="refactor",
                   typed=f"/refactor {args}")

    def _edit(self, request: str, *, mode: str, typed: str) -> None:
        """One conversation turn asking for edits, then the edit task's retry rounds (each a turn)."""
        from gemma_code.tasks.edit import MAX_RETRIES, edit_rounds

        repl = self.repl
        reply = repl.turn(request, mode=mode, typed=typed)
        if reply is None:
            return
        retry = "(automatic retry: the edits that did not apply)"
        outcome = edit_rounds(repl.root, reply, retries=MAX_RETRIES, on_retry=self._show_failures,
                              ask_again=lambda text: repl.turn(text, mode="retry", typed=retry))
        self._finish(outcome)

    def cmd_apply(self, args: str) -> None:
        """Apply the edits in the model's last answer (or in a saved reply file).
        /apply
        /apply reply.md
        """
        from gemma_code.tasks.apply import plan_reply

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
        self._finish(plan_reply(repl.root, text))

    def _show_failures(self, failures: Sequence[Failure], problems: Sequence[ParseProblem]) -> None:
        for failure in failures:
            self.repl.console.print(failure.explain(), markup=False, highlight=False)
        for problem in problems:
            self.repl.console.print(problem.explain(), markup=False, highlight=False)

    def _finish(self, outcome: EditOutcome) -> None:
        """Refuse when an edit still fails (nothing written); else preview, confirm, write."""
        repl = self.repl
        if outcome.cancelled:
            return
        plan = outcome.plan
        if outcome.failures or outcome.problems:
            if len(outcome.rounds) > 1:
                repl.notice("some edits still do not apply after the model's corrections")
            self._show_failures(outcome.failures, outcome.problems)
            repl.error(f"{len(outcome.failures) + len(outcome.problems)} edit(s) could not be "
                       "applied; nothing was written", "ask the model to fix them, or edit by hand")
            return
        if not plan.applied and not plan.already_applied:
            repl.notice("the answer holds no edit blocks; nothing to apply")
            return
        self._confirm_and_write(outcome.changes(), plan.notes)

    def _confirm_and_write(self, changes: list[FileChange], notes: list[str]) -> None:
        from gemma_code.tasks.apply import write_with_safety

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
        from gemma_code.edits import undo_last

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
        from gemma_code.tasks.apply import commit_files, commit_message, paths_to_commit

        repl = self.repl
        paths = paths_to_commit(repl.root, repl.applied)
        if not paths:
            repl.notice("nothing to commit")
            return
        message = args or commit_message(repl.last_instruction or "changes from the chat", paths,
                                         verb="chat")
        subject = message.splitlines()[0]
        if not repl.confirm(f"commit {', '.join(paths)} as {subject!r}?"):
            repl.notice("not committed")
            return
        sha = commit_files(repl.root, paths, message)
        repl.applied.clear()
        repl.notice(f"committed {sha[:10]}")

    def cmd_review(self, args: str) -> None:
        """Review the staged change, a commit range, or named files; findings are printed.
        /review
        /review --range main..HEAD
        /review src/app.py
        """
        from gemma_code.review.report import Report
        from gemma_code.tasks.review import cached_review, collect_target, run_review

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
        result = cached_review(target, settings, max_tokens=settings.max_tokens)
        if result is None:  # the chat's engine, still the chat's to close
            result = run_review(repl.engine, target, settings, max_tokens=settings.max_tokens)
            repl.cache = None  # the review replaced the engine's KV cache; restore the chat's prefix
        report = Report(mode=target.mode, spec=target.spec, fail_on=settings.fail_on)
        report.take(result)
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
        from gemma_code.tasks.explain import explain_request

        repl = self.repl
        messages = explain_request(repl.root, args, cwd=repl.cwd)
        # the explain task's user turn (code, callers, callees, request) joins the conversation
        repl.turn(messages[-1].content, mode="explain")
