"""The read-only tools: list_files, read_file, search (git grep plus tree-sitter definitions)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from gemma_code.tools.base import Action, Tool, ToolContext, ToolError, ToolOutput, bound_text, schema

MAX_LISTED = 2_000
MAX_MATCHES = 300


def repo_path(ctx: ToolContext, path: str, *, allow_root: bool = False) -> tuple[str, Path]:
    """(relative path, real path) inside the repository; ToolError for anything outside it."""
    from gemma_code.edits.safepath import UnsafePathError, normalize, resolve_inside

    text = path.strip()
    if allow_root and text in {"", ".", "./", "/"}:
        return "", ctx.root.resolve()
    try:
        rel = normalize(text)
        return rel, resolve_inside(ctx.root, rel)
    except UnsafePathError as exc:
        raise ToolError(f"refused: {path!r}: {exc}") from None


def _read_action(tool: str, summary: str, run: Any) -> Action:
    return Action(tool, "read", summary, summary, run)


# -- list_files ------------------------------------------------------------------------------


def _listing(ctx: ToolContext) -> tuple[list[str], list[tuple[str, str]]]:
    from gemma_code.context.files import scan_files

    scan = scan_files(ctx.root)
    return [f.path for f in scan.files], scan.skipped


def prepare_list_files(ctx: ToolContext, args: dict[str, Any]) -> Action:
    rel, real = repo_path(ctx, str(args.get("path") or ""), allow_root=True)
    pattern = str(args.get("pattern") or "").strip()
    if rel and not real.exists():
        raise ToolError(f"list_files: no such folder: {rel}")

    def run() -> ToolOutput:
        files, skipped = _listing(ctx)
        entries = [(p, "") for p in files] + [(p, f" ({why}, not readable here)") for p, why in skipped]
        prefix = rel + "/" if rel else ""
        chosen = sorted(
            (p, tag) for p, tag in entries
            if (not rel or p == rel or p.startswith(prefix))
            and (not pattern or fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern))
        )
        if not chosen:
            where = f" under {rel}" if rel else ""
            what = f" matching {pattern!r}" if pattern else ""
            return ToolOutput(True, f"no files{where}{what}")
        head = f"{len(chosen):,} files" + (f" under {rel}" if rel else "") + \
            (f" matching {pattern!r}" if pattern else "") + ":\n"
        shown = chosen[:MAX_LISTED]
        body = "".join(f"{p}{tag}\n" for p, tag in shown)
        if len(chosen) > len(shown):
            body += f"[… {len(chosen) - len(shown):,} more files not listed; give a path or pattern]\n"
        text, cut = bound_text(head + body, ctx.max_result_tokens, ctx.count_tokens,
                               what="the listing", more="give a path or a pattern to narrow it")
        return ToolOutput(True, text, truncated=cut or len(chosen) > len(shown))

    label = "list files" + (f" in {rel}" if rel else "") + (f" matching {pattern}" if pattern else "")
    return _read_action("list_files", label, run)


# -- read_file -------------------------------------------------------------------------------


def prepare_read_file(ctx: ToolContext, args: dict[str, Any]) -> Action:
    from gemma_code.context.files import has_private_key, is_secret_path

    rel, real = repo_path(ctx, str(args["path"]))
    if is_secret_path(rel):
        raise ToolError(f"refused: {rel} looks like a secrets file; it is not read. "
                        "Ask the user if you need something from it")
    if real.is_dir():
        raise ToolError(f"read_file: {rel} is a folder; use list_files")
    if not real.is_file():
        raise ToolError(f"read_file: no such file: {rel}")
    start = args.get("start_line")
    end = args.get("end_line")
    if start is not None and start < 1:
        raise ToolError("read_file: start_line counts from 1")
    if start is not None and end is not None and end < start:
        raise ToolError("read_file: end_line is before start_line")

    def run() -> ToolOutput:
        data = real.read_bytes()
        if b"\0" in data[:8192]:
            return ToolOutput(False, f"{rel} is a binary file; it cannot be read as text")
        if has_private_key(data):
            return ToolOutput(False, f"refused: {rel} holds a private key; it is not read")
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        total = len(lines)
        first = start or 1
        last = min(end or total, total)
        if total and first > total:
            return ToolOutput(False, f"{rel} has {total:,} lines; start_line {first} is past the end")
        body = "".join(lines[first - 1:last])
        if body and not body.endswith("\n"):
            body += "\n"
        span = f"lines {first}-{last} of {total:,}" if (first, last) != (1, total) else \
            f"{total:,} lines"
        head = f"{rel} ({span}):\n"
        text, cut = bound_text(body, ctx.max_result_tokens - 30, ctx.count_tokens, what=rel,
                               more="read on with start_line and end_line", first_line=first)
        return ToolOutput(True, head + text, truncated=cut)

    label = f"read {rel}" + (f" lines {start or 1}-{end or 'end'}" if start or end else "")
    return _read_action("read_file", label, run)


# -- search ----------------------------------------------------------------------------------


def prepare_search(ctx: ToolContext, args: dict[str, Any]) -> Action:
    query = str(args["query"])
    if not query.strip():
        raise ToolError("search: the query is empty")
    if "\n" in query:
        raise ToolError("search: the query must be one line")

    def run() -> ToolOutput:
        from gemma_code import gitops
        from gemma_code.context.files import is_secret_path

        parts: list[str] = []
        word = query.strip()
        if word.isidentifier():
            from gemma_code.context.tags import find_definitions

            defs = find_definitions(ctx.root, word)
            if defs:
                parts.append(f"definitions of {word}:")
                parts += [f"  {d.path}:{d.line}: {d.kind} {d.text.strip()}" for d in defs[:50]]
        in_git = gitops.repo_root(ctx.root) is not None
        hits = gitops.grep_lines(ctx.root, query, in_git=in_git, limit=MAX_MATCHES + 1)
        how = ""
        if not hits:
            hits = gitops.grep_lines(ctx.root, query, ignore_case=True, in_git=in_git,
                                     limit=MAX_MATCHES + 1)
            how = " (ignoring case)"
        hits = [h for h in hits if not is_secret_path(h[0])]
        if hits:
            more = len(hits) > MAX_MATCHES
            hits = hits[:MAX_MATCHES]
            parts.append(f"lines containing {query!r}{how}" +
                         (f" (first {MAX_MATCHES})" if more else "") + ":")
            parts += [f"  {path}:{line}: {text.strip()[:300]}" for path, line, text in hits]
        if not parts:
            return ToolOutput(True, f"nothing found for {query!r}")
        text, cut = bound_text("\n".join(parts) + "\n", ctx.max_result_tokens, ctx.count_tokens,
                               what="the matches", more="search for something more specific")
        return ToolOutput(True, text, truncated=cut)

    return _read_action("search", f"search {query!r}", run)


LIST_FILES = Tool(
    "list_files",
    "List the repository's files (git's view: tracked and untracked, not ignored).",
    schema({"path": ("STRING", "a folder inside the repository; omit for all files"),
            "pattern": ("STRING", "a glob such as *.py or tests/test_*.py")}),
    "read", prepare_list_files,
)
READ_FILE = Tool(
    "read_file",
    "Read a text file of the repository, whole or a range of lines.",
    schema({"path": ("STRING", "the file, relative to the repository root"),
            "start_line": ("INTEGER", "first line to read, from 1"),
            "end_line": ("INTEGER", "last line to read")}, ("path",)),
    "read", prepare_read_file,
)
SEARCH = Tool(
    "search",
    "Search the repository: where a name is defined, and every line containing the text.",
    schema({"query": ("STRING", "an identifier or a piece of text")}, ("query",)),
    "read", prepare_search,
)
