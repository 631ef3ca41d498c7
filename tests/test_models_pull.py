"""`models pull` against a real HTTP server on 127.0.0.1 that answers like the Hugging Face hub."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gemma_code.errors import ModelError
from gemma_code.models import entry_path, find_entry, resolve_model, user_registry_file
from gemma_code.models.pull import pull

REPO = "test-org/fake-GGUF"
FILE = "fake-model-Q4_K_M.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MIB = 1024 * 1024
# huggingface_hub writes what it receives in 10 MiB chunks: resuming needs a bigger file.
BIG = 24 * MIB


def fake_gguf(size: int = 3_000_000) -> bytes:
    """A GGUF header followed by deterministic filler, `size` bytes in all."""
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    filler = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    return (head + filler)[:size]


@dataclass
class HubFile:
    data: bytes
    sha256: str | None = None  # what the hub advertises; defaults to the data's real sha256
    size: int | None = None  # what the hub advertises; defaults to len(data)
    drop_once_at: int | None = None  # close the connection after this many body bytes, once
    etag: str | None = None  # an etag that is not the sha256 (Xet storage): sha256 via paths-info
    lfs: bool = True  # whether the tree API (paths-info) reports an LFS sha256


@dataclass
class FakeHub:
    """State of the fake hub: its files and every request it saw."""

    files: dict[str, HubFile] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    url: str = ""

    def gets(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET"]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _file(self) -> HubFile | None:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            match = re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", self.path)
            if match is None:
                return None
            return hub.files.get(f"{match.group(1)}/{match.group(3)}")

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Error-Message", "Entry not found")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _meta_headers(self, f: HubFile) -> None:
            sha = f.etag or f.sha256 or hashlib.sha256(f.data).hexdigest()
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{sha}"')
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(f.size if f.size is not None else len(f.data)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")

        def do_HEAD(self) -> None:
            f = self._file()
            if f is None:
                return self._not_found()
            self.send_response(200)
            self._meta_headers(f)
            self.send_header("Content-Length", str(len(f.data)))
            self.end_headers()

        def do_POST(self) -> None:
            """The tree API: /api/models/{repo}/paths-info/{revision} with form field `paths`."""
            from urllib.parse import parse_qs

            hub.requests.append((self.command, self.path, None))
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            match = re.fullmatch(r"/api/models/(.+)/paths-info/([^/]+)", self.path)
            out = []
            for wanted in form.get("paths", []) if match else []:
                f = hub.files.get(f"{match.group(1)}/{wanted}")  # type: ignore[union-attr]
                if f is not None:
                    sha = f.sha256 or hashlib.sha256(f.data).hexdigest()
                    info: dict[str, object] = {
                        "type": "file", "path": wanted, "size": len(f.data), "oid": "0" * 40,
                    }
                    if f.lfs:
                        info["lfs"] = {"oid": sha, "size": len(f.data), "pointerSize": 134}
                    out.append(info)
            body = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            f = self._file()
            if f is None:
                return self._not_found()
            start = 0
            wanted = self.headers.get("Range")
            if wanted:
                start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))  # type: ignore[union-attr]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
            else:
                self.send_response(200)
            self._meta_headers(f)
            body = f.data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if f.drop_once_at is not None:
                cut, f.drop_once_at = f.drop_once_at, None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True  # hang up mid-body
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A hub on 127.0.0.1 with HF_ENDPOINT pointing at it and offline mode off."""
    import huggingface_hub.constants as hf_constants

    state = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; the autouse fixture had set it.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def register(name: str = "fake", *, file: str = FILE, sha256: str | None = None) -> None:
    """Add a hub-sourced model to the user registry."""
    conf = user_registry_file()
    conf.parent.mkdir(parents=True, exist_ok=True)
    extra = f'sha256 = "{sha256}"\n' if sha256 else ""
    with conf.open("a", encoding="utf-8") as out:
        out.write(
            f'[models.{name}]\naliases = ["{name}-alias"]\nhf_repo = "{REPO}"\nhf_file = "{file}"\n'
            f'arch = "gemma4"\ncontext_length = 4096\nsize_gb = 0.003\nvram_gb = 1\n{extra}'
        )


