"""A scripted engine: replays queued replies and records what it was shown.

Used by unit tests, demos, and the git hook's tests (through a JSON script file named by
the `script` setting, e.g. GEMMA_CODE_ENGINE=scripted GEMMA_CODE_SCRIPT=replies.json).

Script file: ``{"replies": [REPLY, ...], "n_ctx": 8192, "log": "seen.jsonl"}`` where a REPLY
is the raw model text (thoughts inside ``<|channel>thought\\n...<channel|>`` allowed) or an
object ``{"text": ..., "delay": seconds_per_piece, "error": "message"}``. With `log`, each
call appends one JSON line with the prompt the model saw (and each message's images).
With ``"image_tokens": N`` the engine takes images, each N prompt positions (a stand-in for
a model with its vision projector); without it, it cannot read images.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_code.engine.base import Chunk, GenerationStats, ImageData, Message, ModelInfo
from gemma_code.engine.chat_templates import ThoughtSplitter, render
from gemma_code.errors import ConfigError, EngineError, PromptTooLongError

_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")
_PIECE = re.compile(r"\S+\s*|\s+")


@dataclass
class ScriptedCall:
    """What the model was shown in one call."""

    messages: list[Message]
    prompt: str
    max_tokens: int
    think: bool
    grammar: str | None
    stop: list[str]
    speculative: bool = False


@dataclass
class ScriptedEngine:
    """Replays `replies` in order; `calls` records each request."""

    replies: list[Any] = field(default_factory=list)
    n_ctx: int = 8192
    chat_format: str = "gemma4"
    log_path: Path | None = None
    calls: list[ScriptedCall] = field(default_factory=list)
    closed: bool = False
    info: ModelInfo = field(init=False)

    def __post_init__(self) -> None:
        self.info = ModelInfo(
            name="scripted", n_ctx=self.n_ctx, arch="scripted", quant="none",
            backend="scripted", chat_format=self.chat_format,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedEngine:
        """Load a script file (see the module docstring)."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"scripted engine: script file {file} does not exist",
                "set `script` (or GEMMA_CODE_SCRIPT) to a JSON file of replies",
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"scripted engine: cannot read {file}: {exc}") from None
        if isinstance(data, list):
            data = {"replies": data}
        log = data.get("log")
        if data.get("image_tokens") and cls is ScriptedEngine:
            return ScriptedVisionEngine(
                replies=list(data.get("replies", [])), n_ctx=int(data.get("n_ctx", 8192)),
                chat_format=str(data.get("chat_format", "gemma4")),
                log_path=Path(log) if log else None, tokens_per_image=int(data["image_tokens"]),
            )
        return cls(
            replies=list(data.get("replies", [])),
            n_ctx=int(data.get("n_ctx", 8192)),
            chat_format=str(data.get("chat_format", "gemma4")),
            log_path=Path(log) if log else None,
        )

    def count_tokens(self, text: str) -> int:
        """Deterministic stand-in tokenizer: words, punctuation and runs of space."""
        return len(_TOKEN.findall(text))

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
        prompt = render(messages, self.chat_format, think=think)
        image_tokens = self._image_positions(messages)
        prompt_tokens = self.count_tokens(prompt) + image_tokens
        if prompt_tokens + max_tokens > self.n_ctx:
            raise PromptTooLongError(prompt_tokens, self.n_ctx, max_tokens)
        call = ScriptedCall(list(messages), prompt, max_tokens, think, grammar, list(stop), speculative)
        self.calls.append(call)
        self._log(call)
        if not self.replies:
            raise EngineError(
                "scripted engine: no reply left in the script",
                "add replies to the script file",
            )
        reply = self.replies.pop(0)
        if isinstance(reply, str):
            reply = {"text": reply}
        if reply.get("error"):
            raise EngineError(f"scripted engine: {reply['error']}")
        for chunk in self._replay(str(reply.get("text", "")), float(reply.get("delay", 0.0)),
                                  prompt_tokens, max_tokens, stop):
            if chunk.stats is not None:
                chunk.stats.image_tokens = image_tokens
            yield chunk

    def _image_positions(self, messages: Sequence[Message]) -> int:
        """Prompt positions the images take: none here (the vision engine counts them)."""
        return 0

    def _replay(
        self, text: str, delay: float, prompt_tokens: int, max_tokens: int, stop: Sequence[str]
    ) -> Iterator[Chunk]:
        stats = GenerationStats(prompt_tokens=prompt_tokens, prompt_tokens_evaluated=prompt_tokens)
        start = time.perf_counter()
        for s in stop:
            if s and s in text:
                text = text[: text.index(s)]
        splitter = ThoughtSplitter()
        pieces = _PIECE.findall(text)
        stats.stop_reason = "stop"
        if len(pieces) > max_tokens:
            pieces = pieces[:max_tokens]
            stats.stop_reason = "length"
        first = True
        try:
            for piece in pieces:
                if delay:
                    time.sleep(delay)
                if first:
                    stats.time_to_first_token_s = stats.prefill_s = time.perf_counter() - start
                    first = False
                stats.completion_tokens += 1
                yield from splitter.feed(piece)
            yield from splitter.finish()
        except GeneratorExit:
            stats.stop_reason = "interrupted"
            raise
        stats.decode_s = time.perf_counter() - start - stats.prefill_s
        yield Chunk("stats", stats=stats)

    def _log(self, call: ScriptedCall) -> None:
        if self.log_path is None:
            return
        record = {
            "messages": [{"role": m.role, "content": m.content,
                          "images": [{"label": i.label, "width": i.width, "height": i.height,
                                      "digest": i.digest} for i in m.images]}
                         for m in call.messages],
            "prompt": call.prompt, "max_tokens": call.max_tokens, "think": call.think,
            "grammar": call.grammar,
        }
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        """Nothing to free; tests check who closed it."""
        self.closed = True


@dataclass
class ScriptedVisionEngine(ScriptedEngine):
    """The scripted engine with eyes: each image takes `tokens_per_image` prompt positions."""

    tokens_per_image: int = 256

    @property
    def takes_images(self) -> bool:
        return True

    def image_tokens(self, image: ImageData) -> int:
        return self.tokens_per_image

    def _image_positions(self, messages: Sequence[Message]) -> int:
        return sum(self.image_tokens(i) for m in messages for i in m.images)
