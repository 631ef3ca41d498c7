"""Layered settings: defaults < user config.toml < ./.gemma-code.toml < GEMMA_CODE_* < flags.

Each value remembers where it came from, for `gemma-code config show`. A repository's
.gemma-code.toml is untrusted: the keys in trust.RESTRICTED (engine, server, key variable,
files loaded or run) apply from it only in a folder the user trusts (see trust.py).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gemma_code import paths, trust
from gemma_code.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECT_FILE = ".gemma-code.toml"
SIZABLE = ("budget", "max_tokens")  # lowered to suit a CPU when no layer sets them (engine/sizing.py)
ENV_PREFIX = "GEMMA_CODE_"


@dataclass
class Settings:
    """Every setting, with its default. Names are the config keys and GEMMA_CODE_<NAME> vars."""

    # model and engine
    model: str = "gemma-4-26b-a4b"  # registry name or path to a GGUF file
    engine: str = "llamacpp"  # llamacpp | openai | scripted
    n_ctx: int = 0  # 0: choose from the model and free memory
    n_gpu_layers: int = -1  # -1: every layer the build can offload
    kv_type: str = "auto"  # auto | f16 | q8_0 | q4_0
    flash_attn: bool = True
    swa_full: bool = False
    n_threads: int = 0  # 0: choose from the core count
    n_batch: int = 512  # also the most tokens one image may take (Gemma 4: 70 to 1,120)
    mmproj: str = ""  # the vision projector GGUF; "": the registry's, once pulled
    cpu_moe: str = "auto"  # auto | on | off: keep MoE expert tensors on the CPU
    # generation
    max_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 64
    seed: int = -1
    think: bool = False
    show_thoughts: bool = True
    # context builder
    context: bool = True
    budget: int = 32768  # tokens of repository context
    max_file_bytes: int = 1_000_000
    tokenizer: str = ""  # a GGUF whose vocabulary counts context tokens when no model is loaded
    # openai-compatible engine
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key_env: str = "OPENAI_API_KEY"
    request_timeout: float = 600.0
    openai_model: str = ""  # the served model's name; "": ask the server (or use `model`)
    request_retries: int = 3  # retries on HTTP 429 and 5xx, with exponential backoff
    # `gemma-code serve`
    serve_slots: int = 4  # conversations whose KV cache is kept in memory between requests
    serve_max_body_mb: int = 32  # larger request bodies are refused (HTTP 413)
    serve_cors_origins: str = ""  # comma-separated origins allowed by CORS; "": no CORS at all
    serve_allowed_hosts: str = ""  # extra Host header names accepted (DNS rebinding guard)
    # review hook
    fail_on: str = "high"
    fail_closed: bool = False
    review_timeout: float = 300.0
    # persistent prompt (KV) cache for ask and chat
    prompt_cache: bool = True
    prompt_cache_mb: int = 8192  # disk bound; least recently used states are removed
    # scripted engine (tests, demos): a JSON file of replies
    script: str = ""
    # the agent (`gemma-code run`, the chat's /mode); MCP servers are [mcp_servers.NAME] tables
    # of the user config only (gemma_code/tools/mcp.py), never of a repository's file
    agent_mode: str = "ask"  # plan | ask | auto-edit | full-auto
    agent_max_steps: int = 30
    command_timeout: float = 300.0  # seconds a run_command call may take
    # not a config key: the settings no layer set, which the llama.cpp engine may lower to
    # suit a CPU (engine/sizing.py); empty for Settings made in code
    sizable: tuple[str, ...] = field(default=(), repr=False, compare=False, metadata={"internal": True})


SOURCE_DEFAULT = "default"
SOURCE_ENV = "env"
SOURCE_FLAG = "flag"


@dataclass
class LoadedSettings:
    """Settings plus, for each key, where its value came from."""

    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, for stderr
    ignored: dict[str, Any] = field(default_factory=dict)  # project keys left out (untrusted)
    project: Path | None = None  # the .gemma-code.toml found, if any
    trusted_folders: list[str] = field(default_factory=list)  # from the user's config.toml


# Asked whether to trust a project file setting restricted keys ({key: value}); True = trust.
TrustPrompt = Callable[[Path, dict[str, Any]], bool]
USER_ONLY_KEY = "trusted_folders"


def _fields() -> dict[str, dataclasses.Field[Any]]:
    """The config keys: every Settings field but the internal ones."""
    return {f.name: f for f in fields(Settings) if not f.metadata.get("internal")}


def as_dict(settings: Settings) -> dict[str, Any]:
    """The config keys and their values."""
    return {name: getattr(settings, name) for name in _fields()}


# settings that take one of a few words
CHOICES: dict[str, tuple[str, ...]] = {
    "engine": ("llamacpp", "openai", "scripted"),
    "kv_type": ("auto", "f16", "q8_0", "q4_0"),
    "cpu_moe": ("auto", "on", "off"),
    "fail_on": ("critical", "high", "medium", "low", "info"),
    "agent_mode": ("plan", "ask", "auto-edit", "full-auto"),
}
# tables read elsewhere, and only from the user's own config file (they run programs)
USER_ONLY_TABLES = ("mcp_servers",)
# agent modes that act without asking: only the user (config, environment, flags) picks them
RAISED_MODES = ("auto-edit", "full-auto")

# numeric settings and their allowed range (low, high; None: open); flags use the same bounds
RANGES: dict[str, tuple[float | None, float | None]] = {
    "n_ctx": (0, None), "n_gpu_layers": (-1, None), "n_threads": (0, None), "n_batch": (1, None),
    "max_tokens": (1, None), "temperature": (0, None), "top_p": (0, 1), "top_k": (0, None),
    "seed": (-1, None), "budget": (0, None), "max_file_bytes": (1, None),
    "request_timeout": (0, None), "request_retries": (0, None), "review_timeout": (0, None),
    "prompt_cache_mb": (0, None), "agent_max_steps": (1, None), "command_timeout": (0, None),
}

_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(key: str, value: Any, origin: str) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    kind = type(getattr(Settings(), key))
    try:
        result = _convert(kind, value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: `{key}` must be {_KIND_NAMES[kind]}, not {value!r}",
            f"fix `{key}` in {origin}; `gemma-code config show` lists every key",
        ) from None
    choices = CHOICES.get(key)
    if choices and result not in choices:
        raise ConfigError(
            f"{origin}: `{key}` must be one of {', '.join(choices)}, not {value!r}",
            f"fix `{key}` in {origin}",
        )
    low, high = RANGES.get(key, (None, None))
    if (low is not None and result < low) or (high is not None and result > high):
        raise ConfigError(
            f"{origin}: `{key}` must be {_range_words(low, high)}, not {value!r}",
            f"fix `{key}` in {origin}",
        )
    return result


def _range_words(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def _convert(kind: type, value: Any) -> Any:
    """`value` as a `kind` (bool, int, float or str); ValueError when it is not one."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    if not isinstance(value, str):
        raise ValueError
    return value


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a settings file, naming the file in any error."""
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc})", f"fix or remove {path}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text", f"save {path} as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})", f"check {path}") from None
    return data


def _apply_file(
    loaded: LoadedSettings, path: Path, data: dict[str, Any] | None = None
) -> None:
    known = _fields()
    data = read_toml(path) if data is None else data
    for key, value in data.items():
        name = key.replace("-", "_")
        if name in USER_ONLY_TABLES:
            if path != paths.user_config_file():
                raise ConfigError(
                    f"{path}: `{key}` may only be set in your user config "
                    f"({paths.user_config_file()}): a repository cannot choose programs to run",
                    f"remove `{key}` from {path}",
                )
            continue
        if name not in known:
            raise ConfigError(
                f"{path}: unknown key `{key}`",
                "`gemma-code config show` lists every key; remove or rename it",
            )
        coerced = _coerce(name, value, str(path))
        if name == "agent_mode" and coerced in RAISED_MODES and path != paths.user_config_file():
            raise ConfigError(
                f"{path}: agent_mode = {coerced!r}: a repository's file may lower the agent's "
                "mode (plan, ask) but not raise it",
                f"remove agent_mode from {path}, or pass --mode yourself",
            )
        setattr(loaded.settings, name, coerced)
        loaded.sources[name] = str(path)
    loaded.files.append(path)


def _user_trusted_folders(data: dict[str, Any], path: Path) -> list[str]:
    """Pop `trusted_folders` (a list of folders) from the user's config.toml."""
    value = data.pop(USER_ONLY_KEY, data.pop(USER_ONLY_KEY.replace("_", "-"), []))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{path}: `{USER_ONLY_KEY}` must be a list of folders, not {value!r}",
            f'write it as {USER_ONLY_KEY} = ["~/src/my-project"]',
        )
    return value


