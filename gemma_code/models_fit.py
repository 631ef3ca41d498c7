"""Which model suits this machine: installed models that fit its memory, and the advice to give.

A CPU-only machine cannot run the 16.8 GB default at a usable speed, but an installed small
model (the test model comes with `./install.sh --dev`) runs in seconds. Doctor and the
"model not downloaded" error recommend the largest installed model that fits, and say how
to make it the default.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from gemma_code.models import entry_path, list_local, registry

HEADROOM = 1.25  # weights plus KV cache, buffers and the rest of the machine


@dataclass(frozen=True)
class Available:
    """A model that can run here without a download."""

    name: str
    size: int  # bytes of the GGUF (approximate when not assembled yet)
    path: Path | None  # None: assembled from its installed package on first use


def available() -> list[Available]:
    """Models on disk, and pypi-sourced ones whose package is installed; largest first."""
    found = {m.name: Available(m.name, m.size, m.path) for m in list_local()}
    for entry in registry().values():
        if entry.name in found or entry.source != "pypi":
            continue
        if importlib.util.find_spec(entry.import_name) is not None and not entry_path(entry).is_file():
            found[entry.name] = Available(entry.name, entry.approx_size or 0, None)
    return sorted(found.values(), key=lambda a: -a.size)


def fitting(memory: int | None, models: list[Available] | None = None) -> list[Available]:
    """The available models whose weights fit `memory` bytes (all of them when unknown)."""
    models = available() if models is None else models
    if memory is None:
        return models
    return [m for m in models if m.size * HEADROOM <= memory]


def default_hint(name: str) -> str:
    """How to use `name` once, and how to make it the default."""
    return (f"use --model {name}, or make it the default: add model = \"{name}\" to the file "
            "`gemma-code config path` prints (`gemma-code config edit` opens it)")
