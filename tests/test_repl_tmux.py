"""One real terminal: `python -m gemma_code chat` inside tmux, driven with keystrokes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """A detached tmux session running one command."""

    def __init__(self, name: str, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.env = env
        self._tmux("new-session", "-d", "-s", name, "-x", "110", "-y", "40", "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True,
                              env=self.env).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name, "-S", "-200")

    def wait_for(self, found: Callable[[str], bool], what: str, limit: float = 60.0) -> str:
        """Poll the screen until `found` holds (the limit only bounds a hang)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            text = self.screen()
            if found(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"never saw {what}; screen:\n{self.screen()}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], env=self.env,
                              capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], env=self.env, capture_output=True)


def test_chat_in_a_real_terminal(tmp_path, _isolated_home):
    log = tmp_path / "seen.jsonl"
    slow = {"text": " ".join(f"word{i}" for i in range(400)), "delay": 0.05}
    script = {"replies": ["Hello from **scripted**.", slow, "after the interrupt"], "log": str(log)}
    (tmp_path / "script.json").write_text(json.dumps(script))
    env = {**os.environ, "GEMMA_CODE_HOME": str(_isolated_home), "GEMMA_CODE_ENGINE": "scripted",
           "GEMMA_CODE_SCRIPT": str(tmp_path / "script.json"), "TERM": "xterm-256color",
           "TMUX_TMPDIR": str(tmp_path)}
    env.pop("TMUX", None)
    term = Tmux("gemma-chat-test", f"{sys.executable} -m gemma_code chat; sleep 30", tmp_path, env)
    try:
        term.wait_for(lambda s: "›" in s and "think off" in s, "the prompt and the toolbar")
        term.keys("line one", "M-Enter", "line two", "Enter")
        term.wait_for(lambda s: "Hello from scripted." in s, "the first answer (markdown rendered)")
        term.keys("tell me a long story", "Enter")
        term.wait_for(lambda s: "word5" in s, "the long answer streaming")
        term.keys("C-c")
        term.wait_for(lambda s: "interrupted; the partial answer stays" in s, "the interrupt notice")
        term.keys("/stats", "Enter")
        term.wait_for(lambda s: "interrupted" in s.split("/stats")[-1], "the stats table")
        term.keys("and now?", "Enter")
        term.wait_for(lambda s: "after the interrupt" in s, "the third answer")
        term.keys("C-d")
        screen = term.wait_for(lambda s: "session saved: gemma-code chat --resume" in s, "the goodbye")
    finally:
        term.kill()
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen[0]["messages"][-1]["content"] == "line one\nline two"
    partial = seen[2]["messages"][-2]["content"]
    assert partial.startswith("word0 word1") and partial.endswith("[answer interrupted by the user]")
    assert "word399" not in partial
    assert "Traceback" not in screen
