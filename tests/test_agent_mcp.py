"""MCP servers' tools in the agent: a real stdio server written here, started from the user's
config, its tools offered as SERVER__TOOL and approved like commands unless allowed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runner import CliRunner

from gemma_code import paths
from gemma_code.cli import app
from gemma_code.engine.gemma_tools import ToolCall, render_call
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.tasks.agent import AgentOptions, AgentSession
from gemma_code.tools.mcp import McpServerConfig, load_servers, open_mcp
from gemma_code.tools.permissions import Permissions

pytest.importorskip("mcp")

SERVER = '''
import sys
try:
    from mcp.server.mcpserver import MCPServer
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer

NOTES = sys.argv[1]
server = MCPServer("notes")


@server.tool()
def add_note(text: str) -> str:
    """Store a note in the notes file."""
    with open(NOTES, "a", encoding="utf-8") as handle:
        handle.write(text + "\\n")
    return "stored: " + text


@server.tool()
def count_words(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


@server.tool()
def explode() -> str:
    """Always fails."""
    raise ValueError("boom")


server.run("stdio")
'''


def tc(name: str, **arguments: Any) -> str:
    return render_call(ToolCall(name, arguments))


@pytest.fixture
def server(tmp_path: Path) -> tuple[McpServerConfig, Path]:
    script = tmp_path / "notes_server.py"
    script.write_text(SERVER)
    notes = tmp_path / "notes.txt"
    return McpServerConfig("notes", sys.executable, (str(script), str(notes)),
                           allow=("count_words", "explode"), timeout_s=60), notes


def test_mcp_tools_are_offered_approved_and_called(git_repo: Path,
                                                   server: tuple[McpServerConfig, Path]) -> None:
    config, notes = server
    engine = ScriptedEngine(replies=[
        tc("notes__count_words", text="one two three"),
        tc("notes__add_note", text="refused without a terminal"),
        tc("notes__explode"),
        "done",
    ])
    with open_mcp(git_repo, [config]) as hub:
        assert {t.name for t in hub.tools} == {"notes__add_note", "notes__count_words",
                                               "notes__explode"}
        assert hub.allowed == {"notes__count_words", "notes__explode"}
        session = AgentSession(engine, git_repo, AgentOptions(),
                               permissions=Permissions("ask", None, allowed_tools=hub.allowed),
                               extra_tools=hub.tools)
        events = [e.to_dict() for e in session.run("count")]
    results = [e for e in events if e["type"] == "tool_result"]
    assert results[0]["ok"] and results[0]["output"].strip() == "3"
    assert not results[1]["ok"] and "no terminal" in results[1]["output"]
    assert not notes.exists()
    assert not results[2]["ok"] and "explode" in results[2]["output"]  # the server's error
    assert "<|tool>declaration:notes__add_note{description:<|\"|>[MCP notes] Store a note" \
        in engine.calls[0].prompt


def test_an_approved_mcp_call_runs(git_repo: Path, server: tuple[McpServerConfig, Path]) -> None:
    config, notes = server
    engine = ScriptedEngine(replies=[tc("notes__add_note", text="hello"), "stored"])
    asked: list[str] = []

    def approve(action: Any) -> Any:
        asked.append(action.tool)
        return "yes"

    with open_mcp(git_repo, [config]) as hub:
        session = AgentSession(engine, git_repo, AgentOptions(),
                               permissions=Permissions("ask", approve, allowed_tools=hub.allowed),
                               extra_tools=hub.tools)
        list(session.run("note hello"))
    assert asked == ["notes__add_note"] and notes.read_text() == "hello\n"


def test_a_server_that_cannot_start_costs_only_its_tools(git_repo: Path,
                                                         server: tuple[McpServerConfig, Path]) -> None:
    config, _ = server
    broken = McpServerConfig("broken", sys.executable, ("-c", "import sys; sys.exit(3)"),
                             timeout_s=20)
    with open_mcp(git_repo, [broken, config]) as hub:
        assert any("broken could not start" in n for n in hub.notes)
        assert {t.name for t in hub.tools} >= {"notes__count_words"}


def test_servers_come_from_the_user_config_and_run_uses_them(
        scripted: Any, git_repo: Path, monkeypatch: pytest.MonkeyPatch,
        server: tuple[McpServerConfig, Path]) -> None:
    config, notes = server
    user = paths.user_config_file()
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(
        "[mcp_servers.notes]\n"
        f"command = {json.dumps(config.command)}\n"
        f"args = {json.dumps(list(config.args))}\n"
        'allow = ["*"]\n'
    )
    assert load_servers()[0].allow == ("*",)
    monkeypatch.chdir(git_repo)
    scripted(tc("notes__add_note", text="from run"), "noted")
    result = CliRunner().invoke(app, ["run", "--json", "--no-context", "take a note"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert next(e for e in events if e["type"] == "tool_result")["ok"]
    assert notes.read_text() == "from run\n"


def test_bad_server_tables_are_config_errors(tmp_path: Path) -> None:
    from gemma_code.errors import ConfigError

    bad = tmp_path / "config.toml"
    bad.write_text('[mcp_servers.x]\nargs = ["a"]\n')
    with pytest.raises(ConfigError, match="needs `command"):
        load_servers(bad)
    bad.write_text('[mcp_servers.x]\ncommand = "a"\nallow = "all"\n')
    with pytest.raises(ConfigError, match="allow"):
        load_servers(bad)
