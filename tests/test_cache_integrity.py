"""Issue 14, item 6: damaged caches are misses that heal, `cache clear` clears every cache, and a
cache that cannot be written never changes a review's outcome.

Every damage here is real bytes in real files: a flipped byte inside a stored entry, 4 KiB of
bad bytes inside a database page or a saved KV state.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import CliRunner
from conftest import git
from test_context_build import PROJECT, make_repo, words

from gemma_code import paths
from gemma_code.cli import app
from gemma_code.context import build_context
from gemma_code.context.cache import ContextCache, cache_file
from gemma_code.engine.prompt_cache import PromptCacheStore
from gemma_code.errors import ExitCode
from gemma_code.review import cache as review_cache

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
BAD = bytes(range(256)) * 16  # 4 KiB of bytes no cache wrote


def flip_inside(path: Path, needle: bytes, at: int) -> None:
    """Flip one byte `at` bytes into the first place the file holds `needle`."""
    data = bytearray(path.read_bytes())
    where = data.find(needle)
    assert where >= 0, "the stored value is not in the file"
    data[where + at] ^= 0x40
    path.write_bytes(bytes(data))


def stored_value(sql: str) -> bytes:
    with sqlite3.connect(cache_file()) as db:
        row = db.execute(sql).fetchone()
    assert row is not None
    return bytes(row[0])


def packed(repo: Path) -> tuple[str, list[str]]:
    result = build_context(repo, "InvoiceRenderer compute_tax", budget=4000, count_tokens=words,
                           tokenizer_id="words")
    return result.text, result.notes


# ----- the context cache -------------------------------------------------------------------------

GRAPH = "SELECT data FROM blobs WHERE kind = 'graph'"
STORED_TAGS = "SELECT data FROM blobs WHERE kind = 'tags'"


@pytest.mark.parametrize("damaged", [
    # a warm run reads every file's tags from one stored blob: the rows are read when it fails
    ["SELECT meta FROM file_tags ORDER BY length(meta) DESC", STORED_TAGS],
    [STORED_TAGS],
    # identifiers are read only to rebuild the graph: both are damaged
    ["SELECT ids FROM file_tags ORDER BY length(ids) DESC", GRAPH],
    ["SELECT data FROM postings ORDER BY length(data) DESC"],
    [GRAPH],
], ids=["tags", "stored-tags", "identifiers", "word-index", "graph"])
def test_a_flipped_byte_in_the_context_cache_is_a_miss_that_heals(tmp_path: Path,
                                                                  damaged: list[str]) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    clean, _ = packed(repo)
    for sql in damaged:
        value = stored_value(sql)
        flip_inside(cache_file(), value[:24], min(20, len(value) - 1))

    text, notes = packed(repo)  # used to die with "bad marshal data"
    assert text == clean
    assert "context cache: damaged entries were found, dropped and rebuilt" in notes

    text, notes = packed(repo)
    assert text == clean
    assert not any("damaged" in n for n in notes)
    assert f"tags: 0 files parsed, {len(PROJECT)} from the cache" in notes  # healed


def test_a_flipped_byte_in_stored_terms_is_caught_when_the_index_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gemma_code.context.cache import remove_files

    repo = make_repo(tmp_path / "repo", PROJECT)
    packed(repo)
    value = stored_value("SELECT terms FROM file_tags WHERE path = 'src/billing/invoice.py'")
    flip_inside(cache_file(), value[:24], min(20, len(value) - 1))
    (repo / "docs/usage.md").write_text("Run the shop with `python -m shop --debug`.\n")
    monkeypatch.setattr(sys.modules["gemma_code.context"], "OVERLAY_MAX", 0)  # not patched: rebuilt
    text, notes = packed(repo)  # the word index is rebuilt from every file's stored terms
    assert "context cache: damaged entries were found, dropped and rebuilt" in notes
    remove_files()
    assert packed(repo)[0] == text  # the same as from no cache at all


def test_a_flipped_byte_in_a_changed_files_stored_terms_is_caught_when_the_index_is_patched(
    tmp_path: Path,
) -> None:
    from gemma_code.context.cache import remove_files

    repo = make_repo(tmp_path / "repo", PROJECT)
    packed(repo)
    (repo / "docs/usage.md").write_text("Run the shop with `python -m shop --debug`.\n")
    packed(repo)  # the stored index is patched with the edited file, whose row is stored now
    value = stored_value("SELECT terms FROM file_tags WHERE path = 'docs/usage.md'")
    flip_inside(cache_file(), value[:24], min(20, len(value) - 1))
    text, notes = packed(repo)  # the edited file's stored words are read back, for the patch
    assert "context cache: damaged entries were found, dropped and rebuilt" in notes
    remove_files()
    assert packed(repo)[0] == text


@pytest.mark.parametrize("offset", [0, 4096], ids=["file-header", "a-table-page"])
def test_4kib_of_bad_bytes_in_the_database_file_heal(tmp_path: Path, offset: int) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    clean, _ = packed(repo)
    data = bytearray(cache_file().read_bytes())
    assert len(data) >= offset + len(BAD)
    data[offset : offset + len(BAD)] = BAD
    cache_file().write_bytes(bytes(data))

    assert packed(repo)[0] == clean
    text, notes = packed(repo)
    assert text == clean and f"tags: 0 files parsed, {len(PROJECT)} from the cache" in notes


def test_a_damaged_token_count_is_dropped_not_used(tmp_path: Path) -> None:
    with ContextCache() as cache:
        cache.store_tokens("tok", {"d1": 10, "d2": 20})
    with sqlite3.connect(cache_file()) as db:
        db.execute("UPDATE tokens SET count = 11 WHERE digest = 'd1'")
    with ContextCache() as cache:
        assert cache.load_tokens("tok", ["d1", "d2"]) == {"d2": 20}
        assert cache.damaged
    with ContextCache() as cache:
        assert cache.load_tokens("tok", ["d1", "d2"]) == {"d2": 20} and not cache.damaged


def test_context_command_survives_a_flipped_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    monkeypatch.chdir(repo)
    first = runner.invoke(app, ["context", "InvoiceRenderer", "--show"])
    assert first.exit_code == 0, first.output
    value = stored_value("SELECT meta FROM file_tags ORDER BY length(meta) DESC")
    flip_inside(cache_file(), value[:24], 20)
    again = runner.invoke(app, ["context", "InvoiceRenderer", "--show"])
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout


# ----- the prompt cache (KV states) --------------------------------------------------------------

class StateWriter:
    """Writes a KV state file the way an engine does (the store under test does the rest)."""

    class info:
        name = "writer"

    def save_kv(self, path: str) -> int:
        data = bytes((n * 7) % 251 for n in range(64 << 10))
        Path(path).write_bytes(data)
        return len(data)


def test_4kib_of_bad_bytes_inside_a_saved_state_make_it_a_miss(tmp_path: Path) -> None:
    store = PromptCacheStore(tmp_path)
    entry = store.put(StateWriter(), "sig", list(range(300)), list(range(300)))
    assert store.verify(entry) and store.lookup("sig", list(range(400))) is not None
    data = bytearray(entry.state_path.read_bytes())
    data[20_000 : 20_000 + len(BAD)] = BAD
    entry.state_path.write_bytes(bytes(data))
    assert not store.verify(entry)
    assert store.entries() == [] and not entry.state_path.exists()  # removed: the next run saves anew


def test_a_flipped_byte_in_a_state_description_removes_the_entry(tmp_path: Path) -> None:
    store = PromptCacheStore(tmp_path)
    entry = store.put(StateWriter(), "sig", list(range(300)), list(range(300)))
    flip_inside(entry.meta_path, b'"tokens": [0, 1, 2', 13)  # token 1 becomes another number
    assert store.entries() == [] and not entry.state_path.exists()


@pytest.mark.llama
def test_a_damaged_kv_state_is_not_loaded_and_the_answer_stays_the_same(tiny_model_path: Path,
                                                                         tmp_path: Path) -> None:
    from test_prompt_cache import question, run, tiny_settings

    from gemma_code.engine.llamacpp import load_llamacpp_engine
    from gemma_code.engine.prompt_cache import PrefixCache

    store = PromptCacheStore(tmp_path)
    settings = tiny_settings(tiny_model_path)
    answers = []
    for attempt in range(3):
        engine = load_llamacpp_engine(settings)
        try:
            cache = PrefixCache.open(engine, settings, store)
            text, _stats = run(cache, engine, question("What does function_3 return?"))
        finally:
            engine.close()
        answers.append((text, list(cache.notes)))
        if attempt == 0:
            state = store.entries()[0].state_path
            data = bytearray(state.read_bytes())
            middle = len(data) // 2
            data[middle : middle + len(BAD)] = BAD
            state.write_bytes(bytes(data))
    (cold, _), (damaged, damaged_notes), (healed, healed_notes) = answers
    assert damaged == cold
    assert any("damaged saved state was removed" in n for n in damaged_notes)
    assert any("saved" in n for n in damaged_notes)  # rebuilt
    assert healed == cold and any("restored" in n for n in healed_notes)


# ----- the review cache --------------------------------------------------------------------------

CLEAN = '{"findings": []}'
CRITICAL = json.dumps({"findings": [{
    "file": "util.py", "line": 2, "title": "add() subtracts", "explanation": "wrong operator",
    "severity": "critical", "fix": None}]})


@pytest.fixture
def staged(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (git_repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    git(git_repo, "write-tree")  # the tree object exists before any write is refused
    monkeypatch.chdir(git_repo)
    return git_repo


def test_a_flipped_byte_in_a_cached_review_is_a_miss_that_heals(scripted, staged: Path) -> None:
    engine = scripted(CRITICAL, CRITICAL)
    assert runner.invoke(app, ["review", "--format", "text"]).exit_code == ExitCode.FAILURE
    [stored] = list(review_cache.cache_folder().iterdir())
    flip_inside(stored, b'"severity": "critical"', 14)  # "critical" -> "cbitical"
    again = runner.invoke(app, ["review", "--format", "text"])
    assert again.exit_code == ExitCode.FAILURE and len(engine.calls) == 2  # reviewed again
    third = runner.invoke(app, ["review", "--format", "text"])
    assert third.exit_code == ExitCode.FAILURE and len(engine.calls) == 2  # from the healed cache


@pytest.mark.parametrize(("reply", "code"), [
    (CLEAN, ExitCode.OK), (CRITICAL, ExitCode.FAILURE), ({"error": "CUDA error: out of memory"}, ExitCode.OK),
], ids=["clean-stays-clean", "finding-still-blocks", "fail-open-holds"])
def test_a_review_cache_that_cannot_be_written_changes_no_outcome(scripted, staged: Path, reply: object,
                                                                  code: int) -> None:
    folder = review_cache.cache_folder()
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("a file where the cache folder should be")  # unwritable, even for root
    scripted(reply)
    result = runner.invoke(app, ["review", "--format", "text"])
    assert result.exit_code == code, result.output
    if reply == CLEAN:
        assert "no findings" in result.output and "review cache not written" in result.output


def _full_disk() -> None:
    """Every file write of the child fails (EFBIG), as on a full disk; pipes still work."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.mark.parametrize(("reply", "code", "says"), [
    (CLEAN, 0, "no findings"), (CRITICAL, 1, "critical: add() subtracts"),
    ({"error": "CUDA error: out of memory"}, 0, "review did NOT run"),
], ids=["clean-stays-clean", "finding-still-blocks", "fail-open-holds"])
def test_a_full_disk_changes_no_review_outcome(staged: Path, tmp_path: Path, reply: object, code: int,
                                               says: str) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps({"replies": [reply]}), encoding="utf-8")
    env = {**os.environ, "GEMMA_CODE_ENGINE": "scripted", "GEMMA_CODE_SCRIPT": str(script),
           "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "gemma_code", "review", "--format", "text"], cwd=staged,
                          env=env, capture_output=True, text=True, preexec_fn=_full_disk, timeout=300)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert says in proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr
    assert not any(paths.cache_dir().rglob("*.json"))  # nothing could be written, nothing was


# ----- cache clear ---------------------------------------------------------------------------------

def test_cache_clear_clears_every_cache(scripted, staged: Path, tmp_path: Path) -> None:
    scripted(CLEAN)
    assert runner.invoke(app, ["review", "--format", "text"]).exit_code == 0
    packed(make_repo(tmp_path / "other", PROJECT))
    PromptCacheStore().put(StateWriter(), "sig", list(range(300)), list(range(300)))
    assert cache_file().exists() and any(review_cache.cache_folder().iterdir())
    result = runner.invoke(app, ["cache", "clear"])
    assert result.exit_code == 0, result.output
    assert "removed 1 state(s)" in result.stdout and "removed 1 cached review(s)" in result.stdout
    assert "removed the context cache" in result.stdout
    left = [p for p in paths.cache_dir().rglob("*") if p.is_file()]
    assert left == []
