"""Confine commands: bubblewrap on Linux, sandbox-exec on macOS.

Inside the sandbox the repository is writable and the rest of the filesystem read-only,
with a private /tmp and no network; the command dies with gemma-code. The repository's
git hooks and git config stay read-only too, so a command cannot plant code that git would
later run outside the sandbox.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gemma_code.errors import ConfigError

INSTALL_HINT = {
    "linux": "install bubblewrap: `sudo apt-get install bubblewrap` (Debian, Ubuntu), "
             "`sudo dnf install bubblewrap` (Fedora), `sudo pacman -S bubblewrap` (Arch)",
    "darwin": "sandbox-exec ships with macOS at /usr/bin/sandbox-exec; check that it is present",
}
# kept read-only inside the repository: what git runs or obeys on the user's next command
PROTECTED = (".git/hooks", ".git/config", ".git/info")


@dataclass(frozen=True)
class Sandbox:
    """A working sandbox program and how to wrap a command line in it."""

    kind: Literal["bwrap", "sandbox-exec"]
    exe: str

    def wrap(self, argv: list[str], root: Path) -> list[str]:
        """`argv` confined: `root` writable, everything else read-only, no network."""
        base = Path(root).resolve()
        if self.kind == "bwrap":
            return [*bwrap_args(self.exe, base), "--", *argv]
        return [self.exe, "-p", macos_profile(base), *argv]


def bwrap_args(exe: str, root: Path) -> list[str]:
    """bubblewrap's arguments for `root` (the command follows a `--`)."""
    args = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--bind", str(root), str(root)]
    for rel in PROTECTED:
        inner = root / rel
        if inner.exists() and not inner.is_symlink():
            args += ["--ro-bind", str(inner), str(inner)]
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
             "--new-session", "--chdir", str(root)]
    return args


def _quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def macos_profile(root: Path) -> str:
    """A sandbox-exec profile: writes only under `root` and the temporary folders, no network."""
    protected = "".join(f" (subpath {_quote(root / rel)})" for rel in PROTECTED)
    return (
        "(version 1)\n(allow default)\n(deny network*)\n(allow network* (remote unix-socket))\n"
        "(deny file-write*)\n"
        f"(allow file-write* (subpath {_quote(root)}) (subpath \"/private/tmp\") "
        "(subpath \"/private/var/folders\") (literal \"/dev/null\") (literal \"/dev/tty\") "
        "(regex #\"^/dev/fd/\"))\n"
        f"(deny file-write*{protected})\n"
    )


_FOUND: dict[str, Sandbox | str] = {}


def find_sandbox() -> Sandbox | str:
    """A sandbox that works here, or a sentence saying why none can run (checked once)."""
    if "result" not in _FOUND:
        _FOUND["result"] = _probe()
    return _FOUND["result"]


def _probe() -> Sandbox | str:
    if sys.platform == "darwin":
        exe = shutil.which("sandbox-exec") or ("/usr/bin/sandbox-exec"
                                               if Path("/usr/bin/sandbox-exec").exists() else None)
        if exe is None:
            return "sandbox-exec was not found"
        box = Sandbox("sandbox-exec", exe)
    elif sys.platform.startswith("linux"):
        exe = shutil.which("bwrap")
        if exe is None:
            return "bubblewrap (bwrap) is not installed"
        box = Sandbox("bwrap", exe)
    else:
        return f"no sandbox is supported on {sys.platform}"
    probe = box.wrap(["/bin/sh", "-c", "exit 0"], Path.cwd() if Path.cwd().is_dir() else Path("/"))
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{box.kind} could not start: {exc}"
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return f"{box.kind} cannot run here: {reason}"
    return box


def install_hint() -> str:
    """How to get a sandbox on this platform."""
    return INSTALL_HINT["darwin" if sys.platform == "darwin" else "linux"]


def require_sandbox() -> Sandbox:
    """The sandbox for full-auto; ConfigError with the install hint where none can run."""
    found = find_sandbox()
    if isinstance(found, Sandbox):
        return found
    raise ConfigError(
        f"full-auto needs a sandbox for commands, and none can run: {found}",
        install_hint() + "; or use --mode auto-edit, which asks before each command",
    )
