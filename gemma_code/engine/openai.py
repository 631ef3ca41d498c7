"""An engine for any OpenAI-compatible chat server: llama-server, vLLM, Ollama, `gemma-code serve`.

Streams /v1/chat/completions over SSE with the standard library. Reasoning arrives either as
`reasoning_content`/`reasoning` deltas (llama-server, vLLM with a reasoning parser, Ollama) or
as Gemma 4 channel tags inside the content (split with ThoughtSplitter).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, GenerationStats, Message, ModelInfo
from gemma_code.engine.chat_templates import FORMATS, ThoughtSplitter, detect_format
from gemma_code.engine.openai_http import HttpClient, HttpStatusError, iter_sse
from gemma_code.engine.openai_wire import CallDeltas, wire_messages
from gemma_code.errors import ConfigError, EngineError, GemmaCodeError, ModelNotFoundError

DEFAULT_REMOTE_N_CTX = 8192  # when neither the settings nor the server say
CHARS_PER_TOKEN = 3.5  # the flagged estimate when nothing can tokenize


def guess_format(name: str) -> str:
    """Prompt format from a served model's name, for prompt-size checks."""
    low = name.lower().replace("_", "-")
    if "gemma-4" in low or "gemma4" in low:
        return "gemma4"
    if any(tag in low for tag in ("gemma-3", "gemma3", "gemma-2", "gemma2")):
        return "gemma3"
    return "plain"


def request_body(
    model: str, messages: Sequence[Message], *, max_tokens: int, think: bool,
    grammar: str | None, stop: Sequence[str], temperature: float, top_p: float, top_k: int,
    seed: int,
) -> dict[str, Any]:
    """The chat-completions request; extra fields are ones llama-server and vLLM read and
    other servers ignore."""
    wire, tools = wire_messages(messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": wire,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        # Gemma 4's template reads enable_thinking (llama-server --jinja, vLLM)
        "chat_template_kwargs": {"enable_thinking": think},
    }
    if tools:
        body["tools"] = tools
    if seed >= 0:
        body["seed"] = seed
    if stop:
        body["stop"] = list(stop)
    if grammar:
        body["grammar"] = grammar  # llama-server and llama-cpp-python's server
    return body


