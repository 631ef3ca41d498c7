"""Chat sessions on disk (JSON lines) and `gemma-code chat --continue / --resume`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code.cli import app
from gemma_code.engine.base import Message
from gemma_code.errors import ExitCode, UsageError
from gemma_code.repl.store import (
    SessionFile,
    find_session,
    latest_session,
    list_sessions,
    new_session_id,
    read_session,
    sessions_dir,
)

runner = CliRunner()


def make(session_id: str, cwd: Path, *pairs: tuple[str, str]) -> SessionFile:
    file = SessionFile(session_id, cwd=cwd, model="m")
    for user, model in pairs:
        file.add_message(Message("user", user))
        file.add_message(Message("model", model))
    return file


def test_sessions_live_in_the_data_dir_not_the_repository(tmp_path, _isolated_home):
    file = make("20260101-000000-aaaa", tmp_path, ("q", "a"))
    assert file.path.parent == sessions_dir()
    assert str(file.path).startswith(str(_isolated_home))


def test_replay_honours_clear_and_drop_records(tmp_path):
    file = make("s1", tmp_path, ("q1", "a1"), ("q2", "a2"))
    file.drop_oldest(2)
    assert [m.content for m in read_session(file.path).messages] == ["q2", "a2"]
    file.clear()
    file.add_message(Message("user", "q3"))
    assert [m.content for m in read_session(file.path).messages] == ["q3"]


def test_a_torn_last_line_is_skipped(tmp_path):
    file = make("s1", tmp_path, ("q1", "a1"))
    with file.path.open("a", encoding="utf-8") as handle:
        handle.write('{"type": "message", "role": "user", "cont')
    assert [m.content for m in read_session(file.path).messages] == ["q1", "a1"]


def test_find_by_id_prefix_and_name_and_ambiguity(tmp_path):
    make("20260101-000000-aaaa", tmp_path, ("q", "a")).name("bugfix")
    make("20260102-000000-bbbb", tmp_path, ("q", "a"))
    assert find_session("bugfix").id == "20260101-000000-aaaa"
    assert find_session("20260102").id == "20260102-000000-bbbb"
    with pytest.raises(UsageError, match="matches 2 sessions"):
        find_session("2026010")
    with pytest.raises(UsageError, match="no saved session"):
        find_session("nope")


def test_latest_session_is_per_folder_and_most_recent(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    old = make("20260101-000000-aaaa", here, ("old", "a"))
    make("20260103-000000-cccc", there, ("elsewhere", "a"))
    new = make("20260102-000000-bbbb", here, ("new", "a"))
    os.utime(old.path, (1, 1))
    assert latest_session(here).id == new.id
    assert [s.id for s in list_sessions()][-1] == old.id


def test_session_ids_sort_by_time_and_are_unique():
    first, second = new_session_id(1_000_000), new_session_id(2_000_000)
    assert first < second
    assert new_session_id(5) != new_session_id(5)


def test_chat_continue_without_an_earlier_session_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["chat", "--continue"])
    assert result.exit_code == ExitCode.USAGE
    assert "no earlier session" in result.stderr


def test_chat_resume_without_id_lists_sessions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make("20260101-000000-aaaa", tmp_path, ("why is login slow?", "because")).name("login")
    result = runner.invoke(app, ["chat", "--resume"])
    assert result.exit_code == 0
    assert "20260101-000000-aaaa [login]  1 exchanges" in result.stdout
    assert "why is login slow?" in result.stdout


def test_chat_resume_unknown_id_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["chat", "--resume", "nope"])
    assert result.exit_code == ExitCode.USAGE and "no saved session 'nope'" in result.stderr


def test_chat_rejects_a_stray_argument_and_both_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["chat", "abc"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["chat", "--resume", "--continue"]).exit_code == ExitCode.USAGE


def test_records_are_one_json_object_per_line(tmp_path):
    file = make("s1", tmp_path, ("q", "a"))
    file.add_message(Message("model", "x"), {"prompt_tokens": 3})
    records = [json.loads(line) for line in file.path.read_text().splitlines()]
    assert [r["type"] for r in records] == ["session", "message", "message", "message"]
    assert records[-1]["stats"] == {"prompt_tokens": 3}
