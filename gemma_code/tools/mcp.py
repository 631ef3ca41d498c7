"""MCP servers' tools for the agent, over stdio with the `mcp` package.

Servers are declared in the user's own config file only (a repository's .gemma-code.toml
cannot name programs to run)::

    [mcp_servers.notes]
    command = "python"
    args = ["-m", "notes_server"]
    env = { NOTES_DIR = "/home/me/notes" }
    allow = ["search_notes"]   # run without asking ("*": every tool of this server)
    timeout = 60               # seconds per call

Each tool is offered as ``SERVER__TOOL`` and, unless allowed, needs approval like a command
(MCP servers run outside the sandbox, so full-auto asks for them too). The sessions live on
an event loop in a helper thread for as long as the run.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gemma_code.errors import ConfigError
from gemma_code.tools.base import Action, Tool, ToolContext, ToolOutput, bound_text

SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


@dataclass(frozen=True)
class McpServerConfig:
    """One `[mcp_servers.NAME]` table."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()
    timeout_s: float = 60.0


def load_servers(path: Path | None = None) -> list[McpServerConfig]:
    """The servers of the user's config file (`path` for tests); ConfigError naming the key."""
    from gemma_code import paths
    from gemma_code.config import read_toml

    file = path or paths.user_config_file()
    if not file.is_file():
        return []
    tables = read_toml(file).get("mcp_servers", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{file}: `mcp_servers` must be a table of [mcp_servers.NAME] tables")
    servers = []
    for name, spec in tables.items():
        where = f"{file}: [mcp_servers.{name}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("command"), str):
            raise ConfigError(f"{where} needs `command = \"program\"`", "see docs/agent.md")
        if _UNSAFE.search(name) or SEPARATOR in name:
            raise ConfigError(f"{where}: use letters, digits, - and single _ in server names")
        args, env, allow = spec.get("args", []), spec.get("env", {}), spec.get("allow", [])
        if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            raise ConfigError(f"{where}: `args` must be a list of strings")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise ConfigError(f"{where}: `env` must be a table of strings")
        if not (isinstance(allow, list) and all(isinstance(a, str) for a in allow)):
            raise ConfigError(f"{where}: `allow` must be a list of tool names")
        timeout = spec.get("timeout", 60)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"{where}: `timeout` must be a positive number of seconds")
        servers.append(McpServerConfig(name, spec["command"], tuple(args),
                                       tuple(sorted(env.items())), tuple(allow), float(timeout)))
    return servers


def _field(obj: Any, *names: str) -> Any:
    """A field under its mcp 2.x name or its 1.x alias."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def result_text(result: Any) -> tuple[bool, str]:
    """(ok, text) of a CallToolResult: its text parts; other parts are named, not shown."""
    parts: list[str] = []
    for block in _field(result, "content") or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        else:
            parts.append(f"[{kind or 'non-text'} content not shown]")
    structured = _field(result, "structured_content", "structuredContent")
    if not parts and structured is not None:
        parts.append(str(structured))
    return not bool(_field(result, "is_error", "isError")), "\n".join(parts) or "(empty result)"


@dataclass
class McpHub:
    """The running servers: their tools, which are allowed, and what could not start."""

    tools: list[Tool] = field(default_factory=list)
    allowed: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    portal: Any = None


def _tool_for(hub: McpHub, server: McpServerConfig, session: Any, spec: Any) -> Tool:
    remote = str(spec.name)
    name = f"{server.name}{SEPARATOR}{_UNSAFE.sub('_', remote)}"
    params = dict(_field(spec, "input_schema", "inputSchema") or {"type": "object"})
    description = str(spec.description or remote).strip()

    def prepare(ctx: ToolContext, args: dict[str, Any]) -> Action:
        import json

        def run() -> ToolOutput:
            ok, text = hub.portal.call(_call, session, remote, args, server.timeout_s)
            body, cut = bound_text(text, ctx.max_result_tokens, ctx.count_tokens,
                                   what=f"the {name} result")
            return ToolOutput(ok, body, truncated=cut)

        shown = json.dumps(args, ensure_ascii=False, indent=1)
        return Action(name, "external", f"{name} (MCP server {server.name})",
                      f"{name} {shown}", run, approval_key=name)

    if "*" in server.allow or remote in server.allow:
        hub.allowed.add(name)
    return Tool(name, f"[MCP {server.name}] {description}", params, "external", prepare)


async def _call(session: Any, name: str, args: dict[str, Any], timeout: float) -> tuple[bool, str]:
    import anyio

    try:
        with anyio.fail_after(timeout):
            result = await session.call_tool(name, args)
    except TimeoutError:
        return False, f"the MCP tool {name} did not answer within {timeout:g} s"
    except Exception as exc:  # the server's error, told to the model
        return False, f"the MCP tool {name} failed: {exc}"
    return result_text(result)


async def _start(session: Any, timeout: float) -> list[Any]:
    import anyio

    with anyio.fail_after(timeout):
        await session.initialize()
        listed = await session.list_tools()
    return list(listed.tools)


def log_path(name: str) -> Path:
    """Where a server's standard error goes (it would garble the terminal)."""
    from gemma_code import paths

    return paths.cache_dir() / "mcp" / f"{name}.log"


@contextlib.contextmanager
def _server_log(name: str) -> Iterator[TextIO]:
    path = log_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        yield handle


@contextlib.contextmanager
def open_mcp(root: Path, servers: list[McpServerConfig] | None = None) -> Iterator[McpHub]:
    """Start the configured servers (cwd: the repository) for one `with` block."""
    configured = load_servers() if servers is None else servers
    hub = McpHub()
    if not configured:
        yield hub
        return
    try:
        from anyio.from_thread import start_blocking_portal
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
    except ImportError:
        hub.notes.append("MCP servers are configured but the `mcp` package is missing: "
                         "pip install 'gemma-code[mcp]'; their tools are not offered")
        yield hub
        return
    with start_blocking_portal() as portal, contextlib.ExitStack() as stack:
        hub.portal = portal
        for server in configured:
            params = StdioServerParameters(command=server.command, args=list(server.args),
                                           env=dict(server.env) or None, cwd=str(root))
            inner = contextlib.ExitStack()
            try:
                log = inner.enter_context(_server_log(server.name))
                read, write = inner.enter_context(portal.wrap_async_context_manager(
                    stdio_client(params, errlog=log)))
                session = inner.enter_context(portal.wrap_async_context_manager(
                    ClientSession(read, write)))
                listed = portal.call(_start, session, server.timeout_s)
            except Exception as exc:  # a server that cannot start costs only its own tools
                with contextlib.suppress(Exception):
                    inner.close()
                hub.notes.append(f"MCP server {server.name} could not start: "
                                 f"{type(exc).__name__}: {exc} (its log: {log_path(server.name)})")
                continue
            stack.push(inner.__exit__)
            hub.tools += [_tool_for(hub, server, session, spec) for spec in listed]
        yield hub
