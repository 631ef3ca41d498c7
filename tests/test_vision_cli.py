"""`ask -f shot.png`: images through the CLI, bad image files, and the missing-projector error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_png
from synthetic_mmproj import expected_tokens
from typer.testing import CliRunner

from gemma_code.cli import app
from gemma_code.documents.images import image_kind, load_image
from gemma_code.errors import ExitCode, UsageError

runner = CliRunner()


@pytest.mark.parametrize(("fmt", "kind"), [("PNG", "PNG"), ("JPEG", "JPEG"), ("WEBP", "WebP"),
                                           ("GIF", "GIF")])
def test_each_image_format_decodes_to_rgb(tmp_path: Path, fmt: str, kind: str) -> None:
    path = write_png(tmp_path / f"pic.{fmt.lower()}", 120, 80, fmt=fmt)
    assert image_kind(path) == kind
    image = load_image(path)
    assert (image.width, image.height) == (120, 80)
    assert len(image.rgb) == 120 * 80 * 3


def test_gif_gives_its_first_frame(tmp_path: Path) -> None:
    from PIL import Image

    frames = [Image.new("RGB", (40, 30), color) for color in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    image = load_image(tmp_path / "anim.gif")
    assert image.rgb[:3] == bytes((255, 0, 0))


def test_transparent_png_is_flattened_on_white(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").rgb[:3] == b"\xff\xff\xff"


def test_truncated_png_is_a_one_line_usage_error(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    whole = write_png(tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    engine = scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "cut.png", "what is this?"])
    assert result.exit_code == ExitCode.USAGE
    assert "cut.png is not a readable PNG" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its hint
    assert engine.calls == []


def test_a_200_mb_image_is_refused_before_decoding(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    big = tmp_path / "huge.png"
    with big.open("wb") as out:
        out.write(write_png(tmp_path / "small.png", 8, 8).read_bytes())
        out.truncate(200 * 1024 * 1024)  # sparse: no 200 MB written
    scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "huge.png", "q"])
    assert result.exit_code == ExitCode.USAGE
    assert "huge.png is 210 MB; images over 50 MB are refused" in result.stderr


def test_huge_pixel_counts_are_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")  # tiny file, 81 M pixels
    with pytest.raises(UsageError, match="too large to decode"):
        load_image(tmp_path / "bomb.png")


def test_an_engine_without_vision_says_so(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "shot.png", 64, 64)
    engine = scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "shot.png", "q"])
    assert result.exit_code == ExitCode.MODEL
    assert "the scripted engine cannot read images" in result.stderr
    assert engine.calls == []


@pytest.mark.llama
def test_ask_with_an_image_runs_the_vision_path_and_counts_it(
    gemma4_synthetic_path: Path, mmproj_synthetic_path: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "shot.png", 640, 480)
    monkeypatch.setenv("GEMMA_CODE_MMPROJ", str(mmproj_synthetic_path))
    result = runner.invoke(app, [
        "ask", "--no-context", "--json", "-m", str(gemma4_synthetic_path), "--n-ctx", "2048",
        "--max-tokens", "2", "-f", "shot.png", "what is on the screen?",
    ])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["image_tokens"] == expected_tokens(640, 480)
    assert stats["prompt_tokens"] > stats["image_tokens"]


@pytest.mark.llama
def test_ask_with_an_image_and_no_mmproj_exits_4_with_the_fix(
    gemma4_synthetic_path: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "shot.png", 64, 64)
    result = runner.invoke(app, [
        "ask", "--no-context", "-m", str(gemma4_synthetic_path), "--n-ctx", "1024", "-f", "shot.png", "q",
    ])
    assert result.exit_code == ExitCode.MODEL
    assert "vision projector (mmproj) is missing" in result.stderr
    assert "GEMMA_CODE_MMPROJ" in result.stderr


@pytest.mark.llama
def test_doctor_says_whether_vision_is_available(
    gemma4_synthetic_path: Path, mmproj_synthetic_path: Path, monkeypatch
) -> None:
    args = ["doctor", "--json", "--model", str(gemma4_synthetic_path), "--n-ctx", "1024"]
    without = json.loads(runner.invoke(app, args).stdout)["model"]["vision"]
    assert without["available"] is False and "GEMMA_CODE_MMPROJ" in without["fix"]
    monkeypatch.setenv("GEMMA_CODE_MMPROJ", str(mmproj_synthetic_path))
    with_it = json.loads(runner.invoke(app, args).stdout)["model"]["vision"]
    assert with_it == {"available": True, "mmproj": str(mmproj_synthetic_path), "projector": "gemma4v"}
    text = runner.invoke(app, args[:1] + args[2:]).stdout
    assert "Vision" in text and "gemma4v" in text


@pytest.mark.llama
def test_a_registry_model_without_its_projector_says_to_pull(
    gemma4_synthetic_path: Path, tmp_path: Path, monkeypatch
) -> None:
    from gemma_code.models import entry_path, find_entry, user_registry_file

    conf = user_registry_file()
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text('[models.vis]\nhf_repo = "org/vis-GGUF"\nhf_file = "vis.gguf"\n'
                    'mmproj_file = "mmproj-vis.gguf"\n', encoding="utf-8")
    entry = find_entry("vis")
    assert entry is not None
    target = entry_path(entry)
    target.parent.mkdir(parents=True)
    target.symlink_to(gemma4_synthetic_path)
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "shot.png", 64, 64)
    result = runner.invoke(app, ["ask", "--no-context", "-m", "vis", "--n-ctx", "1024",
                                 "-f", "shot.png", "q"])
    assert result.exit_code == ExitCode.MODEL
    assert "fetch it with: gemma-code models pull vis" in " ".join(result.stderr.split())


def test_a_saved_chat_keeps_its_images_and_names_those_gone(tmp_path: Path) -> None:
    from gemma_code.engine.base import Message
    from gemma_code.repl.store import SessionFile, read_session

    kept = load_image(write_png(tmp_path / "kept.png", 64, 48))
    changed = load_image(write_png(tmp_path / "changed.png", 64, 48))
    session = SessionFile("s-images", cwd=tmp_path, model="m")
    session.add_message(Message("user", "look", images=(kept, changed)))
    session.add_message(Message("model", "seen"))
    write_png(tmp_path / "changed.png", 80, 48)  # edited after the chat
    info = read_session(session.path)
    assert info.messages[0].images == (kept,)
    assert info.missing_images == [str(tmp_path / "changed.png")]


def test_image_paths_in_a_task_are_found(tmp_path: Path) -> None:
    from gemma_code.tasks.attachments import images_in_text

    write_png(tmp_path / "login.png", 32, 32)
    (tmp_path / "shots").mkdir()
    write_png(tmp_path / "shots" / "after.jpg", 32, 32, fmt="JPEG")
    text = "make it look like (login.png), not like shots/after.jpg. Ignore gone.png and notes.txt"
    assert images_in_text(text, tmp_path) == [tmp_path / "login.png", tmp_path / "shots" / "after.jpg"]


def test_run_with_an_image_in_the_task_needs_vision(scripted, git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    write_png(git_repo / "design.png", 64, 64)
    engine = scripted("unused")
    result = runner.invoke(app, ["run", "--mode", "plan", "make the page match design.png"])
    assert result.exit_code == ExitCode.MODEL
    assert "the scripted engine cannot read images" in result.stderr
    assert engine.calls == []


def test_run_with_a_broken_image_in_the_task_fails_before_loading(scripted, git_repo: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    (git_repo / "design.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    scripted("unused")
    result = runner.invoke(app, ["run", "--mode", "plan", "make the page match design.png"])
    assert result.exit_code == ExitCode.USAGE
    assert "design.png is not a readable PNG" in result.stderr


def test_drop_takes_an_image_out_of_the_next_message(tmp_path: Path) -> None:
    from gemma_code.repl.conversation import Conversation
    from gemma_code.repl.images import drop_images

    conv = Conversation()
    conv.pending_images = [load_image(write_png(tmp_path / n, 16, 16)) for n in ("a.png", "b.png")]
    dropped, rest = drop_images(conv, tmp_path, ["a.png", "notes.py"], everything=False)
    assert dropped == 1 and rest == ["notes.py"]
    assert [Path(i.label).name for i in conv.pending_images] == ["b.png"]
    assert conv.user_message("q").images == tuple(conv.pending_images)
    assert drop_images(conv, tmp_path, [], everything=True)[0] == 1 and conv.pending_images == []