class StreamState:
    """Folds chat-completion chunks into Chunks and GenerationStats."""

    def __init__(self, start: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.stats = GenerationStats()
        self.start = start
        self.clock = clock
        self.first_at: float | None = None
        self.pieces = 0  # content/reasoning deltas: one token each on llama.cpp servers
        self.finished = False  # a finish_reason or [DONE] arrived
        self.usage = False
        self.timings: dict[str, Any] = {}
        self.splitter = ThoughtSplitter()
        self.calls = CallDeltas()

    def _seen_token(self) -> None:
        self.pieces += 1
        if self.first_at is None:
            self.first_at = self.clock()

    def feed(self, event: dict[str, Any]) -> Iterator[Chunk]:
        """Chunks for one decoded SSE event."""
        if "error" in event and not event.get("choices"):
            err = event["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise EngineError(f"the server failed mid-answer: {message}")
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self._seen_token()
                yield Chunk("thought", str(reasoning))
            content = delta.get("content")
            if content:
                self._seen_token()
                yield from self.splitter.feed(str(content))
            if delta.get("tool_calls"):
                self.calls.feed(delta["tool_calls"])
            reason = choice.get("finish_reason")
            if reason:
                self.finished = True
                self.stats.stop_reason = "length" if reason == "length" else "stop"
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = True
            self.stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.stats.completion_tokens = int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details") or {}
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            if cached is not None:
                self.stats.prompt_tokens_reused = int(cached)
        timings = event.get("timings")
        if isinstance(timings, dict):
            self.timings = timings

    def finish(self, estimate_prompt: Callable[[], int]) -> Iterator[Chunk]:
        """Flush held-back text (and any tool calls, in Gemma 4's notation), then the stats."""
        native = self.calls.native()
        if native:
            yield from self.splitter.feed(native)
        yield from self.splitter.finish()
        end = self.clock()
        stats = self.stats
        first = self.first_at if self.first_at is not None else end
        stats.time_to_first_token_s = first - self.start
        stats.prefill_s = stats.time_to_first_token_s
        stats.decode_s = end - first
        if not self.usage:
            stats.completion_tokens = self.pieces
            stats.prompt_tokens = estimate_prompt()
        t = self.timings  # llama-server: what it evaluated vs took from its cache
        if "prompt_n" in t:
            stats.prompt_tokens_evaluated = int(t["prompt_n"])
            stats.prompt_tokens_reused = int(t.get("cache_n", stats.prompt_tokens_reused))
            if t.get("prompt_ms"):
                stats.prefill_s = float(t["prompt_ms"]) / 1000
            if t.get("predicted_ms"):
                stats.decode_s = float(t["predicted_ms"]) / 1000
        else:
            stats.prompt_tokens_evaluated = max(stats.prompt_tokens - stats.prompt_tokens_reused, 0)
        yield Chunk("stats", stats=stats)


class OpenAIEngine:
    """The Engine protocol over an OpenAI-compatible server."""

    def __init__(self, settings: Settings, client: HttpClient | None = None) -> None:
        self.settings = settings
        self.client = client or HttpClient(
            settings.base_url,
            api_key=os.environ.get(settings.api_key_env) or None,
            api_key_env=settings.api_key_env,
            timeout_s=settings.request_timeout,
            retries=settings.request_retries,
        )
        self._tokenizer: Callable[[str], int] | None = None
        self._bos_overhead = 0
        self._counted: dict[str, int] = {}
        self.token_counting = "unknown"  # server | local | estimate
        self.model = ""
        self.info = self._probe()

    # --- discovery -------------------------------------------------------------------------

    def _probe(self) -> ModelInfo:
        """Ask the server what it serves and how big its context is."""
        served: list[dict[str, Any]] = []
        try:
            listing = self.client.json("GET", "/models")
            served = [m for m in listing.get("data") or [] if isinstance(m, dict)]
        except (ModelNotFoundError, HttpStatusError):
            pass  # some servers have no /models; fall back to the configured name
        self.model = self._choose_model([str(m.get("id", "")) for m in served])
        props: dict[str, Any] = {}
        try:
            found = self.client.json("GET", "/props", root=True)
            props = found if isinstance(found, dict) else {}
        except (ModelNotFoundError, HttpStatusError):
            pass
        n_ctx = self.settings.n_ctx
        notes = [f"server {self.settings.base_url}"]
        if n_ctx <= 0:
            n_ctx = _server_n_ctx(props, served, self.model)
            if n_ctx <= 0:
                n_ctx = DEFAULT_REMOTE_N_CTX
                notes.append(f"the server did not say its context size; assuming {n_ctx:,} (set n_ctx)")
        fmt = str(props.get("chat_format") or "")
        if fmt not in FORMATS:
            template = props.get("chat_template")
            fmt = (
                detect_format("", template) if isinstance(template, str) and template
                else guess_format(self.model)
            )
        return ModelInfo(
            name=self.model, n_ctx=n_ctx, arch=str(props.get("arch") or "remote"),
            quant=str(props.get("quant") or "unknown"), backend="remote", chat_format=fmt,
            kv_type=str(props.get("kv_type") or "unknown"), notes=tuple(notes),
        )

    def _choose_model(self, ids: list[str]) -> str:
        wanted = self.settings.openai_model
        if wanted:
            return wanted
        ids = [i for i in ids if i]
        if self.settings.model in ids or not ids:
            return self.settings.model
        if len(ids) == 1:
            return ids[0]
        raise ConfigError(
            f"{self.settings.base_url} serves {len(ids)} models ({', '.join(ids[:8])}) and "
            f"{self.settings.model!r} is not one of them",
            "choose one with --model NAME or `openai_model` in config",
        )

    # --- tokens ----------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Exact through the server's tokenizer when it has one, else local, else estimated."""
        if self._tokenizer is None:
            self._tokenizer = self._find_tokenizer()
        # a prompt counted for the fit check is counted again for the stats when the server
        # sends no usage block; remember the last few so that costs no second round trip
        if text not in self._counted:
            if len(self._counted) >= 8:
                self._counted.pop(next(iter(self._counted)))
            self._counted[text] = self._tokenizer(text)
        return self._counted[text]

    def _find_tokenizer(self) -> Callable[[str], int]:
        for name, probe in (
            ("llama-server /tokenize", self._tokenize_llama_server),
            ("vLLM /tokenize", self._tokenize_vllm),
            ("llama-cpp-python /extras/tokenize", self._tokenize_extras),
        ):
            try:
                # the empty text measures what the endpoint adds (a BOS) so counts exclude it
                self._bos_overhead = probe("")
            except (ModelNotFoundError, HttpStatusError, KeyError, TypeError, ValueError):
                continue
            self.token_counting = f"server ({name})"
            return lambda text, probe=probe: max(probe(text) - self._bos_overhead, 0)  # type: ignore[misc]
        local = _local_tokenizer(self.settings)
        if local is not None:
            self.token_counting = "local tokenizer"
            return local
        self.token_counting = "estimate"
        self.info = _with_note(
            self.info, "token counts are estimates: the server has no tokenize endpoint"
        )
        return lambda text: math.ceil(len(text) / CHARS_PER_TOKEN)

    def _tokenize_llama_server(self, text: str) -> int:
        return len(self.client.json("POST", "/tokenize", {"content": text}, root=True)["tokens"])

    def _tokenize_vllm(self, text: str) -> int:
        payload = {"model": self.model, "prompt": text, "add_special_tokens": False}
        return int(self.client.json("POST", "/tokenize", payload, root=True)["count"])

    def _tokenize_extras(self, text: str) -> int:
        payload = {"input": text, "model": self.model}
        return len(self.client.json("POST", "/extras/tokenize", payload, root=True)["tokens"])

    # --- generation ------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        think: bool = False,
        grammar: str | None = None,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        speculative: bool = False,  # the server decides how it decodes
    ) -> Iterator[Chunk]:
        s = self.settings
        body = request_body(
            self.model, messages, max_tokens=max_tokens, think=think, grammar=grammar,
            stop=stop, temperature=s.temperature if temperature is None else temperature,
            top_p=s.top_p, top_k=s.top_k, seed=s.seed,
        )
        start = time.perf_counter()
        response = self.client.open("POST", "/chat/completions", body)
        url = self.client.url("/chat/completions")
        state = StreamState(start)
        try:
            for data in iter_sse(_lines(response)):
                if data.strip() == "[DONE]":
                    state.finished = True
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    raise EngineError(f"{url} sent a malformed event: {data[:120]!r}") from None
                if isinstance(event, dict):
                    yield from state.feed(event)
        except TimeoutError:
            raise self.client.timeout_error(url) from None
        except GeneratorExit:
            state.stats.stop_reason = "interrupted"
            raise
        except (OSError, ConnectionError) as exc:
            if isinstance(exc, GemmaCodeError):
                raise
            raise EngineError(f"the connection to {url} broke mid-answer: {exc}") from None
        finally:
            response.close()
        if not state.finished:
            raise EngineError(
                f"{url} closed the stream before the answer finished",
                "the server's log says why (often: the prompt does not fit its context window)",
            )
        yield from state.finish(lambda: self._estimate_prompt(messages, think))

    def _estimate_prompt(self, messages: Sequence[Message], think: bool) -> int:
        """Prompt size when the server sent no usage block."""
        from gemma_code.engine.chat_templates import render

        try:
            return self.count_tokens(render(messages, self.info.chat_format, think=think))
        except GemmaCodeError:
            return 0

    def close(self) -> None:
        """Nothing is held between requests."""


def _lines(response: Any) -> Iterator[bytes]:
    while True:
        line = response.readline()
        if not line:
            return
        yield line


def _server_n_ctx(props: dict[str, Any], served: list[dict[str, Any]], model: str) -> int:
    """n_ctx from llama-server's /props or vLLM's max_model_len; 0 when unknown."""
    gen = props.get("default_generation_settings")
    for source in (gen if isinstance(gen, dict) else {}, props):
        value = source.get("n_ctx")
        if isinstance(value, int) and value > 0:
            return value
    for entry in served:
        if entry.get("id") == model and isinstance(entry.get("max_model_len"), int):
            return int(entry["max_model_len"])
    return 0


def _local_tokenizer(settings: Settings) -> Callable[[str], int] | None:
    """The configured model's own tokenizer when its GGUF is on this machine (vocab only)."""
    from gemma_code.models import resolve_model

    try:
        path = resolve_model(settings.model)
    except GemmaCodeError:
        return None
    try:
        import llama_cpp

        vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    except Exception:  # a broken local file must not stop a remote engine
        return None
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _with_note(info: ModelInfo, note: str) -> ModelInfo:
    import dataclasses

    return dataclasses.replace(info, notes=(*info.notes, note))


def load_openai_engine(settings: Settings) -> OpenAIEngine:
    """Connect to the server named by `base_url` (checked now, so errors come early)."""
    return OpenAIEngine(settings)