class RecordingBars:
    """A ProgressFactory that keeps what each bar was told."""

    def __init__(self) -> None:
        self.bars: list[dict[str, object]] = []

    def __call__(self, description: str, total: int | None, initial: int) -> RecordingBars.Bar:
        record: dict[str, object] = {"description": description, "total": total, "done": initial,
                                     "closed": False}
        self.bars.append(record)
        return RecordingBars.Bar(record)

    class Bar:
        def __init__(self, record: dict[str, object]) -> None:
            self.record = record

        def update(self, n: int) -> None:
            self.record["done"] = int(self.record["done"]) + n  # type: ignore[call-overload]

        def close(self) -> None:
            self.record["closed"] = True


def _entry(name: str = "fake"):  # type: ignore[no-untyped-def]
    entry = find_entry(name)
    assert entry is not None
    return entry


def test_pull_downloads_verifies_and_reports_progress(hub: FakeHub) -> None:
    data = fake_gguf()
    hub.files[f"{REPO}/{FILE}"] = HubFile(data)
    register()
    bars = RecordingBars()
    result = pull(_entry(), progress=bars)
    assert result.path == entry_path(_entry()) and result.path.read_bytes() == data
    assert result.verified and result.sha256 == hashlib.sha256(data).hexdigest()
    download, verify = bars.bars
    assert download["total"] == len(data) and download["done"] == len(data) and download["closed"]
    assert verify["total"] == len(data) and verify["done"] == len(data)
    assert resolve_model("fake-alias") == result.path
    assert not list(result.path.parent.glob(".*part"))
    # A second pull finds the file and downloads nothing.
    before = len(hub.gets())
    assert pull(_entry()).already and len(hub.gets()) == before


def test_pull_refuses_a_corrupted_download_and_keeps_no_model_file(hub: FakeHub) -> None:
    data = fake_gguf()
    hub.files[f"{REPO}/{FILE}"] = HubFile(data, sha256=hashlib.sha256(b"other").hexdigest())
    register()
    with pytest.raises(ModelError, match="checksum mismatch") as info:
        pull(_entry())
    assert "deleted" in info.value.message
    target = entry_path(_entry())
    assert not target.exists() and not list(target.parent.glob(".*part"))
    with pytest.raises(ModelError, match="not downloaded"):
        resolve_model("fake")


def test_pull_resumes_when_the_server_drops_the_connection(hub: FakeHub) -> None:
    data = fake_gguf(BIG)
    hub.files[f"{REPO}/{FILE}"] = HubFile(data, drop_once_at=15 * MIB)
    register()
    result = pull(_entry())
    assert result.path.read_bytes() == data
    ranges = [r[2] for r in hub.gets()]
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1] is not None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 15 * MIB


def test_pull_interrupted_by_ctrl_c_resumes_on_the_next_run(hub: FakeHub) -> None:
    data = fake_gguf(BIG)
    hub.files[f"{REPO}/{FILE}"] = HubFile(data)
    register()

    class Stop:
        def __init__(self, description: str, total: int | None, initial: int) -> None:
            self.seen = 0

        def update(self, n: int) -> None:
            self.seen += n
            if self.seen >= 15 * MIB:
                raise KeyboardInterrupt

        def close(self) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        pull(_entry(), progress=Stop)
    target = entry_path(_entry())
    assert not target.exists()
    (part,) = target.parent.glob(".*part")
    kept = part.stat().st_size
    assert 0 < kept < BIG
    result = pull(_entry())
    assert result.path.read_bytes() == data
    assert hub.gets()[-1][2] == f"bytes={kept}-"


def test_pull_checks_free_disk_space_before_downloading(hub: FakeHub) -> None:
    # The hub advertises 10 PB: more than any disk this runs on.
    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf(), size=10 * 10**15)
    register()
    with pytest.raises(ModelError, match="not enough disk space") as info:
        pull(_entry())
    assert "needs 10000.0 TB more" in info.value.message and "free" in info.value.message
    assert info.value.hint is not None and "GEMMA_CODE_MODELS_DIR" in info.value.hint
    assert hub.gets() == []