def _restricted(data: dict[str, Any]) -> dict[str, Any]:
    """The keys of a project file that choose where code and keys go or what is loaded."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name == USER_ONLY_KEY or (name in trust.RESTRICTED and not _harmless(name, value)):
            out[key] = value
    return out


def _harmless(name: str, value: Any) -> bool:
    """A project may still pick a model by its registry name (not a path) and the default engine."""
    if name == "engine":
        return bool(value == Settings.engine)
    if name != "model" or not isinstance(value, str):
        return False
    from gemma_code.models import find_entry

    try:
        return find_entry(value) is not None
    except Exception:  # an unreadable registry: treat the name as a path
        return False


def _apply_project(loaded: LoadedSettings, path: Path, ask: TrustPrompt | None) -> None:
    """Apply a repository's .gemma-code.toml, leaving out restricted keys unless trusted."""
    data = read_toml(path)
    restricted = _restricted(data)
    if restricted and not trust.is_trusted(path, loaded.trusted_folders):
        if ask is not None and ask(path, restricted):
            trust.record_trust(path)
        else:
            for key in restricted:
                loaded.ignored[key] = data.pop(key)
            keys = ", ".join(f"`{k}`" for k in restricted)
            loaded.notes.append(
                f"{path}: ignored {keys} (a repository's config cannot choose where code and "
                f"keys go or what runs); to trust it: gemma-code config trust {path.parent}"
            )
    data.pop(USER_ONLY_KEY, None)
    _apply_file(loaded, path, data)


