"""The in-process llama.cpp engine on the small real model (Gemma 3 270M, CPU)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, GenerationStats, Message
from gemma_code.engine.chat_templates import render
from gemma_code.engine.llamacpp import LlamaCppEngine, load_llamacpp_engine
from gemma_code.errors import (
    BadModelFileError,
    EngineError,
    ModelNotFoundError,
    PromptTooLongError,
    UnsupportedModelError,
)

pytestmark = pytest.mark.llama

QUESTION = [Message("system", "Answer briefly."), Message("user", "Name three colours.")]


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path) -> Iterator[LlamaCppEngine]:
    eng = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=2048))
    yield eng
    eng.close()


def run(chunks: Iterator[Chunk]) -> tuple[str, GenerationStats]:
    text = ""
    stats = None
    for chunk in chunks:
        if chunk.kind == "stats":
            stats = chunk.stats
        else:
            text += chunk.text
    assert stats is not None, "the last chunk must carry the stats"
    return text, stats


def test_streams_text_with_stats(engine: LlamaCppEngine) -> None:
    text, stats = run(engine.stream(QUESTION, max_tokens=6, temperature=0))
    assert text.strip()
    assert stats.prompt_tokens == len(engine.tokenize(
        "<bos><start_of_turn>user\nAnswer briefly.\n\nName three colours.<end_of_turn>\n"
        "<start_of_turn>model\n"
    ))
    assert stats.prompt_tokens == stats.prompt_tokens_evaluated + stats.prompt_tokens_reused
    assert stats.completion_tokens == 6
    assert stats.stop_reason == "length"
    assert stats.time_to_first_token_s > 0 and stats.prefill_tok_s > 0 and stats.decode_tok_s > 0


def test_model_info_reports_the_fallback_format_and_plan(engine: LlamaCppEngine) -> None:
    info = engine.info
    assert (info.arch, info.chat_format, info.backend, info.n_ctx) == ("gemma3", "gemma3", "cpu", 2048)
    assert any("no chat template" in note for note in info.notes)
    assert any("n_ctx 2,048" in note for note in info.notes)


def test_model_info_names_a_path_by_its_file_and_a_registry_alias_by_its_registry_name(
    engine: LlamaCppEngine, tiny_model_path: Path
) -> None:
    assert engine.info.name == tiny_model_path.stem
    by_alias = load_llamacpp_engine(Settings(model="tiny", n_ctx=256, n_threads=1))
    try:
        assert by_alias.info.name == "gemma3-270m"  # the registry name, not the alias typed
    finally:
        by_alias.close()


def test_model_info_reports_the_context_llama_cpp_made_not_the_one_asked(tiny_model_path: Path) -> None:
    import llama_cpp as lc

    small = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=64, n_threads=1))
    try:
        made = int(lc.llama_n_ctx(small.ctx))
        assert made > 64  # llama.cpp rounds small contexts up
        assert small.info.n_ctx == small.plan.n_ctx == made
        assert any(f"n_ctx {made:,}" in note for note in small.info.notes)
        assert not any("n_ctx 64" in note for note in small.info.notes)
        assert any(f"{made:,}-token context for the 64 asked" in note for note in small.info.notes)
    finally:
        small.close()


def test_second_call_reuses_the_prompt_prefix(engine: LlamaCppEngine) -> None:
    run(engine.stream(QUESTION, max_tokens=2, temperature=0))
    follow_up = [*QUESTION, Message("model", "Red, green, blue."), Message("user", "Two more.")]
    _, stats = run(engine.stream(follow_up, max_tokens=2, temperature=0))
    assert stats.prompt_tokens_reused >= 15
    assert stats.prompt_tokens_evaluated == stats.prompt_tokens - stats.prompt_tokens_reused
    assert engine.kv_tokens()[: stats.prompt_tokens] == engine.tokenize(
        "<bos><start_of_turn>user\nAnswer briefly.\n\nName three colours.<end_of_turn>\n"
        "<start_of_turn>model\nRed, green, blue.<end_of_turn>\n<start_of_turn>user\nTwo more."
        "<end_of_turn>\n<start_of_turn>model\n"
    )


def test_greedy_generation_is_repeatable(engine: LlamaCppEngine) -> None:
    first, _ = run(engine.stream(QUESTION, max_tokens=5, temperature=0))
    second, stats = run(engine.stream(QUESTION, max_tokens=5, temperature=0))
    assert first == second
    assert stats.prompt_tokens_reused == stats.prompt_tokens - 1


def test_grammar_constrains_the_answer(engine: LlamaCppEngine) -> None:
    text, stats = run(engine.stream(QUESTION, max_tokens=8, grammar='root ::= "yes" | "no"'))
    assert text in {"yes", "no"}
    assert stats.stop_reason == "stop"


def test_invalid_grammar_is_an_engine_error(engine: LlamaCppEngine) -> None:
    with pytest.raises(EngineError, match="grammar"):
        run(engine.stream(QUESTION, max_tokens=2, grammar="root ::= ("))


def test_stop_string_cuts_the_answer(engine: LlamaCppEngine) -> None:
    full, _ = run(engine.stream(QUESTION, max_tokens=12, temperature=0))
    stop = full.strip()[3:6]
    assert stop
    cut, stats = run(engine.stream(QUESTION, max_tokens=12, temperature=0, stop=[stop]))
    assert cut == full[: full.index(stop)]
    assert stats.stop_reason == "stop"


def test_closing_the_stream_early_leaves_the_engine_consistent(engine: LlamaCppEngine) -> None:
    prompt = engine.tokenize(
        "<bos><start_of_turn>user\nAnswer briefly.\n\nName three colours.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    chunks = engine.stream(QUESTION, max_tokens=20, temperature=0)
    next(chunks)
    chunks.close()  # what Ctrl-C does
    assert engine.kv_tokens()[: len(prompt)] == prompt
    _, stats = run(engine.stream(QUESTION, max_tokens=2, temperature=0))
    assert stats.prompt_tokens_reused == len(prompt) - 1
    assert stats.completion_tokens == 2


def test_count_tokens_is_exact_without_bos(engine: LlamaCppEngine) -> None:
    assert engine.count_tokens("hello world") == len(engine.tokenize("hello world")) == 2
    assert engine.tokenize("<bos>hi")[0] == 2  # special tokens are parsed
    assert 2 not in engine.tokenize("hi")


def test_prompt_over_the_window_says_by_how_much(engine: LlamaCppEngine) -> None:
    long = [Message("user", "word " * 2100)]
    with pytest.raises(PromptTooLongError, match="exceeds the 2,048-token context window"):
        run(engine.stream(long, max_tokens=16))


def test_kv_cache_survives_save_and_load(
    engine: LlamaCppEngine, tiny_model_path: Path, tmp_path: Path
) -> None:
    run(engine.stream(QUESTION, max_tokens=3, temperature=0))
    tokens = engine.kv_tokens()
    written = engine.save_kv(tmp_path / "kv.bin")
    assert written > 0 and (tmp_path / "kv.bin").stat().st_size == written
    other = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=2048))
    try:
        assert not other.load_kv(tmp_path / "kv.bin", tokens[:-1])
        assert other.kv_tokens() == []
        assert other.load_kv(tmp_path / "kv.bin", tokens)
        assert other.kv_tokens() == tokens
        _, stats = run(other.stream(QUESTION, max_tokens=2, temperature=0))
        assert stats.prompt_tokens_reused == stats.prompt_tokens - 1
    finally:
        other.close()


def test_rollback_behind_the_sliding_window_reprocesses_the_prompt(tiny_model_path: Path) -> None:
    eng = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=2048, n_batch=256))
    try:
        assert eng.n_swa == 512
        body = "one two three four five six seven eight nine ten " * 85  # ~860 tokens
        run(eng.stream([Message("user", "A " + body)], max_tokens=1, temperature=0))
        # the sliding-window cache (window + batch cells) has dropped the earliest positions
        # but still covers the window before the end: a change near the end reuses the rest
        _, near = run(eng.stream([Message("user", "A " + body + "end")], max_tokens=1, temperature=0))
        assert near.prompt_tokens_reused > 800
        assert eng.full_reprocesses == 0
        # a change at the start leaves a 4-token common prefix whose window is gone:
        # the engine re-evaluates everything instead of attending to missing cells
        _, far = run(eng.stream([Message("user", "B " + body)], max_tokens=1, temperature=0))
        assert far.prompt_tokens_reused == 0
        assert far.prompt_tokens_evaluated == far.prompt_tokens
        assert eng.full_reprocesses == 1
    finally:
        eng.close()


def test_missing_model_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        load_llamacpp_engine(Settings(model=str(tmp_path / "absent.gguf")))
    assert info.value.hint


def test_non_gguf_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(BadModelFileError, match="not a GGUF"):
        load_llamacpp_engine(Settings(model=str(bad)))


def test_unknown_architecture_says_which_llama_cpp_python_is_needed(tmp_path: Path) -> None:
    odd = tmp_path / "odd.gguf"
    key, value = b"general.architecture", b"nosucharch"
    odd.write_bytes(
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
        + struct.pack("<IQ", 8, len(value)) + value
    )
    with pytest.raises(UnsupportedModelError, match="nosucharch") as info:
        load_llamacpp_engine(Settings(model=str(odd)))
    assert "0.3.36" in (info.value.hint or "")


def test_checkpoint_brings_back_a_sliding_window_after_a_long_answer(tiny_model_path: Path) -> None:
    eng = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=2048, n_batch=256))
    try:
        body = "one two three four five six seven eight nine ten " * 60  # ~600 tokens
        first = [Message("user", "A " + body)]
        _, stats = run(eng.stream(first, max_tokens=1, temperature=0))
        # a long answer: 400 more tokens in the cache, as generation would leave them
        # (decoded directly to keep the test fast); the window at the prompt's end is gone
        eng._decode(eng.tokenize(" eleven twelve" * 200)[:400])
        # the next turn goes back to just before the answer, like a chat turn does
        follow = [*first, Message("model", "Sure."), Message("user", "Again?")]
        text, again = run(eng.stream(follow, max_tokens=4, temperature=0))
        assert again.prompt_tokens_reused >= stats.prompt_tokens - 2
        assert eng.checkpoint_restores == 1 and eng.full_reprocesses == 0
        assert eng.kv_tokens()[: again.prompt_tokens] == eng.tokenize(render(follow, "gemma3"))
    finally:
        eng.close()
    fresh = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=2048, n_batch=256))
    try:  # the restored cache gives the same greedy answer as evaluating everything
        assert run(fresh.stream(follow, max_tokens=4, temperature=0))[0] == text
    finally:
        fresh.close()


def test_speculative_decoding_gives_the_same_greedy_answer(engine: LlamaCppEngine) -> None:
    copy = [Message("user", "Repeat exactly: def add(a, b):\n    return a + b\n\ndef sub(a, b):")]
    plain, plain_stats = run(engine.stream(copy, max_tokens=24, temperature=0))
    fast, stats = run(engine.stream(copy, max_tokens=24, temperature=0, speculative=True))
    assert fast == plain
    assert stats.completion_tokens == plain_stats.completion_tokens
    assert stats.draft_tokens > 0 and 0 < stats.draft_accepted <= stats.draft_tokens
    # the cache is consistent afterwards: the same prompt reuses all but its last token
    _, again = run(engine.stream(copy, max_tokens=1, temperature=0))
    assert again.prompt_tokens_reused == again.prompt_tokens - 1


def test_turn_markers_quoted_in_a_question_stay_text(engine: LlamaCppEngine) -> None:
    quoted = [Message("user", "What does '<end_of_turn>\\n<start_of_turn>model' do?")]
    plain = [Message("user", "What does this do?")]
    for control in engine.tokenize("<start_of_turn><end_of_turn>"):
        assert engine.prompt_tokens(quoted).count(control) == engine.prompt_tokens(plain).count(control)
    assert engine.prompt_tokens(QUESTION) == engine.tokenize(render(QUESTION, "gemma3"))


def test_zero_max_tokens_only_prefills_the_cache(engine: LlamaCppEngine) -> None:
    tokens = engine.prompt_tokens(QUESTION)
    _, stats = run(engine.generate_tokens(tokens, max_tokens=0, temperature=0))
    assert stats.completion_tokens == 0
    assert engine.kv_tokens() == tokens
    _, after = run(engine.stream(QUESTION, max_tokens=1, temperature=0))
    assert after.prompt_tokens_reused == len(tokens) - 1
