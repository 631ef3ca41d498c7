"""Images through llama.cpp's libmtmd on the CPU: the synthetic Gemma 4 model with a random-weights
gemma4v projector written from llama.cpp's own tensor names and keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_png
from synthetic_mmproj import VisionShape, expected_tokens, tensor_shapes

from gemma_code.config import Settings
from gemma_code.documents.images import load_image
from gemma_code.engine.base import Message
from gemma_code.engine.llamacpp import LlamaCppEngine, load_llamacpp_engine
from gemma_code.errors import ExitCode, ModelError

pytestmark = pytest.mark.llama


@pytest.fixture(scope="module")
def engine(gemma4_synthetic_path: Path, mmproj_synthetic_path: Path) -> Iterator[LlamaCppEngine]:
    eng = load_llamacpp_engine(Settings(model=str(gemma4_synthetic_path), n_ctx=4096, n_threads=1,
                                        mmproj=str(mmproj_synthetic_path), n_batch=1120))
    yield eng
    eng.close()


def test_projector_tensor_names_are_llama_cpp_vision_names() -> None:
    """Every tensor is named as gguf-py (llama.cpp's converter) names the vision tower's tensors."""
    import re

    import gguf

    templates = [name for tensor, name in gguf.TENSOR_NAMES.items()
                 if tensor.name.startswith(("V_", "MM_")) or name.startswith(("v.", "mm."))]
    patterns = [re.compile(re.escape(t).replace(r"\{bid\}", r"\d+") + r"(\.weight|\.bias)?$")
                for t in templates]
    for name in tensor_shapes(VisionShape()):
        assert any(p.match(name) for p in patterns), name


@pytest.mark.parametrize(("width", "height"), [(640, 480), (32, 32), (3000, 200), (1920, 1080)])
def test_an_image_takes_the_tokens_llama_cpp_reports(
    engine: LlamaCppEngine, tmp_path: Path, width: int, height: int
) -> None:
    image = load_image(write_png(tmp_path / "shot.png", width, height))
    run = engine.vision.run_for(image)
    assert run.n_image_tokens == expected_tokens(width, height, max_tokens=engine.vision.max_tokens)
    assert engine.image_tokens(image) == run.n_image_tokens + 2  # <|image> ... <image|>
    assert 70 <= run.n_image_tokens <= 1120


def test_a_prompt_with_an_image_generates_and_counts_it(engine: LlamaCppEngine, tmp_path: Path) -> None:
    image = load_image(write_png(tmp_path / "ui.png"))
    messages = [Message("system", "rules"), Message("user", "what is broken here?", images=(image,))]
    prompt = engine.prompt_tokens(messages)
    chunks = list(engine.stream(messages, max_tokens=3, temperature=0.0))
    stats = chunks[-1].stats
    assert stats is not None
    assert stats.prompt_tokens == len(prompt)
    assert stats.image_tokens == expected_tokens(640, 480) == 130
    assert stats.completion_tokens >= 1


def test_the_kv_cache_is_reused_up_to_and_past_an_image(engine: LlamaCppEngine, tmp_path: Path) -> None:
    image = load_image(write_png(tmp_path / "diagram.png", 480, 480))
    first = [Message("system", "rules"), Message("user", "describe it", images=(image,))]
    list(engine.stream(first, max_tokens=2, temperature=0.0))
    follow = [*first, Message("model", "a box"), Message("user", "and the arrow?")]
    stats = list(engine.stream(follow, max_tokens=2, temperature=0.0))[-1].stats
    assert stats is not None
    prompt = engine.prompt_tokens(follow)
    after_image = max(i for i, t in enumerate(prompt) if t < 0) + 1
    assert stats.prompt_tokens_reused >= after_image  # the image was not encoded again
    other = load_image(write_png(tmp_path / "other.png", 500, 480))
    changed = [Message("system", "rules"), Message("user", "describe it", images=(other,))]
    stats = list(engine.stream(changed, max_tokens=2, temperature=0.0))[-1].stats
    assert stats is not None
    first_image = min(i for i, t in enumerate(engine.prompt_tokens(changed)) if t < 0)
    assert stats.prompt_tokens_reused == first_image  # a new image: reuse stops just before it


def test_without_an_mmproj_an_image_is_a_model_error(gemma4_synthetic_path: Path, tmp_path: Path) -> None:
    eng = load_llamacpp_engine(Settings(model=str(gemma4_synthetic_path), n_ctx=1024, n_threads=1))
    try:
        image = load_image(write_png(tmp_path / "a.png", 64, 64))
        with pytest.raises(ModelError) as caught:
            eng.image_tokens(image)
        assert caught.value.exit_code == ExitCode.MODEL
        assert "vision projector (mmproj) is missing" in caught.value.message
        assert "mmproj" in (caught.value.hint or "")
    finally:
        eng.close()


def test_scanned_pdf_pages_go_in_as_images_with_vision(engine: LlamaCppEngine, tmp_path: Path) -> None:
    from pdfs import write_pdf

    from gemma_code.tasks.ask import ask_messages
    from gemma_code.tasks.attachments import pack_documents, read_pdfs

    pdf = write_pdf(tmp_path / "scan.pdf", ["typed page", None])
    docs = pack_documents(engine, read_pdfs([pdf], None), budget=3000)
    assert len(docs.images) == 1 and docs.images[0].label.endswith("page 2")
    assert "page 2 of 2: a scan without text, shown as image 1" in docs.blocks[0]
    assert "--- page 1 of 2 ---\ntyped page" in docs.blocks[0]
    assert any("scanned page 2 sent as images" in n for n in docs.notes)
    messages = ask_messages("what does the scan say?", documents=docs.blocks, images=docs.images)
    prompt = engine.prompt_tokens(messages)
    assert sum(1 for t in prompt if t < 0) + 2 == docs.image_tokens
    stats = list(engine.stream(messages, max_tokens=2, temperature=0.0))[-1].stats
    assert stats is not None and stats.image_tokens == docs.image_tokens - 2


def test_chat_add_image_goes_into_the_next_turn(
    gemma4_synthetic_path: Path, mmproj_synthetic_path: Path, tmp_path: Path
) -> None:
    from test_repl_support import drive, lines

    write_png(tmp_path / "shot.png", 640, 480)
    settings = Settings(model=str(gemma4_synthetic_path), n_ctx=2048, n_threads=1, context=False,
                        max_tokens=2, mmproj=str(mmproj_synthetic_path), prompt_cache=False)
    eng = load_llamacpp_engine(settings)
    try:
        out, repl = drive(lines("/add shot.png", "what is broken?", "and now?"), eng, tmp_path,
                          settings=settings)
        assert "shot.png (image, 132 tokens)" in out
        first_user, second_user = repl.conv.history[0], repl.conv.history[2]
        assert [i.width for i in first_user.images] == [640] and second_user.images == ()
        assert repl.conv.turns[0].stats.image_tokens == 130
        assert repl.conv.turns[1].stats.prompt_tokens_reused > 130  # past the image, not re-encoded
    finally:
        eng.close()


def test_chat_add_image_without_vision_says_why(tmp_path: Path) -> None:
    from test_repl_support import drive, lines

    from gemma_code.engine.scripted import ScriptedEngine

    write_png(tmp_path / "shot.png", 64, 64)
    out, repl = drive(lines("/add shot.png"), ScriptedEngine(), tmp_path)
    assert "the scripted engine cannot read images" in out
    assert repl.conv.pending_images == []


def test_only_a_few_tokenized_images_are_kept(engine: LlamaCppEngine, tmp_path: Path) -> None:
    from gemma_code.engine.vision import MAX_KEPT

    images = [load_image(write_png(tmp_path / f"p{n}.png", 96 + 48 * n, 96)) for n in range(MAX_KEPT + 3)]
    for image in images:
        engine.image_tokens(image)
    last = images[-1]
    prompt = engine.prompt_tokens([Message("user", "this one", images=(last,))])
    vision = engine.vision
    assert len(vision.runs) <= MAX_KEPT and last.digest in vision.runs
    assert all(vision.by_id[t][0].digest == last.digest for t in prompt if t < 0)
    assert images[0].digest not in vision.runs  # the oldest was freed


def test_the_agent_sees_an_image_its_task_names(engine: LlamaCppEngine, tmp_path: Path) -> None:
    from gemma_code.tasks.agent import AgentOptions, AgentSession

    image = load_image(write_png(tmp_path / "design.png", 640, 480))
    session = AgentSession(engine, tmp_path, AgentOptions(mode="plan", max_steps=1, max_tokens=2,
                                                          use_context=False))
    events = list(session.run("make the page match design.png", [image]))
    assert events[-1].type == "done"
    assert session.messages[1].images == (image,)
    assert session.stats.steps[0].prompt_tokens_evaluated > 130  # the image went through llama.cpp
