"""Slash commands, found by name: `/add` runs `cmd_add`. Adding a command is adding a method.

Each method's docstring is its /help entry: the first line says what it does, lines starting
with `/` are examples.
"""

from __future__ import annotations

import difflib
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gemma_code.errors import UsageError
from gemma_code.repl.code_commands import CodeCommands
from gemma_code.repl.images import add_image, drop_images, is_image, pending_image_tokens
from gemma_code.tasks.prompting import fence, read_named_file

if TYPE_CHECKING:
    from gemma_code.repl.loop import Repl

MAX_SHELL_OUTPUT = 20_000
ASK_ONLY = "Answer the question; do not propose edits.\n\n"


class Commands(CodeCommands):
    """The chat's slash commands; each `cmd_NAME(args)` gets the text after the name."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl

    # ----- dispatch ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(name[4:] for name in dir(self) if name.startswith("cmd_"))

    def summary(self, name: str) -> tuple[str, list[str]]:
        """A command's one-line summary and its examples, from its docstring."""
        doc = (getattr(self, f"cmd_{name}").__doc__ or "").strip().splitlines()
        lines = [line.strip() for line in doc]
        return (lines[0] if lines else ""), [line for line in lines[1:] if line.startswith(("/", "!"))]

    def listing(self) -> Iterator[tuple[str, str]]:
        """(`/name`, summary) pairs, for completion."""
        for name in self.names():
            yield f"/{name}", self.summary(name)[0]

    def run(self, text: str) -> None:
        name, _, args = text[1:].partition(" ")
        name = name.strip().lower()
        method = getattr(self, f"cmd_{name}", None)
        if method is None:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"did you mean /{close[0]}? " if close else ""
            raise UsageError(f"unknown command /{name}", hint + "/help lists every command")
        method(args.strip())

    # ----- conversation -----------------------------------------------------------------------
    def cmd_help(self, args: str) -> None:
        """Show the commands, or one command's help.
        /help
        /help add
        """
        from rich.table import Table

        wanted = args.strip().lstrip("/")
        names = [wanted] if wanted else self.names()
        if wanted and wanted not in self.names():
            raise UsageError(f"no command /{wanted}", "/help lists every command")
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold cyan")
        table.add_column()
        table.add_column(style="dim")
        for name in names:
            summary, examples = self.summary(name)
            table.add_row(f"/{name}", summary, examples[0] if examples else "")
            for more in examples[1:] if wanted else []:
                table.add_row("", "", more)
        if not wanted:
            table.add_row("!CMD", "Run a shell command (asks first); its output can join the chat.",
                          "!pytest -q tests/test_app.py")
        self.repl.console.print(table)
        if not wanted:
            self.repl.console.print(
                "[dim]Anything else is a message to the model. Enter sends; Alt-Enter or Esc Enter "
                "starts a new line; Ctrl-C stops an answer; Ctrl-D quits.[/]"
            )

    def cmd_exit(self, args: str) -> None:
        """Leave the chat (Ctrl-D works too); the session is already saved.
        /exit
        """
        self.repl.running = False

    def cmd_ask(self, args: str) -> None:
        """Ask a question and get an answer only, with no edits proposed.
        /ask where is the retry logic?
        """
        if not args:
            raise UsageError("/ask needs a question", "/ask what does main() do?")
        self.repl.turn(ASK_ONLY + args, mode="ask", typed=f"/ask {args}")

    def cmd_mode(self, args: str) -> None:
        """Agent mode: messages run the agent with tools (plan, ask, auto-edit, full-auto); off.
        /mode auto-edit
        /mode plan
        /mode off
        """
        from gemma_code.tools.permissions import MODES, check_mode

        wanted = args.strip()
        if not wanted:
            self.repl.notice(f"mode: {self.repl.agent.mode or 'off (plain chat)'}; "
                             f"choose {', '.join(MODES)} or off")
            return
        self.repl.agent.set_mode(None if wanted == "off" else check_mode(wanted))
        self.repl.notice(f"mode: {wanted}" + ("" if wanted == "off" else
                         " (messages run the agent; /undo reverts its last step)"))

    def cmd_expand(self, args: str) -> None:
        """Show the whole tool results of the last agent message (all, or the N-th).
        /expand
        /expand 2
        """
        self.repl.agent.expand(args.strip())

    def cmd_clear(self, args: str) -> None:
        """Forget the conversation; keep the added files and the repository context.
        /clear
        """
        self.repl.conv.clear()
        self.repl.session.clear()
        self.repl.context_used = 0
        self.repl.notice("conversation cleared (files and repository context kept)")

    def cmd_reset(self, args: str) -> None:
        """Forget the conversation and the added files, and rebuild the repository context.
        /reset
        """
        self.repl.conv.clear()
        self.repl.session.clear()
        self.repl.added.clear()
        self.repl.context_used = 0
        self.repl.build_context()
        self.repl.notice("conversation and files reset; repository context rebuilt")

    def cmd_history(self, args: str) -> None:
        """Show the exchanges of this conversation, one line each.
        /history
        """
        from rich.markup import escape

        history = self.repl.conv.history
        if not history:
            self.repl.notice("no exchanges yet")
            return
        for number, at in enumerate(range(0, len(history) - 1, 2), start=1):
            user = " ".join(self.repl.conv.shown(history[at]).split())[:70]
            reply = " ".join(history[at + 1].content.split())[:70]
            self.repl.console.print(f"[bold]{number:>3}[/] you: {escape(user)}", highlight=False)
            self.repl.console.print(f"    model: {reply}", markup=False, highlight=False)

    # ----- files ------------------------------------------------------------------------------
    def cmd_add(self, args: str) -> None:
        """Add files to the chat: their content (or an image) goes into your next message.
        /add src/app.py
        /add tests/*.py
        /add screenshot.png
        """
        if not args:
            raise UsageError("/add needs a file", "/add src/app.py")
        added = []
        for rel in self._expand(args):
            path = self.repl.root / rel
            if path.is_dir():
                raise UsageError(f"{rel} is a directory", "add files, or a glob such as src/*.py")
            if is_image(path):
                added.append(add_image(self.repl.conv, self.repl.engine, path, rel))
                continue
            text = read_named_file(path)
            if rel not in self.repl.added:
                self.repl.added.append(rel)
            self.repl.conv.pending.append(fence(rel, text))
            self.repl.watch.remember([rel])
            added.append(f"{rel} ({self.repl.engine.count_tokens(text):,} tokens)")
        self.repl.notice("added, sent with your next message: " + ", ".join(added))

    def cmd_drop(self, args: str) -> None:
        """Stop following files (or `all`); earlier messages keep what the model saw.
        /drop src/app.py
        /drop all
        """
        if not args:
            raise UsageError("/drop needs a file or `all`", "/drop src/app.py")
        targets = list(self.repl.added) if args.strip() == "all" else self._expand(args)
        dropped_images, targets = drop_images(self.repl.conv, self.repl.root, targets,
                                              everything=args.strip() == "all")
        if dropped_images and not targets:
            self.repl.notice(f"dropped {dropped_images} image(s) from your next message")
            return
        missing = [t for t in targets if t not in self.repl.added]
        if missing:
            raise UsageError(f"not added: {', '.join(missing)}", "/files lists the added files")
        conv = self.repl.conv
        for rel in targets:
            self.repl.added.remove(rel)
            # not sent yet: take it out of the next message too
            conv.pending = [p for p in conv.pending if not p.startswith(f"{rel}\n`")]
        self.repl.watch.forget(targets)
        self.repl.watch.remember(p for p, _, _ in self.repl.packed.files)
        self.repl.notice(
            f"dropped {', '.join(targets) or 'nothing'}; the history is not rewritten, so the model "
            "still sees earlier copies until /clear"
        )

    def cmd_files(self, args: str) -> None:
        """List the files added to the chat and those in the repository context.
        /files
        """
        repl = self.repl
        if repl.added:
            repl.console.print("[bold]added[/]")
            for rel in repl.added:
                repl.console.print(f"  {rel}", markup=False)
        if repl.packed.files:
            repl.console.print(f"[bold]repository context[/] ({len(repl.packed.files)} files)")
            for path, tokens, mode in repl.packed.files:
                repl.console.print(f"  {path}  {tokens:,} tok  {mode}", markup=False)
        if not repl.added and not repl.packed.files:
            repl.notice("no files yet: /add PATH")

    # ----- model and generation ---------------------------------------------------------------
    def cmd_model(self, args: str) -> None:
        """Show the model, or switch to another (the conversation is kept).
        /model
        /model gemma-4-26b-a4b
        """
        repl = self.repl
        if args:
            old = repl.engine
            repl.settings.model = args.strip()
            repl.notice(f"loading {repl.settings.model} ...")
            new = repl._load_engine(repl.settings)
            old.close()
            repl.engine = new
            repl.cache = None
        info = repl.engine.info
        repl.console.print(
            f"{info.name} · {info.arch} {info.quant} · {info.backend} · n_ctx {info.n_ctx:,} · "
            f"format {info.chat_format}", markup=False,
        )

    def cmd_think(self, args: str) -> None:
        """Turn thinking on or off (no argument: toggle).
        /think on
        /think
        """
        value = args.strip().lower()
        if value in {"on", "true", "1", "yes"}:
            think = True
        elif value in {"off", "false", "0", "no"}:
            think = False
        elif not value:
            think = not self.repl.settings.think
        else:
            raise UsageError(f"/think takes on or off, not {value!r}", "/think on")
        self.repl.settings.think = think
        self.repl.cache = None  # the rendered system turn may change: look the prefix up again
        note = "; the system turn changes, so the next turn evaluates the whole prompt again" \
            if self.repl.engine.info.chat_format == "gemma4" and self.repl.conv.history else ""
        self.repl.notice(f"thinking {'on' if think else 'off'}{note}")

    def cmd_tokens(self, args: str) -> None:
        """Show where the context window goes: rules, repository context, history, added files.
        /tokens
        """
        repl = self.repl
        count = repl.engine.count_tokens
        rows = [
            ("system rules", count(repl.conv.rules)),
            ("repository context", count(repl.conv.repo_context or "")),
            (f"history ({len(repl.conv.history) // 2} exchanges)",
             sum(count(m.content) for m in repl.conv.history)),
            ("waiting for your next message", sum(count(p) for p in repl.conv.pending)
             + pending_image_tokens(repl.engine, repl.conv.pending_images)),
        ]
        total = sum(n for _, n in rows)
        for label, number in rows:
            repl.console.print(f"  {number:>9,}  {label}", markup=False)
        n_ctx = repl.engine.info.n_ctx
        repl.console.print(
            f"  {total:>9,}  total of {n_ctx:,} ({100 * total / max(n_ctx, 1):.0f}%); "
            f"{repl.settings.max_tokens:,} reserved for the answer", markup=False,
        )

    def cmd_stats(self, args: str) -> None:
        """Per turn: prompt tokens evaluated vs reused from the KV cache, and speeds.
        /stats
        """
        from rich.table import Table

        turns = self.repl.conv.turns
        if not turns:
            self.repl.notice("no turns yet")
            return
        table = Table(box=None)
        titles = ("turn", "mode", "prompt", "evaluated", "reused", "first token s", "decode tok/s", "out",
                  "re-read idle")
        for title in titles:
            table.add_column(title, justify="left" if title == "mode" else "right")
        for t in turns:
            s = t.stats
            table.add_row(
                str(t.number), t.mode, f"{s.prompt_tokens:,}", f"{s.prompt_tokens_evaluated:,}",
                f"{s.prompt_tokens_reused:,}", f"{s.time_to_first_token_s:.2f}",
                f"{s.decode_tok_s:.1f}", f"{s.completion_tokens:,} ({s.stop_reason})",
                f"{t.idle_tokens:,} ({t.idle_s:.2f} s)" if t.idle_tokens else "",
            )
        self.repl.console.print(table)
        self.repl.console.print(
            "[dim]evaluated: prompt tokens computed for the turn; reused: taken from the KV cache "
            "(or restored from disk); re-read idle: evaluated in the background after the answer, "
            "while you typed[/]"
        )

    # ----- sessions ---------------------------------------------------------------------------
    def cmd_save(self, args: str) -> None:
        """Name this session so it can be loaded later (it is saved as you go).
        /save login-bug
        """
        repl = self.repl
        if args:
            if any(c in args for c in "/\\") or args.strip() != args:
                raise UsageError("a session name is one word without slashes", "/save login-bug")
            repl.session.name(args)
        elif not repl.session.path.exists():
            repl.session.write_history([])
        repl.notice(f"session {repl.session.id}{f' ({args})' if args else ''} saved: {repl.session.path}")

    def cmd_load(self, args: str) -> None:
        """Load a saved session (by id, id prefix or name); no argument lists them.
        /load
        /load login-bug
        """
        from gemma_code.repl.store import SessionFile, find_session, list_sessions

        repl = self.repl
        if not args:
            sessions = list_sessions()
            if not sessions:
                repl.notice("no saved sessions")
            for s in sessions[:20]:
                label = f" [{s.name}]" if s.name else ""
                repl.console.print(
                    f"  {s.id}{label}  {len(s.messages) // 2} exchanges  {s.title}", markup=False
                )
            return
        info = find_session(args.strip())
        repl.conv.clear()
        repl.conv.history = list(info.messages)
        repl.conv.typed = dict(info.typed)
        repl.session = SessionFile(info.id, cwd=repl.cwd, model=repl.engine.info.name)
        repl.cache = None  # its conversation's KV state may be on disk (saved when it ended)
        repl.count_context()
        repl.notice(f"loaded session {info.id}: {len(info.messages) // 2} exchange(s)")

    # ----- shell ------------------------------------------------------------------------------
    def shell(self, command: str) -> None:
        """`!cmd`: run a shell command after confirmation; optionally add its output to the chat."""
        repl = self.repl
        if not command:
            raise UsageError("nothing to run after !", "!pytest -q")
        if not repl.confirm(f"run `{command}` in {repl.root}?"):
            repl.notice("not run")
            return
        done = subprocess.run(command, shell=True, cwd=repl.root, capture_output=True, text=True,
                              errors="replace", check=False)
        output = (done.stdout or "") + (done.stderr or "")
        repl.console.print(output.rstrip() or "(no output)", markup=False, highlight=False)
        repl.console.print(f"[dim]exit status {done.returncode}[/]")
        if not output.strip() or not repl.confirm("add the output to the conversation?"):
            return
        if len(output) > MAX_SHELL_OUTPUT:
            output = output[-MAX_SHELL_OUTPUT:]
            repl.notice(f"output cut to its last {MAX_SHELL_OUTPUT:,} characters")
        repl.conv.pending.append(fence(f"$ {command}  (exit status {done.returncode})", output))
        repl.notice("the output goes with your next message")
