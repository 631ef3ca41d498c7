"""One exception tree, mapped to the documented exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of every gemma-code command (documented in README.md)."""

    OK = 0
    FAILURE = 1  # a command failed as documented, or review found blocking findings
    USAGE = 2  # bad flags or arguments (click uses 2 as well)
    CONFIG = 3  # a settings file or value is wrong
    MODEL = 4  # model missing, corrupt, unsupported, or the engine failed
    GIT = 5  # not a repository, or a git operation failed
    EDIT_REJECTED = 6  # an edit could not be applied; nothing was written
    INTERNAL = 70  # a bug in gemma-code (sysexits' EX_SOFTWARE), never a result
    INTERRUPTED = 130  # 128 + SIGINT


class GemmaCodeError(Exception):
    """Base of every error the CLI reports without a traceback.

    `message` is one line saying what went wrong; `hint` says how to fix it.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(GemmaCodeError):
    exit_code = ExitCode.USAGE


class ConfigError(GemmaCodeError):
    exit_code = ExitCode.CONFIG


class ModelError(GemmaCodeError):
    exit_code = ExitCode.MODEL


class ModelNotFoundError(ModelError):
    """The model is not in the registry or its file is not downloaded."""


class BadModelFileError(ModelError):
    """The file is not a readable GGUF."""


class UnsupportedModelError(ModelError):
    """The GGUF's architecture is not supported by the installed llama.cpp."""


class EngineError(ModelError):
    """The runtime failed while loading or generating."""


class PromptTooLongError(ModelError):
    """The prompt does not fit in the context window."""

    def __init__(self, prompt_tokens: int, n_ctx: int, reserved: int, hint: str | None = None):
        over = prompt_tokens + reserved - n_ctx
        super().__init__(
            f"prompt is {prompt_tokens:,} tokens; with {reserved:,} reserved for the answer it "
            f"exceeds the {n_ctx:,}-token context window by {over:,} tokens",
            hint
            or "drop some -f files, lower --max-tokens or --budget, or raise --n-ctx if memory allows",
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        self.reserved = reserved
        self.over = over


class GitError(GemmaCodeError):
    exit_code = ExitCode.GIT


class EditRejectedError(GemmaCodeError):
    exit_code = ExitCode.EDIT_REJECTED


class Interrupted(GemmaCodeError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted", hint: str | None = None) -> None:
        super().__init__(message, hint)
