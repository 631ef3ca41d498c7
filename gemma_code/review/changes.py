"""The change under review: git's staged diff, a commit range, or named files, parsed per file.

Its git calls live in gemma_code.gitops (the git CLI: fast to start, honours GIT_INDEX_FILE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gemma_code import gitops
from gemma_code.errors import GitError, UsageError
from gemma_code.generated import HEADER_LINES, has_generated_header

CONTEXT_LINES = 6  # unchanged lines around each hunk

LOCK_FILES = {
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
    "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock", "Cargo.lock", "Gemfile.lock",
    "composer.lock", "go.sum", "flake.lock", "packages.lock.json", "mix.lock", "pubspec.lock",
}
GENERATED_SUFFIXES = (
    ".min.js", ".min.css", ".map", "_pb2.py", "_pb2_grpc.py", ".pb.go", ".pb.cc", ".pb.h",
    ".g.dart", ".designer.cs", ".snap", ".svg",
)
# other people's code, tool caches and build output; narrower than the context builder's list
# (context.files.VENDORED_DIRS): a review must not hide real changes in a package that happens
# to be called `venv` (CPython's Lib/venv) or `vendors`
VENDORED_DIRS = frozenset({
    "node_modules", "vendor", "third_party", "thirdparty", "bower_components", "site-packages",
    "__pycache__", ".venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs",
    "dist",
})


@dataclass
class Line:
    """One diff line: kind ' ' (context), '+' (added) or '-' (removed); `new` is its new line number."""

    kind: str
    text: str
    new: int | None


@dataclass
class Hunk:
    header: str  # the text after the closing @@ (often the enclosing function)
    lines: list[Line] = field(default_factory=list)


@dataclass
class FileChange:
    """One file's change."""

    path: str
    status: str = "modified"  # added | modified | deleted | renamed
    old_path: str | None = None
    binary: bool = False
    hunks: list[Hunk] = field(default_factory=list)

    def added_text(self, limit: int | None = None) -> str:
        """The added lines joined; with `limit`, only about the first `limit` characters."""
        out: list[str] = []
        size = 0
        for h in self.hunks:
            for ln in h.lines:
                if ln.kind == "+":
                    out.append(ln.text)
                    size += len(ln.text) + 1
                    if limit is not None and size >= limit:
                        return "\n".join(out)
        return "\n".join(out)

    def head_lines(self) -> list[str]:
        """The new file's first lines, as far as the diff shows them (its header)."""
        head = sorted(
            (ln.new, ln.text) for h in self.hunks for ln in h.lines
            if ln.kind != "-" and ln.new is not None and ln.new <= HEADER_LINES
        )
        if not head or head[0][0] != 1:
            return []  # the diff does not show the top of the file
        return [text for _, text in head]


def _diff_args() -> list[str]:
    return [
        "--no-color", "--no-ext-diff", "--no-textconv", f"-U{CONTEXT_LINES}", "-M",
        "--src-prefix=a/", "--dst-prefix=b/",
    ]


def staged_changes(root: Path) -> list[FileChange]:
    """The staged change: HEAD (or the empty tree) against the index."""
    return parse_diff(gitops.diff_text(root, *_diff_args(), "--cached"))


def range_changes(root: Path, spec: str) -> tuple[list[FileChange], str]:
    """The change of `A..B` (or `A...B`), with the resolved commit ids for the cache key."""
    if ".." not in spec:
        raise UsageError(f"--range needs A..B, not {spec!r}", "e.g. --range main..HEAD or HEAD~3..HEAD")
    try:
        ids = gitops.rev_parse(root, spec)
    except GitError as exc:
        raise GitError(f"bad --range {spec!r}: {exc.message}", "name two commits: A..B") from None
    return parse_diff(gitops.diff_text(root, *_diff_args(), spec)), " ".join(ids)


def file_changes(paths: list[Path]) -> list[FileChange]:
    """Named files reviewed whole, as if every line were new (works outside a repository)."""
    changes: list[FileChange] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}", "name existing files") from None
        change = FileChange(path=path.as_posix(), status="added")
        if b"\0" in data[:8192]:
            change.binary = True
        else:
            text = data.decode("utf-8", errors="replace").splitlines()
            change.hunks = [Hunk("", [Line("+", t, i) for i, t in enumerate(text, 1)])]
        changes.append(change)
    return changes


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")


