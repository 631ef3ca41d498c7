"""`gemma-code ask` through the CLI with the scripted engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code.cli import app
from gemma_code.errors import ExitCode

runner = CliRunner()


def test_ask_streams_answer_and_model_saw_question(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = scripted("The answer is **42**.")
    result = runner.invoke(app, ["ask", "--no-context", "what is the answer?"])
    assert result.exit_code == 0, result.output
    assert "The answer is **42**." in result.stdout
    assert engine.calls[0].messages[-1].content == "what is the answer?"
    assert engine.calls[0].messages[0].role == "system"


def test_ask_json_prints_documented_object(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted("<|channel>thought\nthinking hard<channel|>Done.")
    result = runner.invoke(app, ["ask", "--no-context", "--json", "--think", "q"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answer"] == "Done."
    assert payload["thoughts"] == "thinking hard"
    assert payload["model"] == "scripted"
    assert payload["stats"]["completion_tokens"] > 0
    assert set(payload) >= {"answer", "thoughts", "model", "stats"}


def test_ask_think_flag_reaches_engine(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = scripted("ok", "ok")
    assert runner.invoke(app, ["ask", "--no-context", "--think", "q"]).exit_code == 0
    assert runner.invoke(app, ["ask", "--no-context", "q"]).exit_code == 0
    assert engine.calls[0].think is True
    assert "<|think|>" in engine.calls[0].prompt
    assert engine.calls[1].think is False
    assert engine.calls[1].prompt.endswith("<|turn>model\n<|channel>thought\n<channel|>")


def test_ask_thoughts_hidden_with_no_show_thoughts(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted("<|channel>thought\nsecret plan<channel|>Visible.")
    result = runner.invoke(app, ["ask", "--no-context", "--think", "--no-show-thoughts", "q"])
    assert result.exit_code == 0
    assert "secret plan" not in result.output
    assert "Visible." in result.stdout


def test_ask_includes_named_file_and_stdin(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mod.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    engine = scripted("fine")
    result = runner.invoke(
        app, ["ask", "--no-context", "-f", "mod.py", "review this"], input="diff --git a b\n+x\n"
    )
    assert result.exit_code == 0, result.output
    user = engine.calls[0].messages[-1].content
    assert "mod.py\n```\ndef f():\n    return 1\n```" in user
    assert "(standard input)\n```\ndiff --git a b\n+x\n```" in user
    assert user.endswith("review this")


def test_ask_reads_question_from_stdin_when_no_argument(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = scripted("yes")
    result = runner.invoke(app, ["ask", "--no-context"], input="is this piped?\n")
    assert result.exit_code == 0
    assert engine.calls[0].messages[-1].content == "is this piped?"


def test_ask_without_question_is_usage_error(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted()
    result = runner.invoke(app, ["ask", "--no-context"], input="")
    assert result.exit_code == ExitCode.USAGE
    assert "no question given" in result.stderr


def test_ask_missing_file_is_usage_error(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "nope.py", "q"])
    assert result.exit_code == ExitCode.USAGE
    assert "no such file: nope.py" in result.stderr


def test_ask_prompt_over_context_says_by_how_much(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    big = tmp_path / "big.txt"
    big.write_text("word " * 5000, encoding="utf-8")
    engine = scripted("unused", n_ctx=2048)
    result = runner.invoke(app, ["ask", "--no-context", "-f", str(big), "--max-tokens", "100", "q"])
    assert result.exit_code == ExitCode.MODEL
    assert "exceeds the 2,048-token context window by" in result.stderr
    assert "drop some -f files" in result.stderr
    assert engine.calls == []  # nothing was generated from a truncated prompt


def test_ask_engine_failure_exits_4(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted({"error": "out of memory"})
    result = runner.invoke(app, ["ask", "--no-context", "q"])
    assert result.exit_code == ExitCode.MODEL
    assert "out of memory" in result.stderr


def test_ask_stats_line_on_stderr(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted("one two three")
    result = runner.invoke(app, ["ask", "--no-context", "--stats", "q"])
    assert result.exit_code == 0
    assert "evaluated" in result.stderr and "reused" in result.stderr
    assert "tokens (stop)" in result.stderr


def test_ask_scripted_engine_from_settings_file(tmp_path, monkeypatch):
    """The env/config seam used by subprocesses (the git hook) works without the factory."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "script.json"
    log = tmp_path / "seen.jsonl"
    script.write_text(json.dumps({"replies": ["from file"], "log": str(log)}), encoding="utf-8")
    monkeypatch.setenv("GEMMA_CODE_ENGINE", "scripted")
    monkeypatch.setenv("GEMMA_CODE_SCRIPT", str(script))
    result = runner.invoke(app, ["ask", "--no-context", "hello"])
    assert result.exit_code == 0, result.output
    assert "from file" in result.stdout
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen[0]["messages"][-1]["content"] == "hello"


