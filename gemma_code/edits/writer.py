"""Write a planned change set: all of it or none of it, journaled, and safe against crashes.

Every write of `apply`, `edit`, `refactor` and the chat's /apply and /edit comes through
`write_changes`. In order:

1. each file's bytes are compared with the bytes the edit was planned against: a file saved
   meanwhile (in an editor, while the y/n prompt was open) refuses the whole set;
2. the previous contents go to the undo journal, marked "applying" with this process's id;
3. every new content is written and fsynced in a staging folder outside the repository (in
   the journal, else in the git directory; in the target's folder only when neither is on the
   same file system), so `git add -A` never sees a half-done temporary file;
4. files are renamed into place one by one, each checked once more just before;
5. the folders are fsynced and the journal entry is marked done.

An error or an interrupt rolls back what was written. A `kill -9` leaves the entry
"applying" with a dead process id: `journal.recover()` reports it and `undo` restores it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gemma_code import paths
from gemma_code.edits.model import FileChange
from gemma_code.edits.safepath import normalize, resolve_inside
from gemma_code.errors import EditRejectedError


class ChangedOnDiskError(EditRejectedError):
    """A file changed on disk after its edit was planned; nothing was written."""


@dataclass
class _Target:
    change: FileChange
    path: Path
    temp: Path | None = None


def _current(path: Path) -> bytes | None:
    """The file's bytes now (None: absent)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        return b"\0directory"


def _changed(targets: Sequence[_Target]) -> list[str]:
    out = []
    for t in targets:
        try:
            if _current(t.path) != t.change.old:
                out.append(t.change.path)
        except OSError as exc:
            raise EditRejectedError(f"cannot read {t.change.path}: {exc.strerror or exc}; "
                                    "nothing was written", "check its permissions") from None
    return out


def _refuse(changed: Sequence[str]) -> ChangedOnDiskError:
    return ChangedOnDiskError(
        f"changed on disk since the edit was planned: {', '.join(changed)}; nothing was written",
        "your version was kept; run the command again to plan the edit against it")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _missing_dirs(root: Path, targets: Sequence[_Target]) -> list[str]:
    """Folders the change set creates (repository-relative), outermost first."""
    out: list[str] = []
    base = root.resolve()
    for t in targets:
        if t.change.new is None:
            continue
        folder = t.path.parent
        chain = []
        while not folder.exists() and folder != base and base in folder.parents:
            chain.append(folder.relative_to(base).as_posix())
            folder = folder.parent
        out += [d for d in reversed(chain) if d not in out]
    return out


