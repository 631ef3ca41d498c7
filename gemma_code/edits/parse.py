"""Parse model replies into Edits: SEARCH/REPLACE blocks, unified diffs and whole files.

Prose around the blocks is ignored. Diffs may be sloppy: wrong or missing `@@` numbers,
wrong counts, no `a/` `b/` prefixes, blank context lines without their leading space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gemma_code.edits.model import Edit, EditKind, Format
from gemma_code.errors import EditRejectedError

_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\b.*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\b.*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*?)\s*$")
_HUNK = re.compile(r"^@@(?:\s+-(\d+)\S*)?(?:\s.*)?$")
_DIFF_GIT = re.compile(r"^diff --git (\S+) (\S+)\s*$")
_PATH_TOKEN = re.compile(r"^[\w.\-/\\@+~]+$")
_DECOR = re.compile(
    r"^(?:#+\s*|[-*]\s+|\d+\.\s+)?(?:(?:new |updated |modified )?file(?:name)?(?::\s*|\s+)|path:\s*)?",
    re.IGNORECASE,
)
DEV_NULL = "/dev/null"


@dataclass(frozen=True)
class ParseProblem:
    """A block that looks like an edit but cannot be read."""

    reply_line: int
    message: str

    def explain(self) -> str:
        return f"reply line {self.reply_line}: {self.message}"


class MalformedReplyError(EditRejectedError):
    """Some blocks of the reply could not be read; `problems` says which."""

    def __init__(self, problems: list[ParseProblem]) -> None:
        super().__init__(
            f"{len(problems)} malformed edit block(s) in the reply; nothing was written",
            "each block needs a file path, <<<<<<< SEARCH, =======, >>>>>>> REPLACE",
        )
        self.problems = problems

    def details(self) -> str:
        return "\n".join(p.explain() for p in self.problems)


def as_path(line: str) -> str | None:
    """The file path a line names on its own (`app.py`, **src/x.py**, `# File: a/b.py:`), else None."""
    text = line.strip()
    if not text or len(text) > 300:
        return None
    text = _DECOR.sub("", text, count=1).strip()
    text = text.strip("*`'\"").strip()
    text = text.rstrip(":").strip().strip("*`'\"").strip()
    if not _PATH_TOKEN.match(text) or text in {".", ".."} or text.endswith("."):
        return None
    if "." not in text and "/" not in text and text not in {"Makefile", "Dockerfile", "LICENSE"}:
        return None
    if set(text) <= {".", "-", "_", "+", "~"}:
        return None
    return text.replace("\\", "/")


def _quoted_path(line: str) -> str | None:
    """The one `path/like.py` in backticks on a prose line ending in a colon ("In `app.py`:")."""
    if not line.rstrip().endswith(":"):
        return None
    found = {p for p in (as_path(q) for q in re.findall(r"`([^`\s]+)`", line)) if p and "." in p}
    return found.pop() if len(found) == 1 else None


def path_from_info(info: str) -> str | None:
    """A path in a fence's info string: ```python app.py, ```app.py, ```py title="app.py"."""
    for token in re.split(r"[\s:]+|title=", info):
        candidate = as_path(token)
        if candidate and ("/" in candidate or "." in candidate.strip(".")):
            return candidate
    return None


def _lines_text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


