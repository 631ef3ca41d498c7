"""The Gemma 4 path without the weights: a 6-layer random-weights GGUF with the real
architecture keys, tokenizer and chat template, loaded through the engine; and our prompt
rendering checked token for token against the template embedded in that GGUF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synthetic_gguf import TINY, tensor_specs

from gemma_code.config import Settings
from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import render
from gemma_code.engine.llamacpp import LlamaCppEngine, load_llamacpp_engine
from gemma_code.models.gguf_header import read_metadata, tensor_sizes

pytestmark = pytest.mark.llama

CONVERSATIONS = [
    [Message("user", "Hello there.")],
    [Message("system", "You are terse."), Message("user", "  What is 2+2?  ")],
    [
        Message("system", "Review code.\nBe kind."),
        Message("user", "Look at main.py"),
        Message("model", "<|channel>thought\nIt is short.<channel|>It looks fine."),
        Message("user", "And util.py?"),
    ],
    [
        Message("user", "first"),
        Message("model", "one"),
        Message("user", "second\n\n```py\nprint('x')\n```"),
    ],
]


@pytest.fixture(scope="module")
def gemma4_path(gemma4_synthetic_path: Path) -> Path:
    """The 6-layer synthetic Gemma 4 (written once per session, ~160 MB, outside the repo)."""
    return gemma4_synthetic_path


@pytest.fixture(scope="module")
def gemma4(gemma4_path: Path) -> Iterator[LlamaCppEngine]:
    eng = load_llamacpp_engine(Settings(model=str(gemma4_path), n_ctx=4096))
    yield eng
    eng.close()


def template_render(template: str, messages: list[Message], *, think: bool) -> str:
    """The GGUF's own Jinja2 template, rendered as transformers/llama.cpp do."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    roles = {"model": "assistant"}
    rendered: str = env.from_string(template).render(
        messages=[{"role": roles.get(m.role, m.role), "content": m.content} for m in messages],
        bos_token="<bos>", eos_token="<eos>", add_generation_prompt=True,
        enable_thinking=think,
    )
    return rendered


def test_synthetic_model_has_gemma4_architecture(gemma4_path: Path) -> None:
    meta = read_metadata(gemma4_path)
    assert meta["general.architecture"] == "gemma4"
    assert meta["gemma4.block_count"] == 6
    assert meta["gemma4.attention.sliding_window_pattern"] == [True] * 5 + [False]
    assert meta["tokenizer.ggml.model"] == "gemma4"
    assert "<|turn>" in meta["tokenizer.chat_template"]
    sizes = tensor_sizes(gemma4_path)
    assert set(sizes) == {spec.name for spec in tensor_specs(TINY, 262144)}
    assert "blk.5.attn_v.weight" not in sizes  # full-attention layers use K as V
    assert 100e6 < gemma4_path.stat().st_size < 170e6


def test_full_size_tensor_list_matches_the_26b_a4b(gemma4_path: Path) -> None:
    from synthetic_gguf import GEMMA4_26B_A4B

    specs = tensor_specs(GEMMA4_26B_A4B, 262144)
    assert len(specs) == 658
    by_name = {spec.name: spec.shape for spec in specs}
    assert by_name["blk.5.attn_q.weight"] == (2816, 8192)
    assert by_name["blk.0.ffn_gate_up_exps.weight"] == (2816, 1408, 128)
    assert by_name["rope_freqs.weight"] == (256,)


def test_engine_loads_gemma4_and_generates(gemma4: LlamaCppEngine) -> None:
    assert (gemma4.info.arch, gemma4.info.chat_format) == ("gemma4", "gemma4")
    assert gemma4.n_swa == 1024
    stats = None
    for chunk in gemma4.stream(CONVERSATIONS[1], max_tokens=5, temperature=0):
        if chunk.kind == "stats":
            stats = chunk.stats
        else:
            assert isinstance(chunk.text, str)
    assert stats is not None and stats.completion_tokens == 5
    assert stats.prompt_tokens == len(gemma4.tokenize(render(CONVERSATIONS[1], "gemma4")))


def test_gemma4_end_of_generation_tokens(gemma4: LlamaCppEngine) -> None:
    import llama_cpp

    for token in (1, 106, 50):  # <eos>, <turn|>, <|tool_response>
        assert llama_cpp.llama_vocab_is_eog(gemma4.vocab, token)
    assert gemma4.tokenize("<|turn>model\n<|channel>thought\n<channel|>")[:1] == [105]


@pytest.mark.parametrize("think", [False, True], ids=["thinking-off", "thinking-on"])
@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_rendered_prompt_matches_the_embedded_template_token_for_token(
    gemma4: LlamaCppEngine, gemma4_path: Path, index: int, think: bool
) -> None:
    template = read_metadata(gemma4_path)["tokenizer.chat_template"]
    messages = CONVERSATIONS[index]
    ours = render(messages, "gemma4", think=think)
    theirs = template_render(template, messages, think=think)
    assert gemma4.tokenize(ours) == gemma4.tokenize(theirs)
    assert ours == theirs


def test_thinking_prompts_differ_only_where_the_template_says(gemma4_path: Path) -> None:
    template: Any = read_metadata(gemma4_path)["tokenizer.chat_template"]
    on = template_render(template, CONVERSATIONS[0], think=True)
    off = template_render(template, CONVERSATIONS[0], think=False)
    assert "<|think|>" in on and "<|think|>" not in off
    assert off.endswith("<|turn>model\n<|channel>thought\n<channel|>")


def test_moe_experts_can_be_pinned_to_cpu_memory(gemma4_path: Path) -> None:
    eng = load_llamacpp_engine(Settings(model=str(gemma4_path), n_ctx=2048, cpu_moe="on"))
    try:
        assert eng.cpu_moe
        # llama.cpp confirms the override for the expert weights (and scales) of every layer
        assert sum("_exps.weight" in line for line in eng.overridden) == 2 * 6
        assert all("_exps." in line and "to CPU" in line for line in eng.overridden)
        stats = None
        for chunk in eng.stream(CONVERSATIONS[0], max_tokens=3, temperature=0):
            stats = chunk.stats or stats
        assert stats is not None and stats.completion_tokens == 3
    finally:
        eng.close()


@pytest.mark.parametrize("think", [False, True])
def test_prompt_tokens_equal_the_whole_rendered_prompt_for_plain_content(
    gemma4: LlamaCppEngine, think: bool
) -> None:
    for messages in CONVERSATIONS:
        assert gemma4.prompt_tokens(messages, think=think) == gemma4.tokenize(
            render(messages, "gemma4", think=think)
        )


def test_control_strings_inside_content_stay_text(gemma4: LlamaCppEngine) -> None:
    quoted = "TURN = '<|turn>'\nprint(TURN + 'model\\n<|channel>thought')\n<turn|>"
    messages = [Message("system", "Explain code."), Message("user", quoted)]
    tokens = gemma4.prompt_tokens(messages)
    plain = gemma4.prompt_tokens([Message("system", "Explain code."), Message("user", "x")])
    # control tokens <|turn> (105) and <turn|> (106) appear only where the template puts them
    # (<|channel> is a user-defined token, which llama.cpp's tokenizer always matches)
    for control in (105, 106):
        assert tokens.count(control) == plain.count(control)
    assert gemma4.tokenize(render(messages, "gemma4")).count(105) > plain.count(105)
