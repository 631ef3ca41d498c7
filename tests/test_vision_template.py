"""Images sit where Gemma 4's own chat template puts image parts (the GGUF's Jinja2 template)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_code.engine.base import ImageData, Message
from gemma_code.engine.chat_templates import render
from gemma_code.models.gguf_header import read_metadata

PIXEL = ImageData("a.png", 1, 1, b"\0\0\0", "d1")


def template_render(template: str, messages: list[Message], *, think: bool) -> str:
    """The template with content as parts: an `image` part per image, then the text."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    roles = {"model": "assistant"}
    rendered = [
        {"role": roles.get(m.role, m.role),
         "content": [*({"type": "image"} for _ in m.images), {"type": "text", "text": m.content}]
         if m.images else m.content}
        for m in messages
    ]
    out: str = env.from_string(template).render(
        messages=rendered, bos_token="<bos>", eos_token="<eos>", add_generation_prompt=True,
        enable_thinking=think,
    )
    return out


@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("n_images", [1, 2])
def test_image_parts_render_as_the_embedded_template_does(
    gemma4_vocab: Path, think: bool, n_images: int
) -> None:
    template = str(read_metadata(gemma4_vocab)["tokenizer.chat_template"])
    messages = [
        Message("system", "Be brief."),
        Message("user", "What is wrong in this screenshot?", images=(PIXEL,) * n_images),
        Message("model", "The button is cut off."),
        Message("user", "and here?", images=(PIXEL,)),
    ]
    assert render(messages, "gemma4", think=think) == template_render(template, messages, think=think)
