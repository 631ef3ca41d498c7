"""The chat's agent mode: with `/mode plan|ask|auto-edit|full-auto`, each message runs the
agent loop (tasks/agent.py) instead of a plain answer; `/mode off` goes back to the chat.

Tool calls show as one line each with a short result; `/undo` reverts the last agent step's
edits, `/undo run` every edit the agent made in this chat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemma_code.errors import GemmaCodeError

if TYPE_CHECKING:
    from gemma_code.repl.loop import Repl
    from gemma_code.tasks.agent import AgentSession
    from gemma_code.tools.base import Action
    from gemma_code.tools.permissions import Answer


class AgentChat:
    """The agent session behind the chat's agent mode, made on first use."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl
        self.mode: str | None = None
        self.session: AgentSession | None = None
        self.results: list[dict[str, Any]] = []  # the last message's tool results, for /expand

    def set_mode(self, mode: str | None) -> None:
        """Switch mode (None: plain chat); full-auto checks the sandbox, at once."""
        if mode is not None:
            self._session(mode).set_mode(mode)
        self.mode = mode

    def _session(self, mode: str | None = None) -> AgentSession:
        mode = mode or self.mode
        if self.session is not None and self.session.engine is not self.repl.engine:
            self.session = None  # /model loaded another model: a new agent conversation
        if self.session is None:
            from gemma_code.tasks.agent import AgentOptions, AgentSession
            from gemma_code.tools.permissions import Permissions

            s = self.repl.settings
            assert mode is not None
            options = AgentOptions(
                mode=mode, max_steps=s.agent_max_steps, max_tokens=s.max_tokens,
                think=s.think, temperature=s.temperature, context_budget=s.budget,
                use_context=s.context and self.repl.in_repo, command_timeout_s=s.command_timeout,
            )
            approver = None if self.repl.piped else self._approve
            self.session = AgentSession(self.repl.engine, self.repl.root, options,
                                        permissions=Permissions(mode, approver))
        return self.session

    def _approve(self, action: Action) -> Answer:
        from gemma_code.ui_agent import show_action

        show_action(self.repl.console, action)
        reply = self.repl.ask_line("  allow? y/n/a(lways) ").strip().lower()
        if reply in ("a", "always"):
            return "always"
        return "yes" if reply in ("y", "yes") else "no"

    def turn(self, text: str) -> None:
        """Run the agent on one message; Ctrl-C stops the step (the chat goes on)."""
        from gemma_code.ui_agent import EventPrinter

        session = self._session()
        printer = EventPrinter(self.repl.console, self.repl.console,
                               show_thoughts=self.repl.settings.show_thoughts,
                               more="/expand shows them")
        self.results = []
        for event in session.run(text):
            printer.show(event)
            if event.type == "tool_result":
                self.results.append(event.to_dict())
            if event.type == "done":
                stats: dict[str, Any] = event.to_dict()["stats"]
                self.repl.context_used = max(
                    (s["prompt_tokens"] + s["completion_tokens"] for s in stats["per_step"]),
                    default=self.repl.context_used)

    def expand(self, which: str) -> None:
        """Print whole tool results of the last message: all, or the N-th (from 1)."""
        from rich.text import Text

        from gemma_code.errors import UsageError

        if not self.results:
            raise UsageError("no tool results to show", "they are kept for the last agent message")
        chosen = list(enumerate(self.results, 1))
        if which:
            if not which.isdigit() or not 1 <= int(which) <= len(self.results):
                raise UsageError(f"no tool result {which!r}", f"choose 1 to {len(self.results)}")
            chosen = [chosen[int(which) - 1]]
        for number, result in chosen:
            self.repl.console.print(f"[bold]{number}. {result['name']}[/] "
                                    f"({'ok' if result['ok'] else 'failed'})")
            self.repl.console.print(Text(result["output"]))

    def undo(self, whole_run: bool) -> list[str] | None:
        """Revert the last agent step (or all of them); None when the newest change is not ours."""
        from gemma_code.edits.journal import list_entries

        session = self.session
        if session is None or not any(r.journal_ids for r in session.records):
            return None
        newest = list_entries(self.repl.root)
        ours = {i for r in session.records for i in r.journal_ids}
        if not newest or newest[-1].id not in ours:
            if whole_run:
                raise GemmaCodeError("newer changes were made after the agent's; nothing was undone",
                                     "/undo reverts the newest change set first")
            return None
        return session.undo_run() if whole_run else session.undo_step()