def _git_dir(root: Path) -> Path | None:
    """The git directory of the work tree holding `root` (a folder git never adds), or None."""
    for folder in (root, *root.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            with contextlib.suppress(OSError, ValueError):
                line = dot.read_text(encoding="utf-8").strip()
                if line.startswith("gitdir:"):
                    found = (folder / line[len("gitdir:"):].strip()).resolve()
                    if found.is_dir():
                        return found
            return None
    return None


def _staging_folders(root: Path, entry: str | None) -> list[Path]:
    """Candidate staging folders, best first: the journal entry's, then one in the git directory."""
    from gemma_code.edits.journal import staging_dir

    out = []
    if entry is not None:
        out.append(staging_dir(root, entry))
    else:
        out.append(paths.data_dir() / "staging" / f"{os.getpid()}-{os.urandom(4).hex()}")
    git_dir = _git_dir(root)
    if git_dir is not None:
        out.append(git_dir / "gemma-code-staging" / (entry or out[0].name))
    return out


def _stage(targets: Sequence[_Target], folders: Sequence[Path], tag: str, made: list[Path],
           at: list[_Target]) -> None:
    """Write every new content, fsynced, to a temporary file on the target's file system.

    Folders it creates go to `made`; the target being staged is kept in `at` (for errors).
    """
    from gemma_code.atomic import _umask

    usable: dict[Path, int] = {}
    for n, t in enumerate(targets):
        new = t.change.new
        if new is None:
            continue
        at[:] = [t]
        device = _existing_ancestor(t.path.parent).stat().st_dev
        place = None
        for folder in folders:
            if folder not in usable:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    made.append(folder)
                    usable[folder] = folder.stat().st_dev
                except OSError:
                    usable[folder] = -1
            if usable[folder] == device:
                place = folder / f"{n}.new"
                break
        if place is None:  # no staging folder on this file system: beside the file, hidden
            t.path.parent.mkdir(parents=True, exist_ok=True)
            place = t.path.parent / f".{t.path.name}.gemma-code-{tag}.tmp"
        t.temp = place
        with open(place, "wb") as handle:
            handle.write(new)
            handle.flush()
            os.fsync(handle.fileno())
        keep = t.change.mode if t.change.old is not None and t.change.mode is not None else None
        os.chmod(place, keep if keep is not None else 0o666 & ~_umask())


def _clean(targets: Sequence[_Target], folders: Sequence[Path]) -> None:
    for t in targets:
        if t.temp is not None:
            with contextlib.suppress(OSError):
                t.temp.unlink()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the shared parent, once empty


def _roll_back(root: Path, written: Sequence[_Target], dirs: Sequence[str]) -> None:
    from gemma_code.atomic import write_atomic

    for t in reversed(written):
        with contextlib.suppress(OSError):
            if t.change.old is None:
                t.path.unlink()
            else:
                write_atomic(t.path, t.change.old, t.change.mode)
    for rel in reversed(dirs):
        with contextlib.suppress(OSError):
            (root / rel).rmdir()


def write_changes(root: Path, changes: Sequence[FileChange], *, journal: bool = True,
                  label: str = "apply", extra: dict[str, str] | None = None) -> str | None:
    """Write planned changes all-or-nothing, journaled first; returns the journal entry id.

    Raises ChangedOnDiskError (nothing written) when a file no longer holds the bytes its
    change was planned against, and EditRejectedError when the disk refuses a write (what was
    written is restored). An interrupt (Ctrl-C) also restores what was written.
    """
    from gemma_code.atomic import sync_folder
    from gemma_code.edits.journal import discard, finish, record

    root = Path(root)
    targets = [_Target(c, resolve_inside(root, normalize(c.path))) for c in changes]
    changed = _changed(targets)
    if changed:
        raise _refuse(changed)
    dirs = _missing_dirs(root, targets)
    # a journal that cannot be saved (full or read-only data folder) is a disk error, shown as
    # one with its hint by the CLI; nothing has been written yet
    entry = record(root, changes, label=label, extra=extra, dirs=dirs) if journal else None
    folders: list[Path] = []
    written: list[_Target] = []
    at: list[_Target] = []  # the file being staged or written, for the error message
    try:
        _stage(targets, _staging_folders(root, entry), entry or "x", folders, at)
        for current in targets:
            at[:] = [current]
            if _current(current.path) != current.change.old:
                raise _refuse([current.change.path])
            if current.temp is None:
                current.path.unlink()
            else:
                current.path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(current.temp, current.path)
                current.temp = None
            written.append(current)
        for folder in {t.path.parent for t in targets} | {(root / d).parent for d in dirs}:
            sync_folder(folder)
    except BaseException as exc:
        _roll_back(root, written, dirs)
        _clean(targets, folders)
        if entry:
            discard(root, entry)
        if isinstance(exc, OSError):
            name = at[0].change.path if at else "the files"
            raise EditRejectedError(f"could not write {name}: {exc.strerror or exc}",
                                    "check permissions and free space; nothing was changed") from None
        raise
    _clean(targets, folders)
    if entry:
        finish(root, entry)
    return entry


def remove_staged(root: Path, entry: str, rel_paths: Sequence[str]) -> None:
    """Delete what a dead writer of journal entry `entry` left staged, wherever it was put."""
    for folder in _staging_folders(root, entry):
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()
    for rel in rel_paths:
        with contextlib.suppress(OSError, EditRejectedError):
            target = resolve_inside(root, normalize(rel))
            (target.parent / f".{target.name}.gemma-code-{entry}.tmp").unlink()