def project_file(start: Path | None = None) -> Path | None:
    """The nearest .gemma-code.toml from `start` up to its repository's root.

    Outside a repository only `start` itself is looked at: a file in a folder above (a shared
    /tmp, a home folder) never configures the work below it.
    """
    here = (start or Path.cwd()).resolve()
    from gemma_code.gitops import repo_root

    top = repo_root(here)
    root = top.resolve() if top is not None else None
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
        if root is None or folder == root or (folder / ".git").exists():
            return None
    return None


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    cwd: Path | None = None,
    environ: dict[str, str] | None = None,
    ask_trust: TrustPrompt | None = None,
) -> LoadedSettings:
    """Build the settings from every layer; `overrides` are the command-line flags (None = unset).

    `ask_trust`: asked (in a terminal) before an untrusted project file's restricted keys apply;
    None leaves them out with a note.
    """
    loaded = LoadedSettings(Settings(), dict.fromkeys(_fields(), SOURCE_DEFAULT))
    user = paths.user_config_file()
    if user.is_file():
        data = read_toml(user)
        loaded.trusted_folders = _user_trusted_folders(data, user)
        _apply_file(loaded, user, data)
    proj = project_file(cwd)
    if proj is not None and proj != user:
        loaded.project = proj
        _apply_project(loaded, proj, ask_trust)
    env = os.environ if environ is None else environ
    for name in _fields():
        var = ENV_PREFIX + name.upper()
        if var in env:
            setattr(loaded.settings, name, _coerce(name, env[var], f"${var}"))
            loaded.sources[name] = f"${var}"
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in loaded.sources:
            raise KeyError(name)
        setattr(loaded.settings, name, value)
        loaded.sources[name] = SOURCE_FLAG
    loaded.settings.sizable = tuple(k for k in SIZABLE if loaded.sources[k] == SOURCE_DEFAULT)
    return loaded


def template() -> str:
    """A new user config file: every key with its default, commented out."""
    lines = [
        "# gemma-code settings (`gemma-code config show` lists values and where they come from).",
        "# Uncomment a line to change it. A project's .gemma-code.toml and GEMMA_CODE_<KEY>",
        "# environment variables override this file; command-line flags override everything.",
        "",
    ]
    for name, value in as_dict(Settings()).items():
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, str):
            shown = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            shown = str(value)
        choices = f"  # {' | '.join(CHOICES[name])}" if name in CHOICES else ""
        lines.append(f"# {name} = {shown}{choices}")
    return "\n".join(lines) + "\n"
