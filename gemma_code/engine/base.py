"""The engine protocol: every model runtime streams Chunks for a list of Messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from gemma_code.engine.gemma_tools import ToolCall, ToolSpec

Role = Literal["system", "user", "model", "tool"]


@dataclass(frozen=True)
class ImageData:
    """A decoded image for the prompt: 8-bit RGB pixels, row by row."""

    label: str  # what the user named (a path), for messages
    width: int
    height: int
    rgb: bytes = field(repr=False)
    digest: str  # identifies the pixels: the KV cache reuses an image it has seen


@dataclass(frozen=True)
class Message:
    """One turn of a conversation. A model turn's thoughts are never stored in `content`.

    Tools: the first (system) message declares them in `tools` (its content may be empty);
    a model turn carries its `tool_calls`, and its `reasoning` when that must reach the model
    again (kept on tool-call turns after the last user turn, as the official template does);
    each result is a `tool` message naming the tool (`name`) with the result as `content`,
    or as a mapping in `response`. `images` go before the text of a user turn, as Gemma 4's
    template places image parts.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    name: str = ""
    response: Any = None
    tools: tuple[ToolSpec, ...] = ()
    images: tuple[ImageData, ...] = ()


@dataclass
class GenerationStats:
    """What one generation cost. Times are wall-clock seconds."""

    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0  # prefilled this time
    prompt_tokens_reused: int = 0  # taken from the KV cache
    completion_tokens: int = 0
    time_to_first_token_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stop_reason: str = "stop"  # stop | length | interrupted | error
    draft_tokens: int = 0  # speculative decoding: tokens proposed
    draft_accepted: int = 0  # and accepted
    image_tokens: int = 0  # of prompt_tokens, the positions images take

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens_evaluated / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tok_s(self) -> float:
        # the first token comes out of the prefill step; rate the rest
        generated = max(self.completion_tokens - 1, 0)
        return generated / self.decode_s if self.decode_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prefill_tok_s"] = round(self.prefill_tok_s, 2)
        data["decode_tok_s"] = round(self.decode_tok_s, 2)
        return data


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed reply: answer text, thought text, or the final stats."""

    kind: Literal["text", "thought", "stats"]
    text: str = ""
    stats: GenerationStats | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What is loaded and how: shown by `doctor`, `--json` and the REPL toolbar."""

    name: str
    n_ctx: int
    arch: str = "unknown"
    quant: str = "unknown"
    backend: str = "unknown"  # cpu | cuda | metal | vulkan | remote | scripted
    chat_format: str = "gemma4"  # gemma4 | gemma3 | plain
    path: str | None = None
    kv_type: str = "f16"
    n_gpu_layers: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    sizing: str = ""  # how budget and max_tokens were lowered to suit a CPU ("" when not)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


@runtime_checkable
class Engine(Protocol):
    """A model runtime. Implementations: llamacpp, openai, scripted."""

    info: ModelInfo

    def count_tokens(self, text: str) -> int:
        """Exact token count of `text` with the model's tokenizer (no BOS)."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        think: bool = False,
        grammar: str | None = None,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        speculative: bool = False,
    ) -> Iterator[Chunk]:
        """Generate a reply; the last chunk is always kind="stats".

        `speculative` asks for prompt-lookup speculative decoding (replies that copy the prompt,
        such as edits); engines without it decode normally, with the same output.
        """
        ...

    def close(self) -> None:
        """Free the model's memory."""
        ...


@runtime_checkable
class KVCacheEngine(Engine, Protocol):
    """An engine whose KV cache and tokens are reachable: the prompt cache (engine/prompt_cache.py),
    the chat's background re-read (repl/warm.py) and the benchmarks build on it. The llama.cpp
    engine implements it; `as_kv_engine` tells whether an engine does."""

    def tokenize(self, text: str) -> list[int]:
        """`text` as tokens, control strings parsed as special tokens (no BOS)."""
        ...

    def prompt_tokens(self, messages: Sequence[Message], *, think: bool = False) -> list[int]:
        """The exact tokens `stream` evaluates for `messages` (message content tokenized as text,
        so a file quoting `<|turn>` cannot end a turn), generation prompt included."""
        ...

    def kv_tokens(self) -> list[int]:
        """The tokens whose state the KV cache holds now."""
        ...

    def save_kv(self, path: str | Path) -> int:
        """Write the KV state and its tokens to `path`; bytes written."""
        ...

    def load_kv(self, path: str | Path, tokens: Sequence[int]) -> bool:
        """Restore a state saved by `save_kv` if it holds exactly `tokens`; False otherwise."""
        ...

    def generate_tokens(
        self,
        prompt: Sequence[int],
        *,
        max_tokens: int,
        temperature: float,
        grammar: str | None = None,
        stop: Sequence[str] = (),
        speculative: bool = False,
    ) -> Iterator[Chunk]:
        """Decode after an already tokenized prompt; `max_tokens=0` evaluates the prefix only."""
        ...


def as_kv_engine(engine: Engine) -> KVCacheEngine | None:
    """`engine` as a KVCacheEngine, or None when it offers no KV cache (openai, scripted)."""
    return engine if isinstance(engine, KVCacheEngine) else None
