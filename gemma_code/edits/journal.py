"""The undo journal: previous contents of every file a change set touched, outside the repository.

Entries live in ``data_dir()/journal/<repo key>/<id>/`` (manifest.json plus one blob per file),
so `gemma-code undo` works in folders that are not git repositories too. While a change set is
being written its entry holds a state file naming the writing process; an entry whose writer
died (`kill -9`, power loss) is found by `recover()`, reported once, and undone like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.atomic import sync_folder
from gemma_code.edits.model import FileChange
from gemma_code.errors import EditRejectedError, GemmaCodeError

KEEP = 50  # entries kept per repository
MANIFEST = "manifest.json"
STATE = "state.json"  # present while the change set is written, or after its writer died
STAGING = "staging"  # new contents wait here (outside the repository) until renamed into place


@dataclass(frozen=True)
class JournalEntry:
    """One applied change set; `state` is done, applying (writer alive) or interrupted."""

    id: str
    folder: Path
    label: str
    created: float
    files: list[dict[str, Any]]
    extra: dict[str, str]
    dirs: list[str]
    state: str = "done"
    written: int | None = None  # for an interrupted entry: files found written after the crash

    @property
    def paths(self) -> list[str]:
        return [f["path"] for f in self.files]


@dataclass(frozen=True)
class UndoResult:
    """What undo restored."""

    entry: JournalEntry
    restored: list[str]
    removed: list[str]


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)


def journal_dir(root: Path) -> Path:
    """Where this repository's journal lives."""
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return paths.data_dir() / "journal" / key


def process_start(pid: int) -> str:
    """An id of the process `pid` that changes when the pid is reused ("" when unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, starttime


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or process_start(pid) in ("", start)


def record(root: Path, changes: Sequence[FileChange], *, label: str = "apply",
           extra: dict[str, str] | None = None, dirs: Sequence[str] = ()) -> str:
    """Save the previous contents of `changes` before they are written; returns the entry id.

    The entry starts in the "applying" state; `finish()` marks it done once every file is written.
    `dirs` are folders the change set will create (undo removes them again when empty).
    """
    from gemma_code.atomic import write_atomic

    base = journal_dir(root)
    entry_id = f"{time.time_ns():020d}"
    folder = base / entry_id
    folder.mkdir(parents=True)
    pid = os.getpid()
    state = {"state": "applying", "pid": pid, "start": process_start(pid)}
    _write_synced(folder / STATE, json.dumps(state).encode())
    files = []
    for n, change in enumerate(changes):
        blob = None
        if change.old is not None:
            blob = f"{n}.old"
            _write_synced(folder / blob, change.old)
        files.append({"path": change.path, "old": blob, "mode": change.mode,
                      "old_sha256": _sha(change.old), "new_sha256": _sha(change.new)})
    manifest = {"id": entry_id, "root": str(Path(root).resolve()), "label": label,
                "created": time.time(), "files": files, "extra": extra or {}, "dirs": list(dirs)}
    sync_folder(folder)
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode(), 0o600)
    sync_folder(base)
    for old in list_entries(root)[:-KEEP]:
        if old.state != "applying":
            shutil.rmtree(old.folder, ignore_errors=True)
    return entry_id


def staging_dir(root: Path, entry_id: str) -> Path:
    """Where an entry's new contents wait before they are renamed into the repository."""
    return journal_dir(root) / entry_id / STAGING


def finish(root: Path, entry_id: str) -> None:
    """The change set is fully written: drop its staging folder and its "applying" state."""
    folder = journal_dir(root) / entry_id
    shutil.rmtree(folder / STAGING, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (folder / STATE).unlink()
    sync_folder(folder)


def discard(root: Path, entry_id: str) -> None:
    """Forget one entry (its change set was rolled back)."""
    shutil.rmtree(journal_dir(root) / entry_id, ignore_errors=True)


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"state": "interrupted"}  # torn while its writer died
    return data if isinstance(data, dict) else {"state": "interrupted"}


def _entry_state(data: dict[str, Any] | None) -> tuple[str, int | None]:
    if data is None:
        return "done", None
    if data.get("state") == "applying":
        if _alive(int(data.get("pid", 0)), str(data.get("start", ""))):
            return "applying", None
        return "crashed", None  # not reported yet: recover() does that once
    written = data.get("written")
    return "interrupted", int(written) if isinstance(written, int) else None


def list_entries(root: Path) -> list[JournalEntry]:
    """This repository's entries, oldest first."""
    base = journal_dir(root)
    if not base.is_dir():
        return []
    out = []
    for folder in sorted(base.iterdir()):
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        state, written = _entry_state(_read_state(folder))
        out.append(JournalEntry(data["id"], folder, data.get("label", "apply"),
                                float(data.get("created", 0)), list(data["files"]),
                                dict(data.get("extra", {})), list(data.get("dirs", [])),
                                "interrupted" if state == "crashed" else state, written))
    return out


