"""The chat's prompt, laid out so each follow-up turn extends the previous prompt unchanged.

Layout (DESIGN.md, "Prompt layout"): [system rules + repository context] [history] [new turn].
The system turn is fixed for the whole session; files added later, shell output and files
changed since the context was built ride in the next user turn, so the history is never
rewritten and llama.cpp reuses everything before the new turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gemma_code.engine.base import GenerationStats, ImageData, Message
from gemma_code.tasks.edit_prompts import DEFAULT_FORMAT, FORMATS
from gemma_code.tasks.prompting import BASE_RULES

CHAT_RULES = (
    BASE_RULES
    + " You are in an interactive chat about the user's repository. Use Markdown; put code in"
    " fenced blocks. Files the user adds and the output of commands they run appear in their"
    " messages. Propose changes to files only when the user asks for a change."
)


def chat_rules() -> str:
    """The chat's fixed system rules, with the edit format so /edit turns need no other prompt."""
    return CHAT_RULES + "\n\n" + FORMATS[DEFAULT_FORMAT]


INTERRUPTED_MARK = "\n\n[answer interrupted by the user]"


@dataclass
class TurnStats:
    """What one turn cost, for /stats."""

    number: int
    mode: str
    stats: GenerationStats
    idle_tokens: int = 0  # re-read in the background after the answer, while the user typed
    idle_s: float = 0.0


@dataclass
class Conversation:
    """The system turn, the history of user and model turns, and notes for the next turn."""

    rules: str = field(default_factory=chat_rules)
    repo_context: str | None = None
    history: list[Message] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    pending_images: list[ImageData] = field(default_factory=list)  # /add shot.png
    typed: dict[Message, str] = field(default_factory=dict)  # user turn -> what the user typed
    turns: list[TurnStats] = field(default_factory=list)

    @property
    def system(self) -> str:
        """The stable prefix: rules, then the repository context (deterministic order)."""
        if self.repo_context:
            return self.rules + "\n\n# Repository context\n\n" + self.repo_context
        return self.rules

    def user_message(self, text: str) -> Message:
        """The next user turn: added images, pending notes (files, shell output), then the text."""
        return Message("user", "\n\n".join([*self.pending, text.strip()]), images=tuple(self.pending_images))

    def shown(self, user: Message) -> str:
        """A user turn as the user typed it (the prompt may add files, notes and instructions)."""
        return self.typed.get(user, user.content)

    def messages(self, user: Message) -> list[Message]:
        """Everything the model sees for the next turn."""
        return [Message("system", self.system), *self.history, user]

    def record(self, user: Message, reply: str, typed: str | None = None) -> Message:
        """Append a finished (or deliberately kept partial) exchange; pending notes are used up."""
        model = Message("model", reply)
        self.history.extend([user, model])
        if typed is not None:
            self.typed[user] = typed
        self.pending.clear()
        self.pending_images.clear()
        return model

    def add_stats(self, mode: str, stats: GenerationStats) -> None:
        self.turns.append(TurnStats(len(self.turns) + 1, mode, stats))

    def clear(self) -> None:
        """Forget the history (the system prefix, and its KV cache, stay)."""
        self.history.clear()
        self.pending.clear()
        self.pending_images.clear()
        self.typed.clear()

    def drop_oldest(self, count: int) -> list[Message]:
        """Remove the `count` oldest messages (always whole user+model pairs); return them."""
        count -= count % 2
        dropped = self.history[:count]
        del self.history[:count]
        return dropped


def fit_to_window(
    conversation: Conversation,
    user: Message,
    *,
    count: Callable[[Sequence[Message]], int],
    n_ctx: int,
    reserve: int,
) -> tuple[list[Message], int]:
    """Drop the oldest exchanges until prompt + `reserve` fit `n_ctx`.

    Returns the dropped messages and the prompt's token count. The caller must tell the user
    about every drop: the context is never truncated silently.
    """
    dropped: list[Message] = []
    used = count(conversation.messages(user))
    while used + reserve > n_ctx and len(conversation.history) >= 2:
        dropped.extend(conversation.drop_oldest(2))
        used = count(conversation.messages(user))
    return dropped, used


def partial_reply(answer: str) -> str | None:
    """What to keep of an interrupted answer: the text so far, marked; None if nothing came.

    Keeping the partial answer (rather than removing the turn) keeps the KV cache valid: the
    next turn extends what was already evaluated instead of rolling back past it.
    """
    if not answer.strip():
        return None
    return answer.rstrip() + INTERRUPTED_MARK