def test_pull_refuses_when_the_hub_checksum_differs_from_the_registry(hub: FakeHub) -> None:
    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf())
    register(sha256="ab" * 32)
    with pytest.raises(ModelError, match="not the registry's"):
        pull(_entry())
    assert hub.gets() == []


def test_pull_of_a_file_the_hub_lacks_names_it(hub: FakeHub) -> None:
    register(file="missing-Q4_K_M.gguf")
    with pytest.raises(ModelError, match=r"has no file missing-Q4_K_M\.gguf"):
        pull(_entry())


def test_pull_with_force_downloads_again(hub: FakeHub) -> None:
    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf())
    register()
    pull(_entry())
    newer = fake_gguf(2_000_000)
    hub.files[f"{REPO}/{FILE}"] = HubFile(newer)
    result = pull(_entry(), force=True)
    assert not result.already and result.path.read_bytes() == newer


def test_pull_in_offline_mode_says_how_to_go_online() -> None:
    import huggingface_hub.constants as hf_constants

    register()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
            pull(_entry())


def test_pull_when_the_server_is_down_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import huggingface_hub.constants as hf_constants

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    register()
    with pytest.raises(ModelError, match="failed") as info:
        pull(_entry())
    assert info.value.hint is not None and "resumes" in info.value.hint


def test_pull_of_a_local_path_model_is_refused(tmp_path: Path) -> None:
    conf = user_registry_file()
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'[models.mine]\npath = "{tmp_path / "m.gguf"}"\n', encoding="utf-8")
    with pytest.raises(ModelError, match="nothing to pull"):
        pull(_entry("mine"))


def test_cli_pull_shows_progress_and_prints_the_path(hub: FakeHub) -> None:
    from cli_runner import CliRunner

    from gemma_code.cli import app

    data = fake_gguf()
    hub.files[f"{REPO}/{FILE}"] = HubFile(data)
    register()
    result = CliRunner().invoke(app, ["models", "pull", "fake-alias"])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.read_bytes() == data
    assert f"hf:{REPO}/{FILE}" in result.stderr
    assert "verified" in result.stderr and FILE in result.stderr  # the progress bar's label
    listed = CliRunner().invoke(app, ["models", "path", "fake"])
    assert listed.stdout.strip() == str(path)


def test_cli_pull_checksum_failure_exits_4(hub: FakeHub) -> None:
    from cli_runner import CliRunner

    from gemma_code.cli import app
    from gemma_code.errors import ExitCode

    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf(), sha256="00" * 32)
    register()
    result = CliRunner().invoke(app, ["models", "pull", "fake"])
    assert result.exit_code == ExitCode.MODEL
    assert "checksum mismatch" in result.stderr and "Traceback" not in result.output


def test_a_second_pull_of_the_same_model_is_refused_while_the_first_runs(hub: FakeHub) -> None:
    from filelock import FileLock

    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf())
    register()
    target = entry_path(_entry())
    target.parent.mkdir(parents=True)
    with FileLock(str(target.with_name(f".{target.name}.lock"))), pytest.raises(
        ModelError, match="another `models pull fake` is running"
    ):
        pull(_entry())
    assert hub.gets() == []
    assert pull(_entry()).path == target  # once the other pull is done


def test_rm_after_pull_leaves_no_trace(hub: FakeHub) -> None:
    from gemma_code.models.pull import remove

    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf())
    register()
    target = pull(_entry()).path
    remove(_entry())
    assert not target.parent.exists()


def test_pull_reads_the_sha256_from_the_tree_api_when_the_etag_is_not_one(hub: FakeHub) -> None:
    data = fake_gguf()
    hub.files[f"{REPO}/{FILE}"] = HubFile(data, etag="xet-" + "7" * 60)
    register()
    result = pull(_entry())
    assert result.verified and result.sha256 == hashlib.sha256(data).hexdigest()
    assert any(r[0] == "POST" and "/paths-info/" in r[1] for r in hub.requests)


def test_pull_refuses_a_file_whose_sha256_nobody_knows(hub: FakeHub) -> None:
    hub.files[f"{REPO}/{FILE}"] = HubFile(fake_gguf(), etag="not-a-sha256", lfs=False)
    register()
    with pytest.raises(ModelError, match="cannot be verified"):
        pull(_entry())
    assert hub.gets() == []
