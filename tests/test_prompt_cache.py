"""The persistent prompt (KV) cache: keying, LRU bound, `cache info|clear`, and with the real
small model: a restored prefix is reused, gives the same answer, and survives a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code.cli import app
from gemma_code.config import Settings
from gemma_code.engine.base import GenerationStats, Message
from gemma_code.engine.prompt_cache import (
    MIN_PREFIX_TOKENS,
    PrefixCache,
    PromptCacheStore,
    cache_folder,
    common_prefix,
    entry_key,
)
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.integrity import file_crc, sealed

runner = CliRunner()
CONTEXT = "\n".join(f"def function_{i}(x):\n    return x * {i} + {i * 7}\n" for i in range(16))
SYSTEM = "You answer questions about code.\n\n# Repository context\n\n" + CONTEXT
# a file quoting the chat template: the engine reads its `<start_of_turn>` as text, not a control token
QUOTING = SYSTEM.replace("# Repository context\n\n", "# Repository context\n\nT = '<start_of_turn>user'\n")


def question(text: str, system: str = SYSTEM) -> list[Message]:
    return [Message("system", system), Message("user", text)]


def run(cache: PrefixCache, engine, messages: list[Message]) -> tuple[str, GenerationStats]:
    text, stats = "", GenerationStats()
    chunks = engine.stream(messages, max_tokens=6, temperature=0.0)
    for chunk in cache.wrap(chunks, messages, think=False):
        if chunk.kind == "text":
            text += chunk.text
        elif chunk.stats is not None:
            stats = chunk.stats
    return text, stats


def write_entry(folder: Path, key: str, size: int, tokens: list[int]) -> None:
    """An entry as the store writes it: a state file and its JSON description."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.kv").write_bytes(b"\0" * size)
    meta = {"key": key, "sig": "s", "model": "m", "tokens": tokens, "n_prefix": len(tokens),
            "size": size, "created": 0.0, "crc32": file_crc(folder / f"{key}.kv")}
    (folder / f"{key}.json").write_text(json.dumps(sealed(meta)))


# ----- without a model ---------------------------------------------------------------------------

def test_common_prefix_counts_matching_leading_tokens():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_key_depends_on_the_signature_and_every_prefix_token():
    assert entry_key("a", [1, 2, 3]) != entry_key("b", [1, 2, 3])
    assert entry_key("a", [1, 2, 3]) != entry_key("a", [1, 2, 4])
    assert entry_key("a", [12, 3]) != entry_key("a", [1, 23])


def test_engines_without_state_save_pass_through_untouched(tmp_path):
    engine = ScriptedEngine(replies=["plain answer"])
    cache = PrefixCache.open(engine, Settings())
    chunks = list(cache.wrap(engine.stream(question("q"), max_tokens=10), question("q"), think=False))
    assert "".join(c.text for c in chunks if c.kind == "text") == "plain answer"
    assert chunks[-1].stats is not None and chunks[-1].stats.prompt_tokens_reused == 0
    assert cache.notes == [] and not cache_folder().exists()


def test_lookup_takes_the_longest_entry_that_is_a_whole_prefix(tmp_path):
    store = PromptCacheStore(tmp_path)
    write_entry(tmp_path, "short", 10, [1, 2])
    write_entry(tmp_path, "long", 10, [1, 2, 3, 4])
    write_entry(tmp_path, "diverges", 10, [1, 2, 3, 9, 9, 9])
    assert store.lookup("s", [1, 2, 3, 4, 5]).key == "long"
    assert store.lookup("s", [1, 2, 7]).key == "short"
    assert store.lookup("other-model", [1, 2, 3, 4, 5]) is None


def test_eviction_removes_least_recently_used_first(tmp_path):
    store = PromptCacheStore(tmp_path, max_bytes=250)
    for n, key in enumerate(["old", "mid", "new"]):
        write_entry(tmp_path, key, 100, [n])
        os.utime(tmp_path / f"{key}.kv", (1000 + n, 1000 + n))
    store.touch(next(e for e in store.entries() if e.key == "old"))  # used just now
    assert store.evict() == ["mid"]
    assert sorted(e.key for e in store.entries()) == ["new", "old"]
    assert store.total_bytes() <= 250


def test_broken_descriptions_are_removed_not_fatal(tmp_path):
    store = PromptCacheStore(tmp_path)
    write_entry(tmp_path, "good", 10, [1])
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bad.kv").write_bytes(b"x")
    assert [e.key for e in store.entries()] == ["good"]
    assert not (tmp_path / "bad.kv").exists()


def test_cache_info_and_clear_commands():
    write_entry(cache_folder(), "a" * 32, 3 << 20, list(range(300)))
    info = runner.invoke(app, ["cache", "info"])
    assert info.exit_code == 0
    assert "1 state(s), 3.0 MiB of 8,192.0 MiB" in info.stdout and "300 tokens" in info.stdout
    data = json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)
    assert data["entries"] == 1 and data["bytes"] == 3 << 20 and data["states"][0]["tokens"] == 300
    cleared = runner.invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed 1 state(s), 3.0 MiB" in cleared.stdout
    assert PromptCacheStore().entries() == []


