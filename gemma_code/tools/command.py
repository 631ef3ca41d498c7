"""run_command: a shell command in the repository root, bounded in time and in output.

In full-auto the command runs inside the sandbox (tools/sandbox.py). The command gets its
own process group, so a timeout or Ctrl-C kills it with everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

from gemma_code.tools.base import Action, Tool, ToolContext, ToolError, ToolOutput, bound_text, schema

# pagers and prompts would wait for a terminal that is not there
QUIET_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "TERM": "dumb",
             "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


def shell_argv(command: str) -> list[str]:
    """The argv that runs `command` through the user's usual POSIX shell."""
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    return [shell, "-c", command]


def run_shell(ctx: ToolContext, command: str) -> ToolOutput:
    """Run `command` (sandboxed when ctx.sandbox is set); exit status and bounded output."""
    argv = shell_argv(command)
    if ctx.sandbox is not None:
        argv = ctx.sandbox.wrap(argv, ctx.root)
    env = {**os.environ, **QUIET_ENV}
    proc = subprocess.Popen(argv, cwd=ctx.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    timed_out = False
    try:
        data, _ = proc.communicate(timeout=ctx.command_timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(proc)
        try:  # what it printed before the limit (a grandchild may still hold the pipe)
            data, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            data = b""
    except BaseException:  # Ctrl-C: the command goes with the step
        _kill(proc)
        raise
    text = data.decode("utf-8", errors="replace")
    if timed_out:
        status = f"killed after {ctx.command_timeout_s:g} s (time limit)"
    elif proc.returncode < 0:
        status = f"killed by signal {-proc.returncode}"
    else:
        status = f"exit code {proc.returncode}"
    where = " (sandboxed: no network, writes only inside the repository)" if ctx.sandbox else ""
    body, cut = bound_text(text, ctx.max_result_tokens - 40, ctx.count_tokens, keep="head_tail",
                           what="the output", more="filter the output (grep, tail) to see a part")
    head = f"$ {command}\n{status}{where}\n"
    return ToolOutput(not timed_out and proc.returncode == 0, head + (body or "(no output)\n"),
                      truncated=cut)


def prepare_run_command(ctx: ToolContext, args: dict[str, Any]) -> Action:
    command = str(args["command"]).strip()
    if not command:
        raise ToolError("run_command: the command is empty")
    if "\0" in command:
        raise ToolError("run_command: NUL byte in the command")
    return Action("run_command", "command", f"run: {command}", command,
                  lambda: run_shell(ctx, command), approval_key=command)


RUN_COMMAND = Tool(
    "run_command",
    "Run a shell command in the repository root (tests, linters, builds) and see its output "
    "and exit code.",
    schema({"command": ("STRING", "the command line, e.g. python -m pytest -q")}, ("command",)),
    "command", prepare_run_command,
)
