"""Persistent prompt cache: the KV state of an evaluated prefix, saved to disk and restored later.

Once the system turn (rules + repository context) has been evaluated, the engine's KV state
is saved with llama.cpp's file-based state save, keyed by the model, the settings that shape
the state, and the prefix tokens. The next run (an `ask`, a new chat) looks for the stored
state sharing the longest token prefix with its prompt and loads it; the engine then reuses
that prefix and evaluates only the rest. Disk use is bounded: least recently used entries go.

Each state file's CRC-32 and a checksum of its description are stored with it and checked
before the state is loaded: a damaged entry (a flipped byte, a torn write) is removed and
counts as a miss, never as a state to load. Files are fsynced before they are renamed in.

Works with a KVCacheEngine (engine/base.py, docs/CONTRACTS.md), keyed by the tokens it
really evaluates (`prompt_tokens`); with other engines it does nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code import paths
from gemma_code.atomic import write_text_atomic
from gemma_code.engine.base import Chunk, Engine, GenerationStats, KVCacheEngine, Message, as_kv_engine
from gemma_code.engine.chat_templates import render
from gemma_code.engine.segments import evaluated_tokens
from gemma_code.integrity import file_crc, intact, sealed

if TYPE_CHECKING:
    from gemma_code.config import Settings

MIN_PREFIX_TOKENS = 256  # shorter prefixes are cheaper to evaluate than to load from disk
META = ".json"
STATE = ".kv"


def cache_folder() -> Path:
    return paths.cache_dir() / "prompt-cache"


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def signature(engine: KVCacheEngine, settings: Settings) -> str:
    """What must match for a saved state to be loadable: model file, context and cache layout."""
    info = engine.info
    model: dict[str, Any] = {"name": info.name, "path": info.path}
    if info.path:
        with contextlib.suppress(OSError):
            st = Path(info.path).stat()
            model.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    material = {
        "model": model, "n_ctx": info.n_ctx, "kv_type": info.kv_type, "arch": info.arch,
        "quant": info.quant, "backend": info.backend, "format": info.chat_format,
        "swa_full": settings.swa_full, "flash_attn": settings.flash_attn,
        "runtime": _runtime_version(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _runtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return "none"


def entry_key(sig: str, prefix: Sequence[int]) -> str:
    digest = hashlib.sha256(sig.encode())
    digest.update(b"\0" + ",".join(map(str, prefix)).encode())
    return digest.hexdigest()[:32]


@dataclass
class Entry:
    """One saved state: its tokens (the first `n_prefix` are the prefix it is keyed by)."""

    key: str
    sig: str
    model: str
    tokens: list[int]
    n_prefix: int
    size: int
    created: float
    folder: Path
    crc32: int = -1

    @property
    def state_path(self) -> Path:
        return self.folder / f"{self.key}{STATE}"

    @property
    def meta_path(self) -> Path:
        return self.folder / f"{self.key}{META}"

    @property
    def last_used(self) -> float:
        try:
            return self.state_path.stat().st_mtime
        except OSError:
            return 0.0


class PromptCacheStore:
    """The folder of saved states, bounded to `max_bytes` by least-recent use."""

    def __init__(self, folder: Path | None = None, max_bytes: int = 8 << 30) -> None:
        self.folder = folder or cache_folder()
        self.max_bytes = max_bytes

    def entries(self) -> list[Entry]:
        """Every complete entry, most recently used first; broken ones are removed."""
        found: list[Entry] = []
        if not self.folder.is_dir():
            return found
        for meta in self.folder.glob(f"*{META}"):
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
                if not intact(data):
                    raise ValueError("damaged description")
                entry = Entry(
                    key=str(data["key"]), sig=str(data["sig"]), model=str(data.get("model", "")),
                    tokens=[int(t) for t in data["tokens"]], n_prefix=int(data["n_prefix"]),
                    size=int(data["size"]), created=float(data["created"]), folder=self.folder,
                    crc32=int(data["crc32"]),
                )
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._remove(meta.name.removesuffix(META))
                continue
            if entry.state_path.is_file():
                found.append(entry)
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def lookup(self, sig: str, tokens: Sequence[int]) -> Entry | None:
        """The longest compatible entry whose tokens all begin `tokens`.

        Only whole prefixes count: loading a state and then cutting it back would make llama.cpp
        re-evaluate everything when the sliding-window layers cannot roll back.
        """
        best: Entry | None = None
        for entry in self.entries():
            n = len(entry.tokens)
            if entry.sig != sig or n > len(tokens) or (best is not None and n <= len(best.tokens)):
                continue
            if common_prefix(entry.tokens, tokens) == n:
                best = entry
        return best

    def put(self, engine: KVCacheEngine, sig: str, prefix: Sequence[int], tokens: list[int]) -> Entry:
        """Save the engine's KV state (holding `tokens`) under the key of `prefix`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = entry_key(sig, prefix)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        self._remove(key)  # a description never points at a state file it was not written for
        try:
            size = int(engine.save_kv(str(tmp)))
            crc = file_crc(tmp, sync=True)
            os.replace(tmp, self.folder / f"{key}{STATE}")
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        entry = Entry(key, sig, engine.info.name, list(tokens), len(prefix), size, time.time(),
                      self.folder, crc)
        meta = {
            "key": key, "sig": sig, "model": entry.model, "tokens": entry.tokens,
            "n_prefix": entry.n_prefix, "size": size, "created": entry.created, "crc32": crc,
        }
        write_text_atomic(entry.meta_path, json.dumps(sealed(meta)))
        self.evict(keep={key})
        return entry

    def verify(self, entry: Entry) -> bool:
        """Whether the entry's state file still holds the bytes that were saved (else it is removed)."""
        try:
            ok = file_crc(entry.state_path) == entry.crc32
        except OSError:
            ok = False
        if not ok:
            self._remove(entry.key)
        return ok

    def touch(self, entry: Entry) -> None:
        with contextlib.suppress(OSError):
            os.utime(entry.state_path)

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    def evict(self, keep: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
        """Remove least recently used entries until the folder fits `max_bytes`."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed: list[str] = []
        for entry in reversed(entries):  # oldest first
            if total <= self.max_bytes:
                break
            if entry.key in keep:
                continue
            self._remove(entry.key)
            total -= entry.size
            removed.append(entry.key)
        return removed

    def remove(self, entry: Entry) -> None:
        self._remove(entry.key)

    def _remove(self, key: str) -> None:
        for suffix in (STATE, META):
            with contextlib.suppress(OSError):
                (self.folder / f"{key}{suffix}").unlink()

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and stray temporary files); returns (entries, bytes) freed."""
        entries = self.entries()
        freed = sum(e.size for e in entries)
        for entry in entries:
            self._remove(entry.key)
        if self.folder.is_dir():
            for stray in self.folder.iterdir():
                with contextlib.suppress(OSError):
                    stray.unlink()
        return len(entries), freed


class PrefixCache:
    """One run's use of the store, around the first generation on a prompt.

    `before()` restores the longest saved prefix of the prompt; on a miss it has the engine
    evaluate exactly the prefix (the system turn) and saves that state, so a later run can
    extend it without cutting anything back. Inert (no store) for engines without a KV cache.
    """

    def __init__(self, engine: Engine, settings: Settings, store: PromptCacheStore | None) -> None:
        self.engine = as_kv_engine(engine)
        if self.engine is None:
            store = None
        self.settings = settings
        self.store = store
        self.sig = ""
        self.prefix: list[int] = []
        self.saved = False
        self.restored_tokens = 0
        self.prefill_tokens = 0
        self.prefill_s = 0.0
        self.save_s = 0.0
        self.notes: list[str] = []

    @classmethod
    def open(cls, engine: Engine, settings: Settings, store: PromptCacheStore | None = None,
             ) -> PrefixCache:
        """A cache for this engine; inert when disabled or when the engine has no KV cache."""
        if not settings.prompt_cache or as_kv_engine(engine) is None:
            return cls(engine, settings, None)
        limit = settings.prompt_cache_mb << 20
        return cls(engine, settings, store or PromptCacheStore(max_bytes=limit))

    def _prefix_of(self, engine: KVCacheEngine, messages: Sequence[Message], think: bool,
                   ) -> tuple[list[int], list[int]] | None:
        """The prompt's tokens up to the end of the system text, and all its tokens."""
        if not messages or messages[0].role != "system":
            return None
        system = messages[0].content.strip()
        # with the engine's own tokenization: the system turn and an empty user turn, cut
        # where the system text ends (the template text after it is all control strings)
        upto = [messages[0], Message("user", "")]
        text = render(upto, engine.info.chat_format, think=think)
        at = text.find(system) if system else -1
        if at < 0:
            return None
        tokens = evaluated_tokens(engine, messages, think=think)
        if len(tokens) >= int(engine.info.n_ctx):
            return None  # the prompt does not fit; the task reports that itself
        head = evaluated_tokens(engine, upto, think=think)
        head = head[: len(head) - len(engine.tokenize(text[at + len(system):]))]
        # tokens at the cut may merge differently; keep only what the full prompt agrees on
        return tokens[: common_prefix(head, tokens)], tokens

    def before(self, messages: Sequence[Message], *, think: bool) -> str | None:
        """Restore the longest saved start of the prompt, or build and save its system prefix.

        Returns a notice saying what happened, or None.
        """
        engine = self.engine
        if self.store is None or engine is None:
            return None
        found = self._prefix_of(engine, messages, think)
        if found is None or len(found[0]) < MIN_PREFIX_TOKENS:
            self.store = None
            return None
        prefix, tokens = found
        self.prefix = prefix
        self.sig = signature(engine, self.settings)
        in_memory = common_prefix(list(engine.kv_tokens()), tokens)
        # a saved conversation (chat --continue) or system prefix; one token must stay to evaluate
        entry = self.store.lookup(self.sig, tokens[:-1])
        if entry is not None and len(entry.tokens) > in_memory and not self.store.verify(entry):
            self.notes.append("prompt cache: a damaged saved state was removed (it will be rebuilt)")
            entry = None
        if entry is not None and len(entry.tokens) > in_memory:
            try:
                ok = bool(engine.load_kv(str(entry.state_path), entry.tokens))
            except Exception:  # a torn or incompatible file is a miss, never a failure
                ok = False
            if ok:
                self.store.touch(entry)
                self.restored_tokens = in_memory = len(entry.tokens)
            else:
                self.store.remove(entry)
        if in_memory >= len(prefix):
            self.saved = True  # already evaluated, in this process or restored from disk
            if self.restored_tokens:
                return f"prompt cache: restored {self.restored_tokens:,} prompt tokens from disk"
            return None
        start = time.perf_counter()
        evaluated = len(prefix) - in_memory
        # evaluates the prefix only: the state then ends exactly at the system turn
        for chunk in engine.generate_tokens(prefix, max_tokens=0, temperature=0.0):
            if chunk.stats is not None:
                evaluated = chunk.stats.prompt_tokens_evaluated
        self.prefill_tokens = evaluated
        self.prefill_s = time.perf_counter() - start
        return self._save(engine, list(engine.kv_tokens()))

    def save_state(self) -> str | None:
        """Save the engine's whole KV state (a chat's conversation, for `chat --continue`)."""
        if self.store is None or self.engine is None or not self.sig:
            return None
        kv = list(self.engine.kv_tokens())
        if len(kv) <= len(self.prefix) or kv[: len(self.prefix)] != self.prefix:
            return None
        if any(e.tokens == kv for e in self.store.entries()):
            return None
        try:
            entry = self.store.put(self.engine, self.sig, kv, kv)
        except Exception as exc:  # the chat is ending anyway; say so and go
            return f"prompt cache: could not save the conversation ({type(exc).__name__}: {exc})"
        return f"prompt cache: saved the conversation's {len(entry.tokens):,} tokens for --continue"

    def account(self, stats: GenerationStats) -> None:
        """Count a prefix evaluated by `before()` as evaluated by the turn, not reused."""
        if self.prefill_tokens:
            moved = min(self.prefill_tokens, stats.prompt_tokens_reused)
            stats.prompt_tokens_reused -= moved
            stats.prompt_tokens_evaluated += moved
            stats.prefill_s += self.prefill_s
            stats.time_to_first_token_s += self.prefill_s + self.save_s
            self.prefill_tokens = 0

    def wrap(
        self, chunks: Iterator[Chunk], messages: Sequence[Message], *, think: bool
    ) -> Generator[Chunk, None, None]:
        """`chunks` with the cache around them: restore first, honest stats, save when done."""
        try:
            note = self.before(messages, think=think)
            if note:
                self.notes.append(note)
            for chunk in chunks:
                if chunk.stats is not None:
                    self.account(chunk.stats)
                yield chunk
        finally:
            if isinstance(chunks, Generator):  # stop the engine's generator with ours
                chunks.close()

    def _save(self, engine: KVCacheEngine, kv: list[int]) -> str | None:
        self.saved = True
        assert self.store is not None
        if kv[: len(self.prefix)] != self.prefix:
            return None  # the engine does not hold the prefix (another prompt ran since)
        start = time.perf_counter()
        try:
            entry = self.store.put(engine, self.sig, self.prefix, kv)
        except Exception as exc:  # a full disk must not fail the answer
            return f"prompt cache: could not save the state ({type(exc).__name__}: {exc})"
        self.save_s = time.perf_counter() - start
        return (f"prompt cache: saved {len(entry.tokens):,} prompt tokens "
                f"({entry.size / 2**20:,.1f} MiB, {self.save_s:.2f} s)")
