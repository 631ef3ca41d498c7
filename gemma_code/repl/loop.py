"""The interactive chat: a prompt_toolkit prompt, slash commands, streamed turns, Ctrl-C, sessions."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code import paths
from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, Engine, GenerationStats, Message
from gemma_code.errors import GemmaCodeError, PromptTooLongError
from gemma_code.gitops import repo_root
from gemma_code.repl.conversation import Conversation, fit_to_window, partial_reply
from gemma_code.repl.repo import FileWatch, PackedView
from gemma_code.repl.store import SessionFile, SessionInfo, new_session_id
from gemma_code.repl.warm import Warmer

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output
    from rich.console import Console

    from gemma_code.engine.prompt_cache import PrefixCache
    from gemma_code.repl.commands import Commands

WARN_FILL = 0.85  # tell the user before the oldest turns have to go


@dataclass
class ReplIO:
    """The terminal seam: tests pass a pipe input, a DummyOutput and a console on a StringIO."""

    console: Console
    input: Input | None = None
    output: Output | None = None
    history_file: Path | None = None


class Repl:
    """One chat session: the engine, the conversation, the repository view and the session file."""

    def __init__(
        self,
        settings: Settings,
        io: ReplIO,
        *,
        cwd: Path,
        engine_loader: Callable[[Settings], Engine],
        resume: SessionInfo | None = None,
    ) -> None:
        self.settings = settings
        self.io = io
        self.console = io.console
        self.cwd = cwd
        found = repo_root(cwd)
        self.root, self.in_repo = (found, True) if found is not None else (cwd, False)
        self._load_engine = engine_loader
        with self.console.status(f"loading {settings.model} …"):
            self.engine: Engine = engine_loader(settings)
        self.conv = Conversation()
        self.watch = FileWatch(self.root)
        self.added: list[str] = []
        self.packed = PackedView()
        self.last_reply: str | None = None
        self.last_instruction: str | None = None
        self.applied: list[str] = []  # files changed by /apply, for /commit
        self.last_tok_s = 0.0
        self.context_used = 0
        self.running = True
        self.cache: PrefixCache | None = None
        self.warmer = Warmer()
        self._files: list[str] | None = None
        self._symbols: list[str] | None = None
        self.resumed_missing: list[str] = []  # images of the resumed chat that could not be read
        if resume is not None:
            self.session = SessionFile(resume.id, cwd=cwd, model=self.engine.info.name)
            self.conv.history = list(resume.messages)
            self.resumed_missing = list(resume.missing_images)
            self.conv.typed = dict(resume.typed)
        else:
            self.session = SessionFile(new_session_id(), cwd=cwd, model=self.engine.info.name)
        from gemma_code.repl.commands import Commands

        self.commands: Commands = Commands(self)
        from gemma_code.repl.agent_mode import AgentChat

        self.agent = AgentChat(self)  # /mode: messages run the agent loop instead
        self._prompt: PromptSession[str] | None = None
        with self.console.status("packing the repository context …"):
            self.build_context()

    # ----- output helpers -------------------------------------------------------------------
    def notice(self, text: str) -> None:
        from rich.markup import escape

        # not the input prompt's "›": a notice must not look like something the user typed
        self.console.print(f"[dim yellow]·[/] [yellow]{escape(text)}[/]")

    def error(self, message: str, hint: str | None = None) -> None:
        from rich.markup import escape

        self.console.print(f"[bold red]error:[/] {escape(message)}")
        if hint:
            self.console.print(f"[yellow]hint:[/] {escape(hint)}")

    # ----- prompt ---------------------------------------------------------------------------
    def prompt_session(self) -> PromptSession[str]:
        if self._prompt is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory, InMemoryHistory

            from gemma_code.repl.completion import ReplCompleter
            from gemma_code.repl.keys import chat_key_bindings

            history_file = self.io.history_file or paths.data_dir() / "chat_history"
            history_file.parent.mkdir(parents=True, exist_ok=True)
            try:
                history: Any = FileHistory(str(history_file))
            except OSError:
                history = InMemoryHistory()
            self._prompt = PromptSession(
                history=history,
                completer=ReplCompleter(self.commands.listing, self.files, self.symbols),
                complete_while_typing=False,
                multiline=True,
                key_bindings=chat_key_bindings(),
                bottom_toolbar=self.toolbar,
                prompt_continuation=lambda width, line, soft: "… ".rjust(width),
                input=self.io.input,
                output=self.io.output,
            )
        return self._prompt

    @property
    def piped(self) -> bool:
        """Input comes from a pipe or file, not a terminal or a test's pipe input."""
        return self.io.input is None and not sys.stdin.isatty()

    def ask_line(self, question: str) -> str:
        """A one-line answer from the user (confirmations); Ctrl-C or Ctrl-D answer "no"."""
        from prompt_toolkit import PromptSession

        if self.piped:
            self.console.print(question, end="", markup=False)
            return sys.stdin.readline().strip()

        session: PromptSession[str] = PromptSession(input=self.io.input, output=self.io.output)
        try:
            return session.prompt(question)
        except (KeyboardInterrupt, EOFError):
            return ""

    def confirm(self, question: str) -> bool:
        return self.ask_line(f"{question} [y/N] ").strip().lower() in {"y", "yes"}

    def toolbar(self) -> str:
        """Model · context used / n_ctx · last decode speed · thinking."""
        info = self.engine.info
        think = "on" if self.settings.think else "off"
        mode = f"mode {self.agent.mode} · " if self.agent.mode else ""
        return (
            f" {info.name} · ctx {self.context_used:,}/{info.n_ctx:,} · "
            f"{self.last_tok_s:.1f} tok/s · think {think} · {mode}/help "
        )

    # ----- repository -----------------------------------------------------------------------
    def files(self) -> list[str]:
        if self._files is None:
            from gemma_code.repl.repo import list_files

            self._files = list_files(self.root)
        return self._files

    def symbols(self) -> list[str]:
        if self._symbols is None:
            from gemma_code.repl.repo import scan_symbols

            self._symbols = scan_symbols(self.root, self.files())
        return self._symbols

    def build_context(self) -> None:
        """Pack the repository into the system turn (no question: the prefix must not vary)."""
        self.watch.clear()
        self.watch.remember(self.added)
        self.cache = None  # a new prefix: look it up again in the persistent cache
        if not self.settings.context or not self.in_repo:
            why = "off (--no-context)" if not self.settings.context else "off: not in a git repository"
            self.packed = PackedView(notes=[f"repository context is {why}"])
            self.conv.repo_context = None
            self.count_context()
            return
        from gemma_code.repl.repo import pack_repository
        from gemma_code.tasks.ask import answer_reserve

        n_ctx = self.engine.info.n_ctx
        reserve = answer_reserve(n_ctx, self.settings.max_tokens)  # not max_tokens: a stable prefix
        budget = max(0, min(self.settings.budget, n_ctx // 2 - reserve))
        try:
            self.packed = pack_repository(
                self.root, "", budget=budget, engine=self.engine, named=self.added,
                max_file_bytes=self.settings.max_file_bytes,
            )
        except GemmaCodeError as exc:
            self.packed = PackedView(notes=[f"the context builder failed: {exc.message}"])
        self.conv.repo_context = self.packed.text
        self.watch.remember(path for path, _, _ in self.packed.files)
        self.count_context()

    def count_context(self) -> None:
        """The toolbar's count: the whole prompt so far, a resumed or kept history included."""
        self.context_used = self.count_prompt([Message("system", self.conv.system), *self.conv.history])

    def changed_files_note(self) -> str | None:
        """The new text of files changed since the model saw them, for the next user turn."""
        from gemma_code.repl.repo import changed_files_text

        changed = self.watch.changed()
        if not changed:
            return None
        self.watch.remember(changed)
        self.notice("changed since the model saw them: " + ", ".join(changed))
        return changed_files_text(self.root, changed)

    # ----- turns ----------------------------------------------------------------------------
    def count_prompt(self, messages: Sequence[Message]) -> int:
        from gemma_code.engine.segments import count_prompt

        return count_prompt(self.engine, messages, think=self.settings.think)

    def turn(self, text: str, *, mode: str = "chat", typed: str | None = None) -> str | None:
        """Send one user turn and stream the reply; returns the reply (None if cancelled).

        `typed` is what the user typed when `text` (the prompt) says more, for /history.
        """
        self._join_warmer()  # a command may chain turns (/edit retries): one engine user at a time
        note = self.changed_files_note()
        if note:
            self.conv.pending.insert(0, note)
        user = self.conv.user_message(text)
        reserve = self.settings.max_tokens
        n_ctx = self.engine.info.n_ctx
        dropped, used = fit_to_window(self.conv, user, count=self.count_prompt, n_ctx=n_ctx, reserve=reserve)
        if dropped:
            self.session.drop_oldest(len(dropped))
            self.notice(
                f"context window: dropped the {len(dropped) // 2} oldest exchange(s) to fit "
                f"{n_ctx:,} tokens (the model no longer sees them)"
            )
        if used + reserve > n_ctx:
            raise PromptTooLongError(used, n_ctx, reserve, "drop files with /drop, /clear the history, "
                                     "or lower --max-tokens")
        messages = self.conv.messages(user)
        answer, stats, interrupted = self.stream(messages, counted=used)
        from gemma_code.engine.redacting import take_notes

        for line in take_notes():  # secret values kept out of this turn's prompt
            self.notice(line)
        if interrupted and stats is None:
            # the engine's stats chunk never came: record the turn anyway, counted on our side
            stats = GenerationStats(prompt_tokens=self.count_prompt(messages),
                                    completion_tokens=self.engine.count_tokens(answer),
                                    stop_reason="interrupted")
        if interrupted:
            kept = partial_reply(answer)
            if kept is None:
                self.notice("cancelled; nothing was added to the conversation")
                return None
            answer = kept
            self.notice("interrupted; the partial answer stays in the conversation, marked as interrupted")
        typed = text.strip() if typed is None else typed
        self.conv.record(user, answer, typed)
        self.session.add_message(user, typed=typed)
        self.session.add_message(Message("model", answer), stats.to_dict() if stats else None)
        self.last_reply = answer
        if stats is not None:
            self.conv.add_stats(mode, stats)
            self.last_tok_s = stats.decode_tok_s
            self.context_used = stats.prompt_tokens + stats.completion_tokens
            if self.context_used > WARN_FILL * n_ctx:
                self.notice(
                    f"context {self.context_used:,}/{n_ctx:,} tokens; the oldest exchanges will be "
                    "dropped when the next turn does not fit (/clear starts afresh)"
                )
        # re-read the conversation as the next prompt will render it, while the user types
        self.warmer.start(self.engine, [Message("system", self.conv.system), *self.conv.history],
                          think=self.settings.think)
        return None if interrupted else answer

    def stream(self, messages: list[Message], *, counted: int | None = None,
               ) -> tuple[str, GenerationStats | None, bool]:
        """Stream one reply to the console (through the ask task); Ctrl-C stops it cleanly."""
        from gemma_code.tasks.ask import stream_ask
        from gemma_code.ui import StreamPrinter, prefill_progress

        chunks: Iterator[Chunk] = stream_ask(
            self.engine, messages, max_tokens=self.settings.max_tokens, think=self.settings.think,
            temperature=self.settings.temperature, counted=counted,
        )
        if self.cache is None and self.settings.prompt_cache:
            from gemma_code.engine.prompt_cache import PrefixCache

            # first turn on this system prefix: restore it from disk, or save it for next time
            self.cache = PrefixCache.open(self.engine, self.settings)
            chunks = self.cache.wrap(chunks, messages, think=self.settings.think)
        printer = StreamPrinter(self.console, show_thoughts=self.settings.show_thoughts)
        # on Ctrl-C the engine stops decoding; its KV cache keeps what was evaluated
        with prefill_progress(self.engine, enabled=self.io.input is None):
            stats, interrupted = printer.play(chunks)
        for note in self.cache.notes if self.cache is not None else []:
            self.notice(note)
        if self.cache is not None:
            self.cache.notes.clear()
        return printer.answer, stats, interrupted

    # ----- input ----------------------------------------------------------------------------
    def handle(self, line: str) -> None:
        """Run one line of input: a slash command, a shell command, or a chat turn."""
        text = line.strip()
        if not text:
            return
        try:
            self._join_warmer()
            if text.startswith("/"):
                self.commands.run(text)
            elif text.startswith("!"):
                self.commands.shell(text[1:].strip())
            elif self.agent.mode:
                self.agent.turn(text)
            else:
                self.turn(text)
        except GemmaCodeError as exc:
            self.error(exc.message, exc.hint)
        except KeyboardInterrupt:
            self.notice("cancelled")
        except Exception as exc:  # a bug in a command must not end the session
            if os.environ.get("GEMMA_CODE_DEBUG"):
                raise  # the traceback to report (and tests see the crash)
            self.error(f"{text.split()[0]} failed: {type(exc).__name__}: {exc}",
                       "the session goes on; please report this with the command you ran")

    def _save_conversation_state(self) -> None:
        """Keep the conversation's KV state on disk, so `chat --continue` starts warm."""
        if self.cache is None or not self.conv.history:
            return
        try:
            with self.console.status("saving the conversation's KV state …"):
                note = self.cache.save_state()
        except KeyboardInterrupt:
            return
        if note:
            self.notice(note)

    def _join_warmer(self) -> None:
        """Let the background re-read finish before the engine is used again; note what it did."""
        done = self.warmer.take()
        if done.error:
            self.notice(f"the background re-read failed ({done.error}); this turn evaluates the "
                        "conversation itself")
        if done.tokens and self.conv.turns:
            self.conv.turns[-1].idle_tokens += done.tokens
            self.conv.turns[-1].idle_s += done.seconds

    def greet(self) -> None:
        info = self.engine.info
        self.console.print(
            f"[bold]gemma-code[/] chat · {info.name} · n_ctx {info.n_ctx:,} · session {self.session.id}"
        )
        if info.sizing:
            self.notice(info.sizing)
        if self.packed.files:
            self.notice(f"repository context: {len(self.packed.files)} files, {self.packed.used:,} tokens "
                        "(/context lists them)")
        elif self.packed.notes:
            self.notice(self.packed.notes[0])
        if self.conv.history:
            self.notice(f"resumed with {len(self.conv.history) // 2} earlier exchange(s) (/history)")
        if self.resumed_missing:
            self.notice("images no longer there (or changed), resumed without them: "
                        + ", ".join(self.resumed_missing))
        self.console.print("[dim]Enter sends · Alt-Enter (or Esc Enter) new line · /help · Ctrl-D quits[/]")

    def _line_reader(self) -> Callable[[], str]:
        """The prompt on a terminal; plain lines when input is piped (`gemma-code chat < script`)."""
        if self.piped:
            def read_piped() -> str:
                line = sys.stdin.readline()
                if not line:
                    raise EOFError
                return line.rstrip("\n")

            return read_piped
        session = self.prompt_session()
        return lambda: session.prompt("› ")

    def run(self) -> int:
        """Read and run lines until /exit or Ctrl-D."""
        self.greet()
        read = self._line_reader()
        try:
            while self.running:
                try:
                    line = read()
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt clears the line
                except EOFError:
                    break
                self.handle(line)
        finally:
            self.warmer.wait()
            self._save_conversation_state()
            self.engine.close()
        if self.session.path.exists():
            self.console.print(f"[dim]session saved: gemma-code chat --resume {self.session.id}[/]")
        return 0
