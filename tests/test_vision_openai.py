"""Images through the openai engine: OpenAI `image_url` parts (PNG data URLs) to a real HTTP stub."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from conftest import write_png
from test_openai_engine import MODEL, Reply, StubServer, answer, engine_for, stub  # noqa: F401
from typer.testing import CliRunner

from gemma_code.cli import app
from gemma_code.documents.images import load_image
from gemma_code.engine.base import Message
from gemma_code.engine.vision import gemma4_image_tokens


def test_images_go_to_the_server_as_image_url_parts_before_the_text(
    stub: StubServer, tmp_path: Path  # noqa: F811
) -> None:
    from PIL import Image

    stub.on("POST", "/v1/chat/completions", answer("a chart", usage={"prompt_tokens": 150,
                                                                    "completion_tokens": 2}))
    engine = engine_for(stub)
    image = load_image(write_png(tmp_path / "chart.png", 320, 200))
    chunks = list(engine.stream([Message("user", "what is this?", images=(image,))], max_tokens=8))
    assert "".join(c.text for c in chunks if c.kind == "text") == "a chart"
    content = stub.requests("/v1/chat/completions")[0].body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "text"]
    assert content[1]["text"] == "what is this?"
    url = content[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (320, 200) and sent.convert("RGB").tobytes() == image.rgb
    assert engine.image_tokens(image) == gemma4_image_tokens(320, 200) + 2


def test_ask_with_an_image_through_a_server(stub: StubServer, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "shot.png", 640, 480)
    stub.on("POST", "/v1/chat/completions", answer("a login form"))
    result = CliRunner().invoke(app, ["ask", "--no-context", "--engine", "openai", "--base-url", stub.url,
                                      "-f", "shot.png", "what is on screen?"])
    assert result.exit_code == 0, result.output
    assert "a login form" in result.stdout
    body = stub.requests("/v1/chat/completions")[0].body
    user = body["messages"][-1]["content"]
    assert user[0]["type"] == "image_url" and user[-1]["text"].endswith("what is on screen?")
    assert json.dumps(body).count('"type": "image_url"') == 1  # one image, sent once
