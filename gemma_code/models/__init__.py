"""The model registry: names and aliases -> GGUF files (registry.py), downloads (pull.py) and the
GGUF header reader (gguf_header.py). Importing the package loads neither llama.cpp nor numpy."""

from __future__ import annotations

from gemma_code.models.gguf_header import GGUFInfo, inspect_gguf, is_gguf
from gemma_code.models.registry import (
    LocalModel,
    ModelEntry,
    bundled_registry_file,
    default_model_name,
    entry_path,
    find_entry,
    list_local,
    registry,
    resolve_model,
    suggest_names,
    user_registry_file,
)

__all__ = [
    "GGUFInfo", "LocalModel", "ModelEntry", "bundled_registry_file", "default_model_name",
    "entry_path", "find_entry", "inspect_gguf", "is_gguf", "list_local", "registry",
    "resolve_model", "suggest_names", "user_registry_file",
]