def test_help_teaches_by_example():
    result = runner.invoke(app, ["ask", "--help"])
    assert result.exit_code == 0
    assert "git diff | gemma-code ask" in result.stdout


def test_unknown_option_is_usage_error():
    result = runner.invoke(app, ["ask", "--bogus"])
    assert result.exit_code == ExitCode.USAGE


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("gemma-code ")


def test_files_in_prompt_are_fenced_safely(tmp_path: Path):
    from gemma_code.tasks.prompting import fence

    assert fence("a.md", "```py\nx\n```") == "a.md\n````\n```py\nx\n```\n````\n"


def test_options_before_the_command_apply_to_it(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = scripted("ok")
    result = runner.invoke(app, ["--think", "ask", "--no-context", "q"])
    assert result.exit_code == 0, result.output
    assert engine.calls[0].think is True


def test_continue_only_goes_with_the_chat(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted("ok")
    result = runner.invoke(app, ["--continue", "ask", "--no-context", "q"])
    assert result.exit_code == 2


def test_bare_command_with_options_starts_the_chat(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = scripted("hi there")
    result = runner.invoke(app, ["--think", "--engine", "scripted"], input="hello\n/exit\n")
    assert result.exit_code == 0, result.output
    assert "hi there" in result.stdout
    assert engine.calls[0].think is True
    assert engine.calls[0].messages[-1].content.endswith("hello")


def test_an_unexpected_exception_is_one_line_with_a_hint_and_its_own_exit_code(tmp_path, monkeypatch):
    import typer.testing

    from gemma_code.engine import set_engine_factory

    def broken(settings):
        raise ValueError("stale cache layout")

    monkeypatch.chdir(tmp_path)
    set_engine_factory(broken)
    plain = typer.testing.CliRunner()  # the user's view: no re-raising test runner
    try:
        result = plain.invoke(app, ["ask", "--no-context", "q"])
        assert result.exit_code == ExitCode.INTERNAL != ExitCode.FAILURE
        assert "internal error: ValueError: stale cache layout" in result.stderr
        assert "GEMMA_CODE_DEBUG=1" in result.stderr and "Traceback" not in result.stderr
        monkeypatch.setenv("GEMMA_CODE_DEBUG", "1")
        result = plain.invoke(app, ["ask", "--no-context", "q"])
        assert isinstance(result.exception, ValueError)
    finally:
        set_engine_factory(None)


def test_the_test_runner_lets_a_crash_out_instead_of_reporting_an_exit_code(tmp_path, monkeypatch):
    from gemma_code.engine import set_engine_factory

    def broken(settings):
        raise ValueError("stale cache layout")

    monkeypatch.chdir(tmp_path)
    set_engine_factory(broken)
    try:
        with pytest.raises(ValueError, match="stale cache layout"):
            runner.invoke(app, ["ask", "--no-context", "q"])
    finally:
        set_engine_factory(None)


def test_the_loading_spinner_covers_the_load_alone(scripted):
    from contextlib import contextmanager

    from gemma_code.config import Settings
    from gemma_code.engine import open_engine

    scripted("x")
    events: list[str] = []

    @contextmanager
    def spinner():
        events.append("start")
        yield
        events.append("stop")

    with open_engine(Settings(), while_loading=spinner()) as engine:
        events.append(f"using {engine.info.name}")
    assert events == ["start", "stop", "using scripted"]


def test_no_spinner_when_stderr_is_piped(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted("answer")
    result = runner.invoke(app, ["ask", "--no-context", "q"])
    assert result.exit_code == 0
    assert "loading" not in result.stderr
