"""The chat's /history, notices and context count, as the user sees them (scripted engine)."""

from __future__ import annotations

from test_repl_support import drive, lines

from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.repl.store import find_session


def test_history_shows_what_the_user_typed_not_the_prompt(tmp_path):
    (tmp_path / "notes.txt").write_text("remember the milk\n", encoding="utf-8")
    engine = ScriptedEngine(replies=["sure", "an answer"])
    out, repl = drive(lines("/add notes.txt", "what is in it?", "/ask short question", "/history"),
                      engine, tmp_path)
    assert "remember the milk" in engine.calls[0].messages[-1].content  # the model saw the file
    listing = [line for line in out.splitlines() if "you:" in line]
    assert [line.split("you: ")[1] for line in listing] == ["what is in it?", "/ask short question"]

    info = find_session(repl.session.id)
    again, _ = drive(lines("/history"), ScriptedEngine(), tmp_path, resume=info)
    assert "you: /ask short question" in again  # kept in the session file


def test_notices_do_not_look_like_the_input_prompt(tmp_path):
    out, _ = drive(lines("/history"), ScriptedEngine(), tmp_path)
    assert "no exchanges yet" in out
    assert not any(line.lstrip().startswith("›") for line in out.splitlines())


def test_the_context_count_includes_a_resumed_history(tmp_path):
    engine = ScriptedEngine(replies=["a long answer " * 40])
    _, first = drive(lines("a question " * 20), engine, tmp_path)
    fresh = drive("", ScriptedEngine(), tmp_path)[1].context_used
    resumed = drive("", ScriptedEngine(), tmp_path, resume=find_session(first.session.id))[1]
    assert resumed.context_used > fresh + 100
    assert f"ctx {resumed.context_used:,}/" in resumed.toolbar()
