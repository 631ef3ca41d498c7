"""Where gemma-code keeps its files: GEMMA_CODE_HOME overrides the platform directories."""

from __future__ import annotations

import os
from pathlib import Path

APP = "gemma-code"


def _home() -> Path | None:
    value = os.environ.get("GEMMA_CODE_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    """User configuration (config.toml)."""
    home = _home()
    if home:
        return home / "config"
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    """Persistent user data: sessions, undo journal, history."""
    home = _home()
    if home:
        return home / "data"
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """Re-creatable data: tag and token caches, prompt (KV) caches."""
    home = _home()
    if home:
        return home / "cache"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP, appauthor=False))


def models_dir() -> Path:
    """Downloaded GGUF files; GEMMA_CODE_MODELS_DIR overrides."""
    value = os.environ.get("GEMMA_CODE_MODELS_DIR")
    if value:
        return Path(value).expanduser()
    return data_dir() / "models"


def user_config_file() -> Path:
    return config_dir() / "config.toml"