class _Parser:
    """One pass over the reply's lines; fences, SEARCH/REPLACE blocks and diffs as states."""

    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.edits: list[Edit] = []
        self.problems: list[ParseProblem] = []
        self.block = 0
        self.group = 0
        self.last_path: str | None = None
        # open fence: (index of its line, ticks, info) and whether an edit was found inside
        self.fence: tuple[int, str, str] | None = None
        self.found_in_fence = False

    def add(self, path: str, kind: EditKind, search: str, replace: str, fmt: Format,
            line: int, hint: int | None = None, ops: str = "") -> None:
        self.block += 1
        self.edits.append(Edit(path=path, kind=kind, search=search, replace=replace,
                               block=self.block, fmt=fmt, line_hint=hint, group=self.group,
                               reply_line=line + 1, hunk_ops=ops))
        self.found_in_fence = True

    def path_before(self, index: int) -> str | None:
        """The path named just before line `index`: a path line, a fence info, or the last one."""
        j = index - 1
        while j >= 0 and not self.lines[j].strip():
            j -= 1
        if j < 0:
            return self.last_path
        line = self.lines[j]
        if _REPLACE.match(line):
            return self.last_path
        fence = _FENCE.match(line)
        if fence and self.fence is not None and self.fence[0] == j:
            found = path_from_info(fence.group(3))
            if found:
                return found
            k = j - 1
            while k >= 0 and not self.lines[k].strip():
                k -= 1
            found = (as_path(self.lines[k]) or _quoted_path(self.lines[k])) if k >= 0 else None
            return found or self.last_path
        return as_path(line) or _quoted_path(line) or self.last_path

    def run(self) -> None:
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            if _SEARCH.match(line):
                i = self.search_replace(i)
                continue
            if self.diff_starts(i):
                i = self.diff(i)
                continue
            fence = _FENCE.match(line)
            if fence:
                self.fence_line(i, fence)
            i += 1

    def fence_line(self, i: int, fence: re.Match[str]) -> None:
        ticks, info = fence.group(2), fence.group(3)
        if self.fence is None:
            self.fence, self.found_in_fence = (i, ticks, info), False
            return
        start, open_ticks, open_info = self.fence
        indent = len(fence.group(1))
        opened_at = len(self.lines[start]) - len(self.lines[start].lstrip())
        if info or ticks[0] != open_ticks[0] or len(ticks) < len(open_ticks) or indent > opened_at:
            return  # a fence line inside the block's content (e.g. indented in a docstring)
        self.fence = None
        if self.found_in_fence or open_info.strip().lower() in {"diff", "patch"}:
            return
        path = path_from_info(open_info)
        if path is None:
            k = start - 1
            while k >= 0 and not self.lines[k].strip():
                k -= 1
            path = as_path(self.lines[k]) if k >= 0 else None
        if path is not None:
            self.group += 1
            self.add(path, "whole", "", _lines_text(self.lines[start + 1 : i]), "whole-file", start)
            self.last_path = path

    def search_replace(self, start: int) -> int:
        path = self.path_before(start)
        search: list[str] = []
        replace: list[str] = []
        target = search
        i = start + 1
        while i < len(self.lines):
            line = self.lines[i]
            if target is search and _DIVIDER.match(line):
                target = replace
            elif target is replace and _REPLACE.match(line):
                break
            elif _SEARCH.match(line):
                self.problems.append(ParseProblem(start + 1, "SEARCH block not closed by "
                                                  "======= and >>>>>>> REPLACE"))
                return i
            else:
                target.append(line)
            i += 1
        else:
            what = "=======" if target is search else ">>>>>>> REPLACE"
            self.problems.append(ParseProblem(start + 1, f"SEARCH block has no {what} line"))
            return i
        if path is None:
            self.problems.append(ParseProblem(start + 1, "no file path before the SEARCH block"))
            return i + 1
        self.group += 1
        kind: EditKind = "replace" if search else "create"
        self.add(path, kind, _lines_text(search) if kind == "replace" else "",
                 _lines_text(replace), "search-replace", start)
        self.last_path = path
        return i + 1

    def diff_starts(self, i: int) -> bool:
        line = self.lines[i]
        if _DIFF_GIT.match(line):
            return True
        if line.startswith("--- ") and i + 1 < len(self.lines) and self.lines[i + 1].startswith("+++ "):
            return True
        return bool(_HUNK.match(line)) and self.path_before(i) is not None

    def diff(self, start: int) -> int:
        """Read one file's diff (headers and hunks); returns the index after it."""
        i = start
        old = new = None
        git = _DIFF_GIT.match(self.lines[i])
        if git:
            old, new = git.group(1), git.group(2)
            i += 1
            while i < len(self.lines) and not self.lines[i].startswith(("--- ", "@@", "diff --git")):
                if not re.match(r"^(index|new file|deleted file|old mode|new mode|similarity|"
                                r"rename|copy|dissimilarity|Binary)", self.lines[i]):
                    break
                if self.lines[i].startswith("deleted file"):
                    new = DEV_NULL
                if self.lines[i].startswith("new file"):
                    old = DEV_NULL
                i += 1
        if i + 1 < len(self.lines) and self.lines[i].startswith("--- ") and \
                self.lines[i + 1].startswith("+++ "):
            old = self.lines[i][4:].split("\t")[0].strip()
            new = self.lines[i + 1][4:].split("\t")[0].strip()
            i += 2
        if old is None and new is None:
            new = old = self.path_before(start)
        old, new = _strip_prefixes(old or DEV_NULL, new or DEV_NULL)
        path = new if new != DEV_NULL else old
        if path == DEV_NULL:
            self.problems.append(ParseProblem(start + 1, "diff names no file"))
            return i
        self.group += 1
        self.last_path = path
        if new == DEV_NULL:
            removed: list[str] = []  # the file's content as the diff quotes it, checked at apply
            while i < len(self.lines) and (_HUNK.match(self.lines[i]) or
                                           self.lines[i][:1] in {"-", " ", "\\"}):
                if self.lines[i].startswith("--- ") and i + 1 < len(self.lines) and \
                        self.lines[i + 1].startswith("+++ "):
                    break
                if self.lines[i][:1] in {"-", " "}:
                    removed.append(self.lines[i][1:])
                i += 1
            self.add(path, "delete", _lines_text(removed), "", "diff", start)
            return i
        found = False
        while i < len(self.lines):
            hunk = _HUNK.match(self.lines[i])
            at_body = not hunk and not found and self.lines[i][:1] in {"+", "-"} and \
                not self.lines[i].startswith(("--- ", "+++ "))
            if not hunk and not at_body:
                break
            hint = int(hunk.group(1)) if hunk and hunk.group(1) else None
            i = self.hunk(i + (1 if hunk else 0), path, old == DEV_NULL, hint, i)
            found = True
        if not found:
            if old == DEV_NULL:
                self.add(path, "create", "", "", "diff", start)
            else:
                self.problems.append(ParseProblem(start + 1, f"diff for {path} has no hunks"))
        return i

    def hunk(self, i: int, path: str, create: bool, hint: int | None, header: int) -> int:
        search: list[str] = []
        replace: list[str] = []
        ops: list[str] = []
        while i < len(self.lines):
            line = self.lines[i]
            if line.startswith("--- ") and i + 1 < len(self.lines) and \
                    self.lines[i + 1].startswith("+++ "):
                break
            if _HUNK.match(line) or _DIFF_GIT.match(line) or _FENCE.match(line):
                break
            tag, body = line[:1], line[1:]
            if tag == " ":
                search.append(body)
                replace.append(body)
            elif tag == "-":
                search.append(body)
            elif tag == "+":
                replace.append(body)
            elif tag == "\\":
                pass  # "\ No newline at end of file": the file's own final newline is kept
            elif line == "":
                search.append("")
                replace.append("")
                tag = " "
            else:
                break
            if tag in " -+":
                ops.append(tag)
            i += 1
        # trailing blank "context" is usually the blank line after the diff, not the file's
        while search and replace and search[-1] == "" and replace[-1] == "" and \
                self.lines[i - 1] == "":
            search.pop()
            replace.pop()
            ops.pop()
            i -= 1
        if create:
            self.add(path, "create", "", _lines_text(replace), "diff", header)
        else:
            self.add(path, "replace", _lines_text(search), _lines_text(replace), "diff", header,
                     hint, "".join(ops))
        return i


def _strip_prefixes(old: str, new: str) -> tuple[str, str]:
    """Drop git's a/ and b/ prefixes when the diff uses them."""
    old_git = old.startswith("a/") or old == DEV_NULL
    new_git = new.startswith("b/") or new == DEV_NULL
    if old_git and new_git and not (old == DEV_NULL and new == DEV_NULL):
        old = old[2:] if old != DEV_NULL else old
        new = new[2:] if new != DEV_NULL else new
    return old, new


def parse_reply_lenient(text: str) -> tuple[list[Edit], list[ParseProblem]]:
    """Every edit the reply holds, plus the blocks that could not be read."""
    parser = _Parser(text)
    parser.run()
    return parser.edits, parser.problems


def parse_reply(text: str) -> list[Edit]:
    """Every edit in a model reply, in order; MalformedReplyError if any block is unreadable."""
    edits, problems = parse_reply_lenient(text)
    if problems:
        raise MalformedReplyError(problems)
    return edits