def test_stats_count_a_prefix_evaluated_before_the_turn_as_evaluated():
    cache = PrefixCache(ScriptedEngine(), Settings(), None)
    cache.prefill_tokens, cache.prefill_s = 300, 1.5
    stats = GenerationStats(prompt_tokens=310, prompt_tokens_evaluated=10, prompt_tokens_reused=300,
                            time_to_first_token_s=0.1, prefill_s=0.1)
    cache.account(stats)
    assert (stats.prompt_tokens_evaluated, stats.prompt_tokens_reused) == (310, 0)
    assert stats.time_to_first_token_s == pytest.approx(1.6)


# ----- with the real small model -----------------------------------------------------------------

def tiny_settings(path: Path, **changes: object) -> Settings:
    settings = Settings(model=str(path), n_ctx=2048, n_threads=1, temperature=0.0, max_tokens=6)
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_path):
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    engine = load_llamacpp_engine(tiny_settings(tiny_model_path))
    yield engine
    engine.close()


@pytest.mark.llama
@pytest.mark.parametrize("system", [SYSTEM, QUOTING], ids=["plain", "quoting-the-template"])
def test_a_new_engine_restores_the_saved_prefix_and_answers_the_same(tiny_model_path, tmp_path, system):
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    store = PromptCacheStore(tmp_path)
    settings = tiny_settings(tiny_model_path)
    first = load_llamacpp_engine(settings)
    try:
        cold = PrefixCache.open(first, settings, store)
        cold_text, cold_stats = run(cold, first, question("What does function_3 return?", system))
    finally:
        first.close()
    assert cold_stats.prompt_tokens_reused == 0
    assert cold_stats.prompt_tokens_evaluated == cold_stats.prompt_tokens
    assert "saved" in cold.notes[0] and len(store.entries()) == 1

    second = load_llamacpp_engine(settings)
    try:
        warm = PrefixCache.open(second, settings, store)
        warm_text, warm_stats = run(warm, second, question("What does function_3 return?", system))
    finally:
        second.close()
    prefix = len(store.entries()[0].tokens)
    assert prefix >= MIN_PREFIX_TOKENS
    assert "restored" in warm.notes[0]
    assert warm_stats.prompt_tokens_reused == prefix
    assert warm_stats.prompt_tokens_evaluated == warm_stats.prompt_tokens - prefix
    assert warm_stats.prompt_tokens_evaluated < cold_stats.prompt_tokens_evaluated / 10
    assert warm_text == cold_text  # greedy decoding over the restored state: the same answer
    assert len(store.entries()) == 1


@pytest.mark.llama
def test_a_state_saved_under_other_settings_is_not_loaded(tiny_model_path, tiny_engine, tmp_path):
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    store = PromptCacheStore(tmp_path)
    run(PrefixCache.open(tiny_engine, tiny_settings(tiny_model_path), store), tiny_engine, question("a?"))
    other_settings = tiny_settings(tiny_model_path, n_ctx=1024)
    other = load_llamacpp_engine(other_settings)
    try:
        cache = PrefixCache.open(other, other_settings, store)
        _, stats = run(cache, other, question("a?"))
    finally:
        other.close()
    assert stats.prompt_tokens_reused == 0 and not any("restored" in n for n in cache.notes)
    assert len({e.sig for e in store.entries()}) == 2


@pytest.mark.llama
def test_disk_use_stays_under_the_limit(tiny_model_path, tiny_engine, tmp_path):
    run(PrefixCache.open(tiny_engine, tiny_settings(tiny_model_path), None), tiny_engine, question("x"))
    kv = tiny_engine.kv_tokens()
    size = PromptCacheStore(tmp_path / "probe").put(tiny_engine, "sig", [9], kv).size
    store = PromptCacheStore(tmp_path / "bounded", max_bytes=int(size * 2.5))
    past = time.time_ns() - 100 * 10**9  # each entry is older than the next one put
    for n in range(4):
        entry = store.put(tiny_engine, "sig", [n], kv)
        used = past + n * 10**9  # distinct last-use times, set rather than waited for
        os.utime(entry.state_path, ns=(used, used))
    assert len(store.entries()) == 2 and store.total_bytes() <= store.max_bytes
    assert sorted(e.key for e in store.entries()) == sorted(entry_key("sig", [n]) for n in (2, 3))


@pytest.mark.llama
def test_second_ask_process_restores_the_prefix_from_disk(tiny_model_path, git_repo):
    (git_repo / "funcs.py").write_text(CONTEXT, encoding="utf-8")
    subprocess.run(["git", "add", "funcs.py"], cwd=git_repo, check=True)
    env = {**os.environ, "GEMMA_CODE_MODEL": str(tiny_model_path), "GEMMA_CODE_N_CTX": "2048",
           "GEMMA_CODE_N_THREADS": "1", "GEMMA_CODE_TEMPERATURE": "0", "GEMMA_CODE_ENGINE": "llamacpp",
           # a set budget: on a CPU the first run's measured speed may resize an unset one once
           "GEMMA_CODE_BUDGET": "1024"}
    command = [sys.executable, "-m", "gemma_code", "ask", "--json", "--max-tokens", "4",
               "what does function_3 return?"]
    runs = []
    for _ in range(2):
        done = subprocess.run(command, cwd=git_repo, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    cold, warm = (r["stats"] for r in runs)
    assert cold["prompt_tokens_reused"] == 0
    assert warm["prompt_tokens_reused"] >= MIN_PREFIX_TOKENS
    assert warm["prompt_tokens_evaluated"] < cold["prompt_tokens_evaluated"] / 5
    assert runs[0]["answer"] == runs[1]["answer"]

