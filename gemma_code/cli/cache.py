"""`gemma-code cache info|clear`: the persistent prompt (KV) cache on disk; `clear` empties every cache."""

from __future__ import annotations

import json
import time

import typer

from gemma_code.cli import app
from gemma_code.cli.common import JsonOpt, command, settings_from

CACHE_HELP = """The caches: saved prompt (KV) states, so `ask` and `chat` skip re-reading the \
context, and the context builder's tags and token counts.

Each prompt state is the model's state after the same system prompt and repository context. \
The context cache (one sqlite file) is trimmed past 512 MiB. Both are rebuilt as needed.

Examples:

  gemma-code cache info

  gemma-code cache clear

Its size is bounded by `prompt_cache_mb` (least recently used states go first); \
`prompt_cache = false` in config turns it off. `cache clear` also empties the context cache \
(tags, word index, token counts) and the cached reviews. Every cache is checksummed: a damaged \
entry is dropped and rebuilt on its own.
"""

cache_app = typer.Typer(help=CACHE_HELP, no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(cache_app, name="cache")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


@command(cache_app, "info", help="Where the prompt cache is, what it holds, and its limit.\n\n"
         "Example: gemma-code cache info --json")
def info(json_out: JsonOpt = False) -> None:
    from gemma_code.context import cache as context_cache
    from gemma_code.engine.prompt_cache import PromptCacheStore

    settings = settings_from().settings
    store = PromptCacheStore(max_bytes=settings.prompt_cache_mb << 20)
    entries = store.entries()
    total = sum(e.size for e in entries)
    if json_out:
        typer.echo(json.dumps({
            "folder": str(store.folder), "enabled": settings.prompt_cache, "entries": len(entries),
            "bytes": total, "limit_bytes": store.max_bytes,
            "states": [{"key": e.key, "model": e.model, "tokens": len(e.tokens), "prefix_tokens": e.n_prefix,
                        "bytes": e.size, "last_used": e.last_used} for e in entries],
            "context_cache": {"file": str(context_cache.cache_file()),
                              "bytes": context_cache.disk_bytes(), "limit_bytes": context_cache.MAX_BYTES},
        }))
        return
    state = "on" if settings.prompt_cache else "off (prompt_cache = false)"
    typer.echo(f"prompt cache: {store.folder} ({state})")
    typer.echo(f"{len(entries)} state(s), {_mib(total)} of {_mib(store.max_bytes)}")
    typer.echo(f"context cache: {context_cache.cache_file()} "
               f"({_mib(context_cache.disk_bytes())} of {_mib(context_cache.MAX_BYTES)})")
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        typer.echo(f"  {e.key[:12]}  {e.model}  {len(e.tokens):,} tokens "
                   f"({e.n_prefix:,} prefix)  {_mib(e.size)}  used {used}")


@command(cache_app, "clear", help="Delete every cache: saved prompt states, the context cache and "
         "cached reviews.\n\nExample: gemma-code cache clear")
def clear() -> None:
    from gemma_code.context import cache as context_cache
    from gemma_code.engine.prompt_cache import PromptCacheStore
    from gemma_code.review import cache as review_cache

    count, freed = PromptCacheStore().clear()
    typer.echo(f"removed {count} state(s), {_mib(freed)}")
    typer.echo(f"removed the context cache, {_mib(context_cache.clear())}")
    reviews, review_bytes = review_cache.clear()
    typer.echo(f"removed {reviews} cached review(s), {_mib(review_bytes)}")
