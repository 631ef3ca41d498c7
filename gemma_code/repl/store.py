"""Chat sessions on disk: one JSON-lines file per session in the user data directory.

Each line is one record: ``{"type": "session", "id", "created", "cwd", "model"}`` first, then
``{"type": "message", "role", "content"}`` per turn, ``{"type": "clear"}`` when the history was
cleared, ``{"type": "drop", "count"}`` when the oldest messages were dropped to fit the window,
and ``{"type": "name", "name"}`` when the user named the session. Appending a line per event
means a crash loses at most the turn in flight; replaying the records rebuilds the history.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.engine.base import ImageData, Message
from gemma_code.errors import UsageError

SUFFIX = ".jsonl"


def sessions_dir() -> Path:
    """Where session files live."""
    return paths.data_dir() / "sessions"


def new_session_id(now: float | None = None) -> str:
    """A sortable, unique id: UTC time plus a short random tail."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass
class SessionInfo:
    """What `/load` and `--resume` list about a stored session."""

    id: str
    path: Path
    created: str = ""
    cwd: str = ""
    model: str = ""
    name: str = ""
    messages: list[Message] = field(default_factory=list)
    modified: float = 0.0
    missing_images: list[str] = field(default_factory=list)  # gone or changed since the chat
    typed: dict[Message, str] = field(default_factory=dict)  # user turn -> what the user typed

    @property
    def title(self) -> str:
        """The first user message, on one line, for listings."""
        for message in self.messages:
            if message.role == "user":
                line = " ".join(message.content.split())
                return line[:60] + ("…" if len(line) > 60 else "")
        return "(empty)"


class SessionFile:
    """Appends the events of one session to its file."""

    def __init__(self, session_id: str, *, cwd: Path, model: str, folder: Path | None = None) -> None:
        self.id = session_id
        self.folder = folder or sessions_dir()
        self.path = self.folder / f"{session_id}{SUFFIX}"
        self._cwd = str(cwd)
        self._model = model

    def _append(self, record: dict[str, Any]) -> None:
        new = not self.path.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            if new:
                header = {
                    "type": "session", "id": self.id, "cwd": self._cwd, "model": self._model,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                handle.write(json.dumps(header, ensure_ascii=False) + "\n")
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def add_message(
        self, message: Message, stats: dict[str, Any] | None = None, typed: str | None = None
    ) -> None:
        record: dict[str, Any] = {"type": "message", "role": message.role, "content": message.content}
        if message.images:  # the file's path and pixels' digest: reloaded on resume if unchanged
            record["images"] = [{"path": i.label, "digest": i.digest} for i in message.images]
        if typed is not None and typed != message.content:
            record["typed"] = typed  # what the user typed, when the prompt says more
        if stats:
            record["stats"] = stats
        self._append(record)

    def clear(self) -> None:
        self._append({"type": "clear"})

    def drop_oldest(self, count: int) -> None:
        self._append({"type": "drop", "count": count})

    def name(self, name: str) -> None:
        self._append({"type": "name", "name": name})

    def write_history(self, history: list[Message]) -> None:
        """Record a whole history at once (after /load or --resume into a new file)."""
        for message in history:
            self.add_message(message)


def _reload_images(saved: Any, missing: list[str]) -> tuple[ImageData, ...]:
    """The images a stored message had, read again; those gone or changed are named in `missing`."""
    from gemma_code.documents.images import load_image
    from gemma_code.errors import GemmaCodeError

    found: list[ImageData] = []
    for item in saved if isinstance(saved, list) else []:
        path = str(item.get("path", "")) if isinstance(item, dict) else ""
        try:
            image = load_image(Path(path))
        except (GemmaCodeError, OSError):
            image = None
        if image is None or image.digest != item.get("digest"):
            missing.append(path)
            continue
        found.append(image)
    return tuple(found)


def read_session(path: Path) -> SessionInfo:
    """Replay one session file; unreadable lines are skipped, never fatal."""
    info = SessionInfo(id=path.name.removesuffix(SUFFIX), path=path)
    try:
        info.modified = path.stat().st_mtime
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read session {path}: {exc.strerror}") from None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
        kind = record.get("type")
        if kind == "session":
            info.created = str(record.get("created", ""))
            info.cwd = str(record.get("cwd", ""))
            info.model = str(record.get("model", ""))
        elif kind == "message" and record.get("role") in ("user", "model"):
            images = _reload_images(record.get("images"), info.missing_images)
            message = Message(record["role"], str(record.get("content", "")), images=images)
            info.messages.append(message)
            if isinstance(record.get("typed"), str):
                info.typed[message] = record["typed"]
        elif kind == "clear":
            info.messages.clear()
        elif kind == "drop":
            del info.messages[: int(record.get("count", 0))]
        elif kind == "name":
            info.name = str(record.get("name", ""))
    return info


def list_sessions(folder: Path | None = None) -> list[SessionInfo]:
    """Every stored session, most recently used first."""
    where = folder or sessions_dir()
    if not where.is_dir():
        return []
    found = [read_session(p) for p in where.glob(f"*{SUFFIX}")]
    return sorted(found, key=lambda s: (s.modified, s.id), reverse=True)


def find_session(ref: str, folder: Path | None = None) -> SessionInfo:
    """A session by id, unique id prefix, or name; UsageError naming the choices otherwise."""
    sessions = list_sessions(folder)
    exact = [s for s in sessions if ref in (s.id, s.name)]
    matches = exact or [s for s in sessions if s.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(
            f"no saved session {ref!r}", "list them with /load (no argument) or `gemma-code chat --resume`"
        )
    raise UsageError(
        f"{ref!r} matches {len(matches)} sessions", "give more of the id: "
        + ", ".join(s.id for s in matches[:5])
    )


def latest_session(cwd: Path, folder: Path | None = None) -> SessionInfo | None:
    """The most recent session started in `cwd` that has messages (for --continue)."""
    for session in list_sessions(folder):
        if session.cwd == str(cwd) and session.messages:
            return session
    return None
