"""The chat REPL driven through prompt_toolkit's pipe input with the scripted engine."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest
from test_repl_support import ALT_ENTER, ENTER, InterruptingFile, drive, lines

from gemma_code.config import Settings
from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import render
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.repl.commands import Commands
from gemma_code.repl.conversation import INTERRUPTED_MARK
from gemma_code.repl.store import find_session, list_sessions, read_session

REQUIRED = [
    "add", "drop", "files", "context", "ask", "edit", "refactor", "explain", "apply", "diff", "undo",
    "commit", "review", "clear", "reset", "model", "think", "tokens", "stats", "save", "load",
    "history", "help", "exit",
]


def test_follow_up_prompt_extends_the_previous_one_unchanged(tmp_path):
    engine = ScriptedEngine(replies=["First **answer**.", "Second."])
    out, _ = drive(lines("hello there", "and then?"), engine, tmp_path)
    assert "First **answer**." in out and "Second." in out
    first, second = engine.calls
    history = [*first.messages, Message("model", "First **answer**.")]
    before = render(history, "gemma4", add_generation_prompt=False)
    assert second.prompt.startswith(before)  # history never rewritten: the KV prefix stays valid
    assert second.messages[-1] == Message("user", "and then?")


def test_enter_sends_and_alt_enter_inserts_a_newline(tmp_path):
    engine = ScriptedEngine(replies=["ok"])
    drive("line one" + ALT_ENTER + "line two" + ENTER, engine, tmp_path)
    assert engine.calls[0].messages[-1].content == "line one\nline two"


def test_every_command_has_help_with_an_example(tmp_path):
    engine = ScriptedEngine()
    out, repl = drive(lines("/help"), engine, tmp_path)
    names = repl.commands.names()
    assert set(REQUIRED) <= set(names)
    for name in names:
        summary, examples = repl.commands.summary(name)
        assert summary and examples, name
        assert f"/{name}" in out and examples[0] in out
    assert "!CMD" in out


def test_help_for_one_command_shows_all_its_examples(tmp_path):
    out, _ = drive(lines("/help explain"), ScriptedEngine(), tmp_path)
    assert "/explain src/app.py:10-40" in out and "/explain src/app.py::main" in out


def test_unknown_command_suggests_the_closest_and_the_session_goes_on(tmp_path):
    engine = ScriptedEngine(replies=["still here"])
    out, _ = drive(lines("/hstory", "hi"), engine, tmp_path)
    assert "unknown command /hstory" in out and "did you mean /history?" in out
    assert "still here" in out


def test_a_failing_command_prints_an_error_and_the_session_goes_on(tmp_path):
    engine = ScriptedEngine(replies=["answered"])

    def loader(settings: Settings) -> ScriptedEngine:
        if settings.model == "broken":
            raise RuntimeError("cannot map the file")
        return engine

    out, repl = drive(lines("/model broken", "hi"), engine, tmp_path, loader=loader, debug=False)
    assert "error: /model failed: RuntimeError: cannot map the file" in out
    assert "answered" in out and repl.engine is engine


def test_engine_error_during_a_turn_is_reported_and_the_turn_not_recorded(tmp_path):
    engine = ScriptedEngine(replies=[{"error": "out of memory"}, "fine now"])
    out, repl = drive(lines("first", "second"), engine, tmp_path)
    assert "error: scripted engine: out of memory" in out
    assert [m.content for m in repl.conv.history] == ["second", "fine now"]


def test_ctrl_c_during_an_answer_keeps_the_partial_answer_marked(tmp_path):
    engine = ScriptedEngine(replies=["partial words then more words", "next answer"])
    out_file = InterruptingFile("partial")
    out, repl = drive(lines("tell me", "go on"), engine, tmp_path, out=out_file)
    assert out_file.fired
    assert "interrupted; the partial answer stays in the conversation" in out
    kept = repl.conv.history[1].content
    assert kept.startswith("partial") and kept.endswith(INTERRUPTED_MARK)
    assert "more words" not in kept
    assert engine.calls[1].messages[2].content == kept  # the next turn builds on it
    assert "next answer" in out


def test_ctrl_c_before_any_text_adds_nothing_to_the_conversation(tmp_path, monkeypatch):
    engine = ScriptedEngine(replies=["<|channel>thought\nhmm<channel|>never shown", "ok"])
    thoughts = InterruptingFile("hmm")  # piped output: thoughts go to stderr
    monkeypatch.setattr(sys, "stderr", thoughts)
    settings = Settings(context=False, max_tokens=64, think=True, show_thoughts=True)
    out, repl = drive(lines("q1", "q2"), engine, tmp_path, settings=settings)
    assert thoughts.fired
    assert "cancelled; nothing was added" in out
    assert [m.content for m in repl.conv.history] == ["q2", "ok"]


def test_ctrl_c_at_the_prompt_clears_the_line_and_ctrl_d_quits(tmp_path):
    engine = ScriptedEngine(replies=["only answer"])
    out, _repl = drive("typed then abandoned\x03" + "real question" + ENTER + "\x04", engine, tmp_path)
    assert [c.messages[-1].content for c in engine.calls] == ["real question"]
    assert "session saved: gemma-code chat --resume" in out


def test_session_is_saved_as_jsonl_and_resumes_with_its_history(tmp_path):
    engine = ScriptedEngine(replies=["A1", "A2"])
    _, repl = drive(lines("Q1"), engine, tmp_path)
    records = [json.loads(x) for x in repl.session.path.read_text().splitlines()]
    assert records[0]["type"] == "session" and records[0]["cwd"] == str(tmp_path)
    assert [(r["role"], r["content"]) for r in records[1:]] == [("user", "Q1"), ("model", "A1")]
    assert records[2]["stats"]["completion_tokens"] == 1

    info = find_session(repl.session.id)
    out, again = drive(lines("Q2"), engine, tmp_path, resume=info)
    assert "resumed with 1 earlier exchange" in out
    assert [m.content for m in engine.calls[1].messages[1:]] == ["Q1", "A1", "Q2"]
    assert again.session.id == repl.session.id
    assert [m.content for m in read_session(repl.session.path).messages] == ["Q1", "A1", "Q2", "A2"]


def test_save_names_the_session_and_load_brings_it_back(tmp_path):
    engine = ScriptedEngine(replies=["about login", "later"])
    drive(lines("the login bug", "/save login-bug"), engine, tmp_path)
    out, _repl = drive(lines("/load", "/load login-bug", "more"), engine, tmp_path)
    assert "[login-bug]" in out and "the login bug" in out
    assert "loaded session" in out
    assert [m.content for m in engine.calls[-1].messages[1:]] == ["the login bug", "about login", "more"]
    assert len(list_sessions()) == 1  # the loaded session continues in its own file


def test_clear_forgets_history_but_keeps_the_system_prefix(tmp_path):
    engine = ScriptedEngine(replies=["one", "two"])
    drive(lines("first", "/clear", "second"), engine, tmp_path)
    first, second = engine.calls
    assert second.messages[0] == first.messages[0]
    assert [m.content for m in second.messages[1:]] == ["second"]


def test_added_file_goes_into_the_next_turn_and_a_changed_file_is_resent(tmp_path):
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    engine = ScriptedEngine(replies=["seen", "again", "nothing new"])

    class EditingFile(io.StringIO):  # the user edits calc.py while reading the first answer
        def write(self, text: str) -> int:
            if text.startswith("seen"):
                (tmp_path / "calc.py").write_text("def add(a, b, c=0):\n    return a + b + c\n")
            return super().write(text)

    out, _ = drive(lines("/add calc.py", "look", "and now?", "third"), engine, tmp_path, out=EditingFile())
    assert "added, sent with your next message: calc.py" in out
    first, second, third = (c.messages[-1].content for c in engine.calls)
    assert first.startswith("calc.py\n```\ndef add(a, b):") and first.endswith("look")
    assert "changed since you last saw them" in second and "return a + b + c" in second
    assert third == "third"


def test_add_outside_the_repository_is_refused(tmp_path, git_repo):
    out, repl = drive(lines(f"/add {tmp_path}/elsewhere.txt"), ScriptedEngine(), git_repo)
    assert "outside the repository" in out and repl.added == []


def test_drop_stops_following_a_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    out, repl = drive(lines("/add a.py", "/files", "/drop a.py", "/files"), ScriptedEngine(), tmp_path)
    assert "dropped a.py" in out and repl.added == []
    assert repl.watch.watched == []


def test_shell_command_runs_after_confirmation_and_its_output_can_join(tmp_path):
    engine = ScriptedEngine(replies=["I see the output"])
    out, _ = drive(lines("!echo hello-from-shell", "y", "y", "what happened?"), engine, tmp_path)
    assert "hello-from-shell" in out and "exit status 0" in out
    sent = engine.calls[0].messages[-1].content
    assert "$ echo hello-from-shell  (exit status 0)" in sent and sent.endswith("what happened?")


def test_declined_shell_command_does_not_run(tmp_path):
    out, _ = drive(lines("!touch made-by-shell", "n"), ScriptedEngine(), tmp_path)
    assert "not run" in out and not (tmp_path / "made-by-shell").exists()


def test_full_context_drops_the_oldest_exchanges_with_a_notice(tmp_path):
    long = " ".join(["word"] * 120)
    engine = ScriptedEngine(replies=[long, long, long, "short"], n_ctx=900)
    out, repl = drive(lines("one", "two", "three", "four"), engine, tmp_path, max_tokens=200)
    assert "context window: dropped the" in out and "oldest exchange" in out
    for call in engine.calls:
        assert engine.count_tokens(call.prompt) + 200 <= 900
    assert engine.calls[-1].messages[1].content != "one"
    stored = read_session(repl.session.path).messages
    assert [m.content for m in stored] == [m.content for m in repl.conv.history]


def test_a_turn_that_cannot_fit_says_so_and_dropping_the_file_recovers(tmp_path):
    (tmp_path / "big.txt").write_text("word " * 3000)
    engine = ScriptedEngine(replies=["fits now"], n_ctx=1000)
    out, _ = drive(lines("/add big.txt", "summarize", "/drop big.txt", "summarize"), engine, tmp_path)
    assert "exceeds the 1,000-token context window" in out
    assert len(engine.calls) == 1 and engine.calls[0].messages[-1].content == "summarize"
    assert "fits now" in out


def test_think_toggle_reaches_the_engine(tmp_path):
    engine = ScriptedEngine(replies=["a", "b"])
    out, _ = drive(lines("/think on", "q1", "/think off", "q2"), engine, tmp_path)
    assert [c.think for c in engine.calls] == [True, False]
    assert "thinking on" in out


def test_stats_lists_evaluated_and_reused_tokens_per_turn(tmp_path):
    engine = ScriptedEngine(replies=["a b c", "d"])
    out, repl = drive(lines("q1", "q2", "/stats"), engine, tmp_path)
    assert "evaluated" in out and "reused" in out
    assert [t.number for t in repl.conv.turns] == [1, 2]
    assert str(repl.conv.turns[1].stats.prompt_tokens_evaluated) in out


def test_tokens_and_history_and_files_report(tmp_path):
    engine = ScriptedEngine(replies=["the reply"])
    out, _ = drive(lines("my [bold]question[/]", "/tokens", "/history", "/files"), engine, tmp_path)
    assert "system rules" in out and "total of 8,192" in out
    assert "you: my [bold]question[/]" in out  # user text is never read as markup
    assert "no files yet" in out


def test_ask_answers_without_edits_instruction(tmp_path):
    engine = ScriptedEngine(replies=["just words"])
    drive(lines("/ask what is this?"), engine, tmp_path)
    sent = engine.calls[0].messages[-1].content
    assert "do not propose edits" in sent and sent.endswith("what is this?")


def test_model_without_argument_shows_the_loaded_model(tmp_path):
    out, _ = drive(lines("/model"), ScriptedEngine(), tmp_path)
    assert "scripted" in out and "n_ctx 8,192" in out


def test_exit_ends_the_session(tmp_path):
    engine = ScriptedEngine(replies=["x"])
    drive(lines("/exit", "never sent"), engine, tmp_path)
    assert engine.calls == []


@pytest.mark.parametrize("command", ["/ask", "/edit", "/refactor", "/explain", "/add", "/drop"])
def test_commands_needing_an_argument_say_how_to_use_them(tmp_path, command):
    out, _ = drive(lines(command), ScriptedEngine(), tmp_path)
    assert "error:" in out and "hint:" in out


def test_commands_are_found_by_name():
    assert all(callable(getattr(Commands, f"cmd_{name}")) for name in REQUIRED)



def _complete(repl, text: str) -> list[str]:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    completer = repl.prompt_session().completer
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_completion_of_commands_paths_and_symbols(git_repo):
    _, repl = drive("", ScriptedEngine(), git_repo)
    assert _complete(repl, "/he") == ["/help"]
    assert "/history" in _complete(repl, "/h")
    assert _complete(repl, "/add ut") == ["util.py"]
    assert "add" in _complete(repl, "what does ad")
    assert "main" in _complete(repl, "/explain app.py::ma")
    assert _complete(repl, "!ech") == []


def test_chat_command_reads_piped_lines_and_asks_confirmations_from_them(tmp_path):
    import subprocess

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": ["piped answer"], "log": str(tmp_path / "seen.jsonl")}))
    env = {**os.environ, "GEMMA_CODE_ENGINE": "scripted", "GEMMA_CODE_SCRIPT": str(script)}
    done = subprocess.run(
        [sys.executable, "-m", "gemma_code", "chat"], input="!echo from-shell\ny\ny\nwhat now?\n/stats\n",
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "piped answer" in done.stdout and "from-shell" in done.stdout
    seen = json.loads((tmp_path / "seen.jsonl").read_text().splitlines()[0])
    assert "$ echo from-shell" in seen["messages"][-1]["content"]
    assert "Traceback" not in done.stderr
