"""`gemma-code ask`: one question, answered from the repository, streamed."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import (
    BaseUrlOpt,
    BudgetOpt,
    EngineOpt,
    FilesOpt,
    JsonOpt,
    MaxTokensOpt,
    ModelOpt,
    NCtxOpt,
    NoContextOpt,
    PagesOpt,
    ShowThoughtsOpt,
    StatsOpt,
    ThinkOpt,
    check_named_secrets,
    command,
    settings_from,
)
from gemma_code.errors import Interrupted, UsageError

ASK_HELP = """Ask one question about your code; the answer streams to the terminal.

Examples:

  gemma-code ask "where do we retry failed uploads?"

  gemma-code ask "explain this function" -f src/upload.py

  git diff | gemma-code ask "review this change"

  gemma-code ask --think --stats "why is test_login flaky?"

  gemma-code ask --json "list the CLI entry points" | jq .answer

  gemma-code ask "what does section 4 require?" -f rfc.pdf --pages 12-20

  gemma-code ask "why is this button misaligned?" -f screenshot.png -f src/ui/Toolbar.tsx

Piped standard input is added to the question. Inside a git repository the most \
relevant files go with it (see `gemma-code context`); outside one, none do: name files \
with -f.

On a CPU the defaults are sized for a first token in about 15 s; a note says how to \
raise them. A long prompt shows its reading progress on stderr in a terminal. Ctrl-C \
stops the reading or the answer within a second (exit 130).

--json prints {"answer", "thoughts", "model", "stats", "model_info"}: model_info \
describes the loaded model (n_ctx, backend, quant, chat_format, kv_type, notes, sizing).

A PDF named with -f goes in as the text of each page, with page markers, within --budget \
tokens; pages that do not fit, and scanned pages without text, are named on stderr. \
--pages selects pages. Images (PNG, JPEG, WebP, GIF) need the model's vision projector \
(mmproj, fetched by `models pull`; docs/vision.md).
"""


def read_stdin() -> str | None:
    """Piped standard input, or None on a terminal."""
    stream = sys.stdin
    if stream is None or stream.closed or stream.isatty():
        return None
    return stream.read()


@command(app, "ask", help=ASK_HELP)
def ask(
    question: Annotated[str | None, typer.Argument(help="The question (or pipe it in).")] = None,
    files: FilesOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    base_url: BaseUrlOpt = None,
    think: ThinkOpt = None,
    show_thoughts: ShowThoughtsOpt = None,
    json_out: JsonOpt = False,
    stats: StatsOpt = False,
    max_tokens: MaxTokensOpt = None,
    n_ctx: NCtxOpt = None,
    budget: BudgetOpt = None,
    no_context: NoContextOpt = False,
    pages: PagesOpt = None,
) -> None:
    from gemma_code.engine import open_engine
    from gemma_code.tasks.ask import ask_messages, collect, stream_ask
    from gemma_code.ui import (
        StreamPrinter,
        format_stats,
        prefill_progress,
        print_note,
        stderr_console,
        stdout_console,
        working,
    )

    loaded = settings_from(
        model=model, engine=engine, base_url=base_url, think=think,
        show_thoughts=show_thoughts, max_tokens=max_tokens, n_ctx=n_ctx, budget=budget,
        context=False if no_context else None,
    )
    settings = loaded.settings
    piped = read_stdin()
    if not question or not question.strip():
        if piped and piped.strip():
            question, piped = piped, None
        else:
            raise UsageError("no question given", 'try: gemma-code ask "what does main() do?"')
    assert question is not None
    from gemma_code.tasks.attachments import (
        Attachments,
        check_pages_flag,
        document_budget,
        load_images,
        pack_documents,
        read_pdfs,
        sort_named,
    )

    named = sort_named([Path(p) for p in (files or [])])
    paths, pdfs = named.texts, named.pdfs
    check_named_secrets([*paths, *pdfs])
    check_pages_flag(pages, pdfs)
    images = load_images(named.images)
    with working("reading the PDF …") if pdfs else contextlib.nullcontext():
        documents = read_pdfs(pdfs, pages)
    with open_engine(settings, while_loading=working(f"loading {settings.model} …")) as eng:
        if eng.info.sizing:
            print_note(eng.info.sizing)
        docs = Attachments()
        if pdfs or images:
            base = ask_messages(question, files=paths, stdin_text=piped)
            with working("reading the attachments …"):
                docs = pack_documents(eng, documents, images=images,
                                      budget=document_budget(eng, base, settings))
            for note in docs.notes:
                stderr_console().print(f"note: {note}", style="yellow", markup=False)
        repo_context = None
        if settings.context:
            from gemma_code.gitops import repo_root
            from gemma_code.tasks.ask import repo_context_for

            if repo_root(Path.cwd()) is None:
                print_note("not in a git repository: no repository context is sent (name files "
                           "with -f; `gemma-code context` walks a folder only when asked)")
            with working("packing the repository context …"):
                repo_context = repo_context_for(eng, question, paths, settings, reserved=docs.tokens)
        messages = ask_messages(question, files=paths, stdin_text=piped, repo_context=repo_context,
                                documents=docs.blocks, images=docs.images)
        chunks = stream_ask(
            eng, messages, max_tokens=settings.max_tokens, think=settings.think,
            temperature=settings.temperature,
        )
        from gemma_code.engine.prompt_cache import PrefixCache

        cache = PrefixCache.open(eng, settings)  # restores the system prefix's KV state from disk
        chunks = cache.wrap(chunks, messages, think=settings.think)
        if json_out:
            try:
                result = collect(chunks)
            except KeyboardInterrupt:
                raise Interrupted("interrupted; no answer printed") from None
            payload = {
                "answer": result.answer,
                "thoughts": result.thoughts,
                "model": eng.info.name,
                "stats": result.stats.to_dict(),
                "model_info": eng.info.to_dict(),
            }
            typer.echo(json.dumps(payload, ensure_ascii=False))
            return
        printer = StreamPrinter(stdout_console(), show_thoughts=settings.show_thoughts)
        with prefill_progress(eng):
            final, interrupted = printer.play(chunks)
        if interrupted:
            raise Interrupted("interrupted; the answer above is incomplete")
        if stats and final is not None:
            for note in cache.notes:
                stderr_console().print(note, style="dim", markup=False)
            stderr_console().print(format_stats(final), style="dim")
