"""The undo journal: previous contents of every file a change set touched, outside the repository.

Entries live in ``data_dir()/journal/<repo key>/<id>/`` (manifest.json plus one blob per file),
so `gemma-code undo` works in folders that are not git repositories too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.edits.model import FileChange
from gemma_code.errors import EditRejectedError, GemmaCodeError

KEEP = 50  # entries kept per repository


@dataclass(frozen=True)
class JournalEntry:
    """One applied change set."""

    id: str
    folder: Path
    label: str
    created: float
    files: list[dict[str, Any]]
    extra: dict[str, str]

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


def journal_dir(root: Path) -> Path:
    """Where this repository's journal lives."""
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return paths.data_dir() / "journal" / key


def record(root: Path, changes: Sequence[FileChange], *, label: str = "apply",
           extra: dict[str, str] | None = None) -> str:
    """Save the previous contents of `changes` before they are written; returns the entry id."""
    from gemma_code.atomic import write_atomic

    base = journal_dir(root)
    entry_id = f"{time.time_ns():020d}"
    folder = base / entry_id
    folder.mkdir(parents=True)
    files = []
    for n, change in enumerate(changes):
        blob = None
        if change.old is not None:
            blob = f"{n}.old"
            write_atomic(folder / blob, change.old, 0o600)
        files.append({"path": change.path, "old": blob, "mode": change.mode,
                      "new_sha256": _sha(change.new)})
    manifest = {"id": entry_id, "root": str(Path(root).resolve()), "label": label,
                "created": time.time(), "files": files, "extra": extra or {}}
    write_atomic(folder / "manifest.json", json.dumps(manifest, indent=1).encode(), 0o600)
    for old in list_entries(root)[:-KEEP]:
        shutil.rmtree(old.folder, ignore_errors=True)
    return entry_id


def discard(root: Path, entry_id: str) -> None:
    """Forget one entry (its change set was rolled back)."""
    shutil.rmtree(journal_dir(root) / entry_id, ignore_errors=True)


def list_entries(root: Path) -> list[JournalEntry]:
    """This repository's entries, oldest first."""
    base = journal_dir(root)
    if not base.is_dir():
        return []
    out = []
    for folder in sorted(base.iterdir()):
        try:
            data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append(JournalEntry(data["id"], folder, data.get("label", "apply"),
                                float(data.get("created", 0)), list(data["files"]),
                                dict(data.get("extra", {}))))
    return out


def undo_last(root: Path, *, force: bool = False) -> UndoResult:
    """Put back the files of the last change set; refuses if they changed since, unless `force`."""
    from gemma_code.atomic import write_atomic
    from gemma_code.edits.safepath import normalize, resolve_inside

    entries = list_entries(root)
    if not entries:
        raise GemmaCodeError("nothing to undo: no change set was applied in this repository",
                             "undo reverts changes made here by `gemma-code apply`, `edit` or "
                             "`refactor`; `gemma-code undo --list` shows what can be undone")
    entry = entries[-1]
    targets = [(f, resolve_inside(root, normalize(f["path"]))) for f in entry.files]
    if not force:
        changed = [f["path"] for f, target in targets
                   if _sha(target.read_bytes() if target.is_file() else None) != f["new_sha256"]]
        if changed:
            raise EditRejectedError(
                f"changed since the edit was applied: {', '.join(changed)}; nothing was undone",
                "re-run with --force to restore the previous contents anyway",
            )
    restored, removed = [], []
    for f, target in targets:
        if f["old"] is None:
            if target.exists():
                target.unlink()
            removed.append(f["path"])
        else:
            write_atomic(target, (entry.folder / f["old"]).read_bytes(), f["mode"])
            restored.append(f["path"])
    shutil.rmtree(entry.folder, ignore_errors=True)
    return UndoResult(entry, restored, removed)
