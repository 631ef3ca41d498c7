"""Images in `serve` requests: the real openai and anthropic clients send them to a running server.

The scripted engine with `image_tokens` stands for a model with its vision projector and logs
the images it was shown; the llama tests run the synthetic Gemma 4 model through libmtmd.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_png
from test_serve_agents import Server, claude, oai, scripted_server

from gemma_code.documents.images import load_image

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

VISION = {"image_tokens": 256}  # each image takes 256 prompt positions in the scripted engine


def _png(tmp_path: Path, width: int = 64, height: int = 48) -> tuple[str, str]:
    """A PNG written with Pillow: (its base64, the digest of its pixels as `-f` decodes them)."""
    path = write_png(tmp_path / f"shot-{width}x{height}.png", width, height)
    return base64.b64encode(path.read_bytes()).decode(), load_image(path).digest


def _images_seen(server: Server) -> list[dict[str, Any]]:
    calls = [json.loads(line) for line in server.log.read_text().splitlines()]
    return [i for call in calls for m in call["messages"] if m["role"] == "user" for i in m["images"]]


def _block(data: str) -> dict[str, Any]:
    """An Anthropic image block with a base64 PNG source."""
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def _chat_image(data: str, text: str = "What is on the screen?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
    ]}]


def test_chat_completions_image_reaches_the_model_and_is_counted(tmp_path: Path) -> None:
    data, digest = _png(tmp_path, 64, 48)
    with scripted_server(tmp_path, ["A login form."], script=VISION) as server:
        reply = oai(server).chat.completions.create(model="scripted", messages=_chat_image(data))
        assert reply.choices[0].message.content == "A login form."
        seen = _images_seen(server)
        assert [(i["width"], i["height"], i["digest"]) for i in seen] == [(64, 48, digest)]
        assert reply.usage is not None and reply.usage.prompt_tokens > 256  # the image and the text


def test_responses_input_image_reaches_the_model(tmp_path: Path) -> None:
    data, digest = _png(tmp_path, 40, 30)
    with scripted_server(tmp_path, ["A chart."], script=VISION) as server:
        reply = oai(server).responses.create(model="scripted", input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Describe it."},
            {"type": "input_image", "image_url": f"data:image/png;base64,{data}", "detail": "auto"},
        ]}])
        assert reply.output_text == "A chart."
        assert [i["digest"] for i in _images_seen(server)] == [digest]
        assert reply.usage is not None and reply.usage.input_tokens > 256


def test_anthropic_image_block_reaches_the_model_streamed(tmp_path: Path) -> None:
    data, digest = _png(tmp_path, 32, 32)
    with scripted_server(tmp_path, ["A red square."], script=VISION) as server:
        with claude(server).messages.stream(model="scripted", max_tokens=32, messages=[
            {"role": "user", "content": [
                _block(data), {"type": "text", "text": "What colour?"},
            ]},
        ]) as stream:
            final = stream.get_final_message()
        assert final.content[0].text == "A red square."  # type: ignore[union-attr]
        assert [(i["width"], i["digest"]) for i in _images_seen(server)] == [(32, digest)]
        assert final.usage.input_tokens > 256
        counted = claude(server).messages.count_tokens(model="scripted", messages=[
            {"role": "user", "content": [_block(data), {"type": "text", "text": "What colour?"}]}])
        assert counted.input_tokens == final.usage.input_tokens


def test_remote_urls_bad_base64_and_non_images_are_refused(tmp_path: Path) -> None:
    data, _ = _png(tmp_path)
    with scripted_server(tmp_path, [], script=VISION) as server:
        client = oai(server)
        remote = [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/shot.png"}}]}]
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="scripted", messages=remote)
        assert "never fetches image URLs" in str(info.value) and "data:image/png;base64" in str(info.value)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="scripted", messages=_chat_image("not base64!!"))
        assert "not valid base64" in str(info.value)
        text_bytes = base64.b64encode(b"hello, not a picture").decode()
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="scripted", messages=_chat_image(text_bytes))
        assert "is not a readable image" in str(info.value)
        truncated = base64.b64encode(base64.b64decode(data)[:60]).decode()
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="scripted", input=[{"role": "user", "content": [
                {"type": "input_image", "image_url": f"data:image/png;base64,{truncated}"}]}])
        assert "not a readable PNG" in str(info.value)
        with pytest.raises(anthropic.BadRequestError) as info_a:
            claude(server).messages.create(model="scripted", max_tokens=8, messages=[
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}])
        assert "never fetches image URLs" in str(info_a.value)
        assert info_a.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert not server.log.exists()  # nothing reached the model


def test_an_engine_without_vision_refuses_images_with_the_fix(tmp_path: Path) -> None:
    data, _ = _png(tmp_path)
    with scripted_server(tmp_path, []) as server:
        with pytest.raises(openai.BadRequestError) as info:
            oai(server).chat.completions.create(model="scripted", messages=_chat_image(data))
        assert "cannot read images" in str(info.value) and "mmproj" in str(info.value)
        assert not server.log.exists()


@pytest.mark.llama
def test_synthetic_gemma4_without_mmproj_names_the_setting(
    gemma4_synthetic_path: Path, tmp_path: Path
) -> None:
    data, _ = _png(tmp_path)
    with scripted_server(tmp_path, [], "-m", str(gemma4_synthetic_path), "--n-ctx", "1024",
                         env={"GEMMA_CODE_ENGINE": "llamacpp"}) as server:
        with pytest.raises(anthropic.BadRequestError) as info:
            claude(server).messages.create(model=str(gemma4_synthetic_path), max_tokens=2, messages=[
                {"role": "user", "content": [_block(data)]}])
        assert "vision projector (mmproj) is missing" in str(info.value)
        assert "GEMMA_CODE_MMPROJ" in str(info.value)


@pytest.mark.llama
def test_synthetic_gemma4_with_mmproj_sees_the_image(
    gemma4_synthetic_path: Path, mmproj_synthetic_path: Path, tmp_path: Path
) -> None:
    from synthetic_mmproj import expected_tokens

    data, _ = _png(tmp_path, 640, 480)
    with scripted_server(tmp_path, [], "-m", str(gemma4_synthetic_path), "--n-ctx", "2048",
                         env={"GEMMA_CODE_ENGINE": "llamacpp",
                              "GEMMA_CODE_MMPROJ": str(mmproj_synthetic_path)}) as server:
        client = oai(server)
        reply = client.chat.completions.create(
            model=str(gemma4_synthetic_path), max_tokens=2, messages=_chat_image(data, "hi"))
        text_only = client.chat.completions.create(
            model=str(gemma4_synthetic_path), max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        assert reply.usage is not None and text_only.usage is not None
        image_share = reply.usage.prompt_tokens - text_only.usage.prompt_tokens
        # the image's embeddings, its <|image> and <image|> markers, and the template's line breaks
        assert expected_tokens(640, 480) + 2 <= image_share <= expected_tokens(640, 480) + 8


def test_an_image_over_the_size_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    from gemma_code.documents import images
    from gemma_code.server.images import image_of_base64
    from gemma_code.server.runner import ApiError

    data, _ = _png(tmp_path, 64, 64)  # ~12 KB of noise
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 4096)
    with pytest.raises(ApiError, match=r"the image is over .* MB; send a smaller one") as caught:
        image_of_base64(data, "image/png", "messages[0].content[0]")
    assert caught.value.status == 400
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", len(data))  # base64 fits, the bytes too
    assert image_of_base64(data, "image/png", "x").width == 64
