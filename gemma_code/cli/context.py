"""`gemma-code context`: show what the context builder would pack for a question."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gemma_code.cli import app
from gemma_code.cli.common import (
    BudgetOpt,
    FilesOpt,
    JsonOpt,
    ModelOpt,
    PagesOpt,
    command,
    settings_from,
)
from gemma_code.documents.pdf import ranges
from gemma_code.errors import UsageError

CONTEXT_HELP = """Show which files would go into the prompt for a question, with token counts.

Examples:

  gemma-code context "where do we retry failed uploads?"

  gemma-code context "why does login fail?" --budget 8000

  gemma-code context "explain the cache" -f src/cache.py --json

  gemma-code context "how are plugins loaded?" --show | less

  gemma-code context "what does section 4 require?" -f rfc.pdf --pages 12-20

Files are ranked by word overlap (BM25), by what the question mentions (paths, \
names, tests, error messages), by the reference graph (PageRank) and by git history \
(files changed together, recently); the top ones go in full, a top file too large \
for the budget as an excerpt (the matching definitions in full), the next as \
outlines (signatures with line numbers), within --budget tokens.

Counts use the model's tokenizer (the `tokenizer` setting, or the model file once \
pulled); without one they are estimates, flagged as such. --json prints {"budget", \
"used", "files": [{"path", "tokens", "mode", "parts"}], ...}, most relevant first. Nothing is \
written to the repository; caches live in the user cache folder. A -f PDF is packed \
first, page by page (mode "pages"), and the repository gets what is left of --budget.
"""


@command(app, "context", help=CONTEXT_HELP)
def context_cmd(
    question: Annotated[str, typer.Argument(help="The question to pack context for.")],
    budget: BudgetOpt = None,
    files: FilesOpt = None,
    model: ModelOpt = None,
    json_out: JsonOpt = False,
    show: Annotated[bool, typer.Option("--show", help="Print the packed text itself.")] = False,
    root: Annotated[
        Path | None, typer.Option("--root", help="Repository folder (default: the current one's).")
    ] = None,
    pages: PagesOpt = None,
) -> None:
    from gemma_code.context import build_context
    from gemma_code.engine.vocab import default_tokenizer
    from gemma_code.gitops import repo_root

    settings = settings_from(model=model, budget=budget).settings
    if not question.strip():
        raise UsageError("no question given", 'try: gemma-code context "where is the retry logic?"')
    base = root or repo_root(Path.cwd()) or Path.cwd()
    if not base.is_dir():
        raise UsageError(f"{base} is not a folder", "give --root an existing folder")
    from gemma_code.context.pack import PackedFile
    from gemma_code.context.tokens import estimate_tokens
    from gemma_code.documents.pdf import PackedDocument, pack_pdf, read_pdf
    from gemma_code.tasks.attachments import check_pages_flag, sort_named

    kinds = sort_named([_resolved(base, _named_file(base, f)) for f in files or []])
    named, pdfs = kinds.texts, kinds.pdfs
    check_pages_flag(pages, pdfs)
    counter = default_tokenizer(settings.model, settings.tokenizer)
    documents: list[PackedDocument] = []
    for pdf in pdfs:
        taken = sum(d.tokens for d in documents)
        documents.append(pack_pdf(read_pdf(pdf, pages), counter[0] if counter else estimate_tokens,
                                  settings.budget - taken))
    doc_tokens = sum(d.tokens for d in documents)
    notes: list[str] = []
    if repo_root(base) is None:
        notes.append(f"{base} is not in a git repository; walked the folder honouring .gitignore "
                     "(`ask` sends no repository context outside a git repository: name files "
                     "with -f there)")
    packed = build_context(
        base, question, budget=settings.budget - doc_tokens,
        count_tokens=counter[0] if counter else None,
        tokenizer_id=counter[1] if counter else "",
        named=named,
        max_file_bytes=settings.max_file_bytes,
    )
    notes += [f"{image}: an image; `ask` counts its tokens exactly when the model loads"
              for image in kinds.images]
    packed.notes[:0] = notes
    for doc in reversed(documents):
        packed.files.insert(0, PackedFile(f"{doc.label}: pages {ranges(doc.packed) or 'none'}",
                                          doc.tokens, "pages"))
        packed.notes[:0] = doc.notes
        packed.text = doc.text + packed.text
    packed.used += doc_tokens
    packed.budget = settings.budget
    if packed.estimated:
        packed.notes.append(
            "token counts are estimates (~4 characters a token): no tokenizer found; set "
            "`tokenizer` to a GGUF path or pull the model"
        )
    if json_out:
        payload: dict[str, Any] = packed.to_dict()
        payload["root"] = str(base)
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    if show:
        typer.echo(packed.text, nl=False)
        return
    _print_table(packed, base)


def _named_file(base: Path, name: Path | str) -> Path:
    """A -f file, from the current folder or the repository root; UsageError as `ask` gives."""
    path = Path(name)
    for candidate in (path,) if path.is_absolute() else (Path.cwd() / path, base / path):
        if candidate.is_dir():
            raise UsageError(f"{name} is a directory", "name files, not folders, with -f")
        if candidate.is_file():
            return path
    raise UsageError(f"no such file: {name}", "check the path given to -f/--file")


def _resolved(base: Path, path: Path) -> Path:
    """A -f name as _named_file found it: from the current folder, else the repository root."""
    return path if path.is_absolute() or (Path.cwd() / path).is_file() else base / path


def _print_table(packed: Any, base: Path) -> None:
    from rich.table import Table
    from rich.text import Text

    from gemma_code.ui import stdout_console

    console = stdout_console()
    approx = "~" if packed.estimated else ""
    table = Table(title=Text(f"Context for {base}"), title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("file")
    table.add_column("mode")
    table.add_column("tokens", justify="right")
    for number, item in enumerate(packed.files, 1):
        table.add_row(str(number), Text(item.path), item.mode, f"{approx}{item.tokens:,}")
    if packed.map_tokens:
        table.add_row("", "(repository map)", "tree", f"{approx}{packed.map_tokens:,}")
    console.print(table)
    console.print(
        f"{approx}{packed.used:,} of {packed.budget:,} tokens; {len(packed.files)} files packed, "
        f"{packed.ranked:,} ranked, {len(packed.skipped):,} skipped; {packed.elapsed_s:.2f} s"
    )
    if packed.skipped:
        by_reason: dict[str, list[str]] = {}
        for path, reason in packed.skipped:
            by_reason.setdefault(reason, []).append(path)
        console.print(f"Skipped {len(packed.skipped):,} files:", style="bold")
        for reason, paths in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            examples = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
            console.print(f"  {reason} ({len(paths):,}): {examples}", style="dim", markup=False)
    for note in packed.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