def _unquote(path: str) -> str:
    if path.startswith('"') and path.endswith('"'):
        raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1", "replace").decode("utf-8", "replace")
    return path


def _strip_prefix(path: str) -> str:
    path = _unquote(path.rstrip("\t"))
    return path[2:] if path[:2] in ("a/", "b/") else path


def parse_diff(text: str) -> list[FileChange]:
    """Parse `git diff` patch output into FileChanges (hunk lengths decide where a hunk ends)."""
    changes: list[FileChange] = []
    cur: FileChange | None = None
    hunk: Hunk | None = None
    new_no = old_left = new_left = 0
    for raw in text.split("\n"):
        if hunk is not None and (old_left > 0 or new_left > 0):
            kind = raw[:1] or " "
            if kind == "\\":  # "\ No newline at end of file"
                continue
            hunk.lines.append(Line(kind, raw[1:], new_no if kind != "-" else None))
            if kind != "+":
                old_left -= 1
            if kind != "-":
                new_left -= 1
                new_no += 1
            continue
        if raw.startswith("diff --git "):
            m = re.match(r'diff --git ("?a/.*"?) ("?b/.*"?)$', raw)
            cur = FileChange(path=_strip_prefix(m.group(2)) if m else raw.split(" b/", 1)[-1])
            changes.append(cur)
            hunk = None
        elif cur is None:
            continue
        elif raw.startswith("@@"):
            m = _HUNK.match(raw)
            if m is None:
                continue
            old_left = int(m.group(1)) if m.group(1) is not None else 1
            new_no = int(m.group(2))
            new_left = int(m.group(3)) if m.group(3) is not None else 1
            hunk = Hunk(m.group(4).strip())
            cur.hunks.append(hunk)
        elif raw.startswith("+++ ") and raw[4:] != "/dev/null":
            cur.path = _strip_prefix(raw[4:])
        elif raw.startswith("new file mode"):
            cur.status = "added"
        elif raw.startswith("deleted file mode"):
            cur.status = "deleted"
        elif raw.startswith("rename from "):
            cur.status, cur.old_path = "renamed", _unquote(raw[len("rename from "):])
        elif raw.startswith("rename to "):
            cur.path = _unquote(raw[len("rename to "):])
        elif raw.startswith(("Binary files ", "GIT binary patch")):
            cur.binary = True
    return changes


def skip_reason(change: FileChange) -> str | None:
    """Why a file is not reviewed (binary, lock, generated, vendored, deleted), or None."""
    parts = PurePosixPath(change.path).parts
    name = parts[-1] if parts else change.path
    if change.binary:
        return "binary"
    if change.status == "deleted":
        return "deleted"
    if name in LOCK_FILES or name.endswith(".lock"):
        return "lock file"
    if name.endswith(GENERATED_SUFFIXES):
        return "generated"
    if any(part in VENDORED_DIRS or part.endswith(".egg-info") for part in parts[:-1]):
        return "vendored"
    if has_generated_header(change.head_lines()):
        return "generated"
    if not any(ln.kind == "+" for h in change.hunks for ln in h.lines):
        return "no added lines"
    return None


def render_change(change: FileChange, hunks: list[Hunk] | None = None) -> str:
    """A file's change for the prompt: new-file line numbers on kept and added lines."""
    label = change.status if change.old_path is None else f"renamed from {change.old_path}"
    out = [f"### {change.path} ({label})"]
    for hunk in change.hunks if hunks is None else hunks:
        out.append(render_hunk_header(hunk))
        out.extend(render_line(ln) for ln in hunk.lines)
    return "\n".join(out) + "\n"


def render_hunk_header(hunk: Hunk) -> str:
    return f"@@ {hunk.header}".rstrip()


def render_line(line: Line) -> str:
    """One diff line as the model sees it: its new line number, its kind, its text."""
    number = f"{line.new:>5}" if line.new is not None else "     "
    return f"{number} {line.kind} {line.text}"