def _target(root: Path, rel: str) -> Path:
    from gemma_code.edits.safepath import normalize, resolve_inside

    return resolve_inside(root, normalize(rel))


def _current_sha(target: Path) -> str | None:
    try:
        return _sha(target.read_bytes()) if target.is_file() else None
    except OSError:
        return "unreadable"


def recover(root: Path) -> list[JournalEntry]:
    """Entries whose writer died mid-way, found for the first time: their leftover staged files
    are removed, they are marked interrupted (with how many files were written), and returned."""
    base = journal_dir(root)
    if not base.is_dir():
        return []
    found: list[JournalEntry] = []
    for folder in sorted(base.iterdir()):
        data = _read_state(folder)
        if data is None or _entry_state(data)[0] != "crashed":
            continue
        if not (folder / MANIFEST).is_file():  # died while journaling: nothing was written yet
            shutil.rmtree(folder, ignore_errors=True)
            continue
        entry = next((e for e in list_entries(root) if e.folder == folder), None)
        if entry is None:
            continue
        from gemma_code.edits.writer import remove_staged

        remove_staged(root, entry.id, entry.paths)
        written = sum(1 for f in entry.files
                      if f["new_sha256"] != f.get("old_sha256", "?")
                      and _current_sha(_target(root, f["path"])) == f["new_sha256"])
        from gemma_code.atomic import write_atomic

        with contextlib.suppress(OSError):
            write_atomic(folder / STATE, json.dumps({"state": "interrupted", "written": written})
                         .encode(), 0o600)
        found.append(JournalEntry(entry.id, folder, entry.label, entry.created, entry.files,
                                  entry.extra, entry.dirs, "interrupted", written))
    return found


def interrupted_notices(start: Path) -> list[str]:
    """One line per change set found interrupted in the repository around `start` (or above it).

    Cheap enough for every command: a few stat calls unless an interrupted entry is found.
    """
    notes: list[str] = []
    try:
        here = Path(start).resolve()
    except OSError:
        return notes
    for folder in (here, *here.parents):
        if not journal_dir(folder).is_dir():
            continue
        with contextlib.suppress(OSError, GemmaCodeError):
            for entry in recover(folder):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created))
                notes.append(
                    f"the {entry.label} of {when} in {folder} was interrupted (its process died) "
                    f"after writing {entry.written} of {len(entry.files)} file(s); "
                    "`gemma-code undo` restores every file it touched")
    return notes


def _remove_empty_dirs(root: Path, dirs: Sequence[str]) -> None:
    for rel in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        with contextlib.suppress(OSError, GemmaCodeError):
            _target(root, rel).rmdir()  # only when empty


def undo_last(root: Path, *, force: bool = False) -> UndoResult:
    """Put back the files of the last change set; refuses if they changed since, unless `force`.

    A file of an interrupted change set may hold its old or its new bytes: both are expected.
    """
    from gemma_code.atomic import write_atomic

    recover(root)
    entries = list_entries(root)
    if not entries:
        raise GemmaCodeError("nothing to undo: no change set was applied in this repository",
                             "undo reverts changes made here by `gemma-code apply`, `edit` or "
                             "`refactor`; `gemma-code undo --list` shows what can be undone")
    entry = entries[-1]
    if entry.state == "applying":
        raise EditRejectedError("the last change set is still being written by another "
                                "gemma-code process; nothing was undone",
                                "wait for it to finish, then run `gemma-code undo` again")
    targets = [(f, _target(root, f["path"])) for f in entry.files]
    olds = {f["path"]: (entry.folder / f["old"]).read_bytes() if f["old"] else None
            for f in entry.files}
    if not force:
        changed = [f["path"] for f, target in targets
                   if _current_sha(target) not in (f["new_sha256"], _sha(olds[f["path"]]))]
        if changed:
            raise EditRejectedError(
                f"changed since the edit was applied: {', '.join(changed)}; nothing was undone",
                "re-run with --force to restore the previous contents anyway",
            )
    restored, removed = [], []
    for f, target in targets:
        old = olds[f["path"]]
        if old is None:
            if target.exists():
                target.unlink()
            removed.append(f["path"])
        else:
            same = _current_sha(target) == _sha(old)
            if not same or (f["mode"] is not None and target.stat().st_mode & 0o7777 != f["mode"]):
                write_atomic(target, old, f["mode"])
            restored.append(f["path"])
    _remove_empty_dirs(root, entry.dirs)
    shutil.rmtree(entry.folder, ignore_errors=True)
    return UndoResult(entry, restored, removed)
