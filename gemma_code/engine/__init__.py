"""Model runtimes behind one protocol; `load_engine` picks one from the settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import cast

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, Engine, GenerationStats, Message, ModelInfo
from gemma_code.errors import ConfigError

__all__ = [
    "Chunk", "Engine", "GenerationStats", "Message", "ModelInfo", "load_engine", "open_engine",
    "set_engine_factory",
]

ENGINES = ("llamacpp", "openai", "scripted")

_factory: Callable[[Settings], Engine] | None = None


def set_engine_factory(factory: Callable[[Settings], Engine] | None) -> None:
    """The one test seam: every command gets its engine from `factory` while it is set."""
    global _factory
    _factory = factory


def load_engine(settings: Settings) -> Engine:
    """Create the engine the settings name, wrapped so no prompt carries a secret value."""
    from gemma_code.engine.redacting import RedactingEngine

    return cast(Engine, RedactingEngine(_load_engine(settings)))


def _load_engine(settings: Settings) -> Engine:
    """The engine the settings name; heavy runtimes are imported only here."""
    if _factory is not None:
        return _factory(settings)
    if settings.engine == "scripted":
        from gemma_code.engine.scripted import ScriptedEngine

        if not settings.script:
            raise ConfigError(
                "the scripted engine needs a script file",
                "set GEMMA_CODE_SCRIPT=replies.json (or `script` in config)",
            )
        return ScriptedEngine.from_file(settings.script)
    if settings.engine == "llamacpp":
        from gemma_code.engine.llamacpp import load_llamacpp_engine

        return load_llamacpp_engine(settings)
    if settings.engine == "openai":
        from gemma_code.engine.openai import load_openai_engine

        return load_openai_engine(settings)
    raise ConfigError(
        f"unknown engine {settings.engine!r}", f"choose one of: {', '.join(ENGINES)}"
    )


@contextmanager
def open_engine(
    settings: Settings, *, while_loading: AbstractContextManager[object] | None = None
) -> Iterator[Engine]:
    """`load_engine(settings)` for one `with` block; closed when the block ends, however it ends.

    `while_loading` (a spinner, say) is entered for the load alone.
    """
    with while_loading or nullcontext():
        engine = load_engine(settings)
    try:
        yield engine
    finally:
        engine.close()
