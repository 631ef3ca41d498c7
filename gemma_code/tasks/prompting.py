"""Helpers every task shares: reading named files and checking that a prompt fits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gemma_code.engine.base import Engine, Message
from gemma_code.errors import PromptTooLongError, UsageError

BASE_RULES = (
    "You are gemma-code, a coding assistant that runs locally on the user's machine. "
    "Be precise and brief. Quote file paths and line numbers when you refer to code. "
    "If the provided files do not contain the answer, say so instead of guessing."
)


def read_named_file(path: Path) -> str:
    """Read a file the user named with -f; a clear UsageError when it is missing or binary."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}", "check the path given to -f/--file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory", "name files, not folders, with -f") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if b"\0" in data[:8192]:
        raise UsageError(f"{path} looks binary", "only text files can go into the prompt")
    return data.decode("utf-8", errors="replace")


def relative_to_root(root: Path, path: Path, *, cwd: Path | None = None) -> str:
    """`path` (relative to `cwd`, default the current folder, or absolute) as a repo-relative
    POSIX path; UsageError when it lies outside the repository."""
    full = ((cwd or Path.cwd()) / Path(path).expanduser()).resolve()
    try:
        return full.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise UsageError(f"{path} is outside the repository", "name files inside it") from None


def fence(path: str, text: str) -> str:
    """A file as a fenced block headed by its path; the fence outgrows any inside it."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{path}\n{ticks}\n{text.rstrip()}\n{ticks}\n"


def prompt_tokens(engine: Engine, messages: Sequence[Message], *, think: bool) -> int:
    """Exact prompt size in the engine's own format and tokenizer (content counted as text)."""
    from gemma_code.engine.segments import count_prompt

    return count_prompt(engine, messages, think=think)


def check_fits(engine: Engine, messages: Sequence[Message], *, max_tokens: int, think: bool) -> int:
    """Raise PromptTooLongError (by how much, what to drop) unless prompt + answer fit n_ctx."""
    used = prompt_tokens(engine, messages, think=think)
    if used + max_tokens > engine.info.n_ctx:
        raise PromptTooLongError(used, engine.info.n_ctx, max_tokens)
    return used
