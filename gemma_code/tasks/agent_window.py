"""Keeping an agent run inside the context window: the prompt's size each step, and older
tool results shortened (never dropped) when the next step would not fit."""

from __future__ import annotations

from gemma_code.engine.base import Engine, Message
from gemma_code.engine.gemma_tools import render_call, render_response
from gemma_code.errors import PromptTooLongError
from gemma_code.tasks.agent_prompt import shorten_results
from gemma_code.tasks.prompting import prompt_tokens

MIN_REPLY_TOKENS = 256  # below this much room for the reply, older results are shortened
EXACT_BELOW = 0.85  # estimated prompts above this share of the window are counted exactly
ESTIMATE_MARGIN = 16  # tokens of turn markup allowed per appended message


class Window:
    """The prompt's size, counted exactly near the window's end and estimated elsewhere.

    Rendering and tokenizing a long prompt every step costs tens of ms; between exact counts
    (the engine's own count after each step, or ours) the appended messages are counted alone.
    """

    def __init__(self, engine: Engine, *, think: bool, max_tokens: int) -> None:
        self.engine = engine
        self.think = think
        self.max_tokens = max_tokens
        self.known: tuple[int, int] | None = None  # (messages, exact prompt tokens) last seen

    def observed(self, n_messages: int, tokens: int) -> None:
        """The engine evaluated the first `n_messages` as a prompt of `tokens` tokens."""
        if tokens:
            self.known = (n_messages, tokens)

    def estimate(self, messages: list[Message]) -> int | None:
        """The prompt's size from the last exact count plus what was appended since."""
        if self.known is None or self.known[0] > len(messages):
            return None
        count = self.engine.count_tokens
        size = self.known[1]
        for m in messages[self.known[0]:]:
            text = m.content + m.reasoning + "".join(render_call(c) for c in m.tool_calls)
            if m.role == "tool":
                text += render_response(m.name, m.response if m.response is not None else m.content)
            size += count(text) + ESTIMATE_MARGIN
        return size

    def fit(self, messages: list[Message], keep_last: int) -> tuple[list[Message], int, list[str]]:
        """(messages, reply budget, notes): older results shortened when room runs out.

        The last `keep_last` messages are never shortened. PromptTooLongError when even then
        fewer than MIN_REPLY_TOKENS remain.
        """
        n_ctx = self.engine.info.n_ctx
        estimate = self.estimate(messages)
        if estimate is not None and estimate + self.max_tokens <= EXACT_BELOW * n_ctx:
            return messages, self.max_tokens, []
        used = prompt_tokens(self.engine, messages, think=self.think)
        notes: list[str] = []
        if n_ctx - used < min(self.max_tokens, MIN_REPLY_TOKENS * 4):
            over = used + self.max_tokens - n_ctx
            messages, notes = shorten_results(messages, over, self.engine.count_tokens,
                                              keep_last=keep_last)
            used = prompt_tokens(self.engine, messages, think=self.think)
        self.known = (len(messages), used)
        room = n_ctx - used
        if room < MIN_REPLY_TOKENS:
            raise PromptTooLongError(
                used, n_ctx, MIN_REPLY_TOKENS,
                "the run's tool results no longer fit; start a new run with a narrower task, "
                "or raise --n-ctx",
            )
        return messages, min(self.max_tokens, room), notes
