"""Which folders' own .gemma-code.toml may choose where code and keys go.

A repository is untrusted input. Its config file may tune generation and context, but the
keys in RESTRICTED choose the engine, the server the prompt goes to, the variable whose
value is sent as a key, or files that are loaded or run; those apply only in a folder the
user trusts:

- listed in the user's own config.toml: ``trusted_folders = ["~/src/work"]`` (that folder
  and everything below it, whatever its config says);
- or trusted with ``gemma-code config trust`` or at the prompt a terminal shows, which
  records the folder *and the exact bytes* of its config file (a changed file is asked
  about again, as direnv does).

Nothing is trusted by default, and nothing asks when no one can answer (the git hook, CI,
piped input).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from gemma_code import paths
from gemma_code.atomic import write_text_atomic

# Settings a repository's .gemma-code.toml may set only in a trusted folder.
RESTRICTED = frozenset({
    "engine",  # which runtime: a remote server instead of the local model
    "base_url",  # where the prompt (code, diffs) is sent
    "api_key_env",  # which environment variable's value is sent as the bearer key
    "model",  # a GGUF path is a file parsed and loaded (registry names are allowed)
    "tokenizer",  # a GGUF path
    "script",  # the scripted engine reads it and appends a log wherever it says
})
STORE = "trusted-folders"  # in the config folder: one "<sha256> <folder>" line per trust


def store_file() -> Path:
    return paths.config_dir() / STORE


def digest(path: Path) -> str:
    """SHA-256 of a config file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _under(folder: Path, parent: Path) -> bool:
    return folder == parent or parent in folder.parents


def is_trusted(project: Path, user_folders: list[str]) -> bool:
    """True when the user trusts the folder holding `project` (a .gemma-code.toml)."""
    folder = project.parent.resolve()
    for entry in user_folders:
        if _under(folder, Path(entry).expanduser().resolve()):
            return True
    wanted = f"{digest(project)} {folder}"
    return wanted.split(" ", 1)[0] != "" and wanted in _stored_lines()


def _stored_lines() -> list[str]:
    try:
        return store_file().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def record_trust(project: Path) -> Path:
    """Trust the folder of `project` with its current bytes; returns the store file."""
    folder = project.parent.resolve()
    keep = [line for line in _stored_lines() if line.split(" ", 1)[-1] != str(folder)]
    keep.append(f"{digest(project)} {folder}")
    store = store_file()
    store.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(store, "\n".join(keep) + "\n")
    return store


def forget_trust(folder: Path) -> bool:
    """Remove a folder recorded by `record_trust`; False when it was not there."""
    resolved = str(folder.resolve())
    lines = _stored_lines()
    keep = [line for line in lines if line.split(" ", 1)[-1] != resolved]
    if len(keep) == len(lines):
        return False
    write_text_atomic(store_file(), "".join(line + "\n" for line in keep))
    return True


def can_ask(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Whether a person at a terminal can answer a trust question now.

    Never in the git hook (GEMMA_CODE_HOOK, and git gives hooks no stdin), never in CI.
    """
    import sys

    env = os.environ if environ is None else environ
    if env.get("CI") or env.get("GEMMA_CODE_HOOK") or env.get("GEMMA_CODE_NO_PROMPT"):
        return False
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
