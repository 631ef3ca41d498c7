"""The prompts `gemma-code bench` measures with: code-like corpus tokens and a copy-heavy edit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

K = 1024


@functools.lru_cache(maxsize=1)
def corpus_text() -> str:
    """Deterministic code-like text: gemma_code's own sources, in path order."""
    root = Path(__file__).parent.parent
    return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py")))


def corpus_tokens(tokenize: Callable[[str], list[int]], n: int, *, salt: int = 0) -> list[int]:
    """`n` tokens of corpus text; `salt` changes the first line so no cached prefix applies."""
    text = corpus_text()
    # a letter leads (digits are single tokens): consecutive prompts share no prefix
    head = f"{chr(65 + salt % 26)}{salt}: a benchmark prompt\n"
    chars = 4 * n + 256  # code runs 3-4 characters a token: tokenize only about what is needed
    tokens = tokenize(head + text[:chars])
    while len(tokens) < n:
        chars *= 2
        tokens = tokenize(head + (text * (1 + chars // len(text)))[:chars])
    return tokens[:n]


EDIT_SOURCE = "speculative.py"


def edit_prompt(fmt: str, chars: int = 6 * K) -> str:
    """A copy-heavy edit: rewrite a file with one rename; the reply starts the file over."""
    from gemma_code.engine.base import Message
    from gemma_code.engine.chat_templates import render

    source = (Path(__file__).parent.parent / "engine" / EDIT_SOURCE).read_text(encoding="utf-8")
    source = source[:chars].rsplit("\n", 1)[0] + "\n"  # the reply is mostly a copy of it
    messages = [
        Message("system", "You edit code. Reply with the whole updated file in one code block."),
        Message("user", f"In {EDIT_SOURCE}, rename `draft` to `propose`.\n\n```python\n{source}```"),
    ]
    # the reply's opening is given, so even a small base model starts copying
    return render(messages, fmt) + "```python\n" + source[:40]
