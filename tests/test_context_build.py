"""build_context: file selection, ranking, packing within budget, determinism, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemma_code.context import build_context
from gemma_code.context.files import scan_files
from gemma_code.gitops import repo_root


def words(text: str) -> int:
    """A deterministic stand-in tokenizer for tests: about one token per 3 characters."""
    return len(text) // 3 + 1


def make_repo(root: Path, files: dict[str, str | bytes], *, commit: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    if commit:
        git(root, "add", ".")
        git(root, "commit", "-q", "-m", "fixture")
    return root


PROJECT = {
    "src/billing/invoice.py": (
        "from src.billing.tax import compute_tax\n\n\nclass InvoiceRenderer:\n"
        "    def render(self, invoice):\n        return str(compute_tax(invoice.total))\n"
    ),
    "src/billing/tax.py": "def compute_tax(amount):\n    return amount * 0.2\n",
    "src/auth/login.py": (
        "def check_password(user, password):\n    return user.password == password\n\n\n"
        "def login(user, password):\n    if check_password(user, password):\n        return True\n"
    ),
    "src/auth/session.py": "class SessionStore:\n    def save(self, key):\n        return key\n",
    "README.md": "# shop\nA small shop with billing and auth.\n",
    "docs/usage.md": "Run the shop with `python -m shop`.\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop", dict(PROJECT))


def test_file_defining_a_mentioned_symbol_ranks_first(project: Path) -> None:
    packed = build_context(project, "Why does InvoiceRenderer print the wrong total?", budget=4000,
                           count_tokens=words)
    assert packed.files[0].path == "src/billing/invoice.py"
    packed = build_context(project, "where is compute_tax used?", budget=4000, count_tokens=words)
    assert packed.files[0].path == "src/billing/tax.py"


def test_mentioned_path_ranks_first(project: Path) -> None:
    packed = build_context(project, "what does src/auth/session.py do?", budget=4000, count_tokens=words)
    assert packed.files[0].path == "src/auth/session.py"


def test_reference_graph_pulls_in_what_the_top_file_uses(project: Path) -> None:
    packed = build_context(project, "InvoiceRenderer", budget=4000, count_tokens=words)
    order = [f.path for f in packed.files]
    assert order.index("src/billing/tax.py") < order.index("src/auth/session.py")


def test_named_file_ranks_first_in_full(project: Path) -> None:
    packed = build_context(project, "how do I log in?", budget=4000, count_tokens=words,
                           named=[project / "docs/usage.md"])
    assert (packed.files[0].path, packed.files[0].mode) == ("docs/usage.md", "full")


def test_every_file_is_marked_with_its_path(project: Path) -> None:
    packed = build_context(project, "billing", budget=4000, count_tokens=words)
    for item in packed.files:
        assert f"### {item.path}" in packed.text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(min_value=0, max_value=3000))
def test_packing_never_exceeds_the_budget(project: Path, budget: int) -> None:
    packed = build_context(project, "why is the tax wrong on invoices?", budget=budget, count_tokens=words)
    assert packed.used <= budget
    # this stand-in tokenizer is not additive, so the whole text is recounted and trimmed
    assert packed.used == (words(packed.text) if packed.text else 0)


def test_small_budget_prefers_outlines_to_nothing(project: Path) -> None:
    big = "\n".join(f"def helper_{i}(x):\n    return x + {i}\n" for i in range(300))
    (project / "src/billing/tax.py").write_text(big, encoding="utf-8")
    packed = build_context(project, "compute helper_7 tax", budget=3000, count_tokens=words)
    modes = {f.path: f.mode for f in packed.files}
    assert modes.get("src/billing/tax.py") == "outline"
    assert "7: " in packed.text or "helper_7" in packed.text


def test_output_is_deterministic_and_byte_identical(project: Path, tmp_path: Path, monkeypatch) -> None:
    first = build_context(project, "how does login check passwords?", budget=2500, count_tokens=words)
    again = build_context(project, "how does login check passwords?", budget=2500, count_tokens=words)
    monkeypatch.setenv("GEMMA_CODE_HOME", str(tmp_path / "other-home"))  # a cold cache
    cold = build_context(project, "how does login check passwords?", budget=2500, count_tokens=words)
    assert first.text == again.text == cold.text
    assert first.files == again.files == cold.files


def test_repository_map_is_a_stable_prefix_across_questions(project: Path) -> None:
    one = build_context(project, "how does login work?", budget=3000, count_tokens=words)
    two = build_context(project, "where is the invoice tax computed?", budget=3000, count_tokens=words)
    assert one.map_tokens > 0
    prefix = one.text.split("### ", 1)[0]
    assert prefix.startswith("## Repository map")
    assert two.text.startswith(prefix)


def test_secrets_stay_out_unless_named(tmp_path: Path) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    root = make_repo(tmp_path / "r", {
        "app.py": "API = 'uses settings'\n",
        ".env": "API_TOKEN=supersecret\n",
        "deploy/id_rsa": key,
        "certs/server.pem": key,
        "notes.txt": "for the token see:\n" + key,
        "config/credentials.json": '{"token": "supersecret"}',
    })
    packed = build_context(root, "where is the API token supersecret configured?", budget=5000,
                           count_tokens=words)
    assert "supersecret" not in packed.text
    assert "PRIVATE KEY" not in packed.text
    skipped = dict(packed.skipped)
    assert skipped[".env"] == "secret-looking name"
    assert skipped["notes.txt"] == "contains a private key"
    assert {"deploy/id_rsa", "certs/server.pem", "config/credentials.json"} <= set(skipped)
    named = build_context(root, "check this", budget=5000, count_tokens=words, named=[root / ".env"])
    assert "supersecret" in named.text


def test_ignored_vendored_lock_binary_and_minified_files_are_skipped(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        ".gitignore": "build/\n*.log\n",
        "main.js": "function main() { return 1; }\n",
        "node_modules/lib/index.js": "function vendored() {}\n",
        "package-lock.json": "{}\n",
        "logo.png": b"\x89PNG\r\n\x1a\n\0\0\0",
        "data.bin.txt": b"abc\0def",
        "app.min.js": "var a=1;" * 100,
        "bundle.js": "var a=1;" * 2000,
        "big.txt": "x" * 2_000,
    })
    (root / "build").mkdir()
    (root / "build" / "out.js").write_text("ignored", encoding="utf-8")
    (root / "debug.log").write_text("ignored", encoding="utf-8")
    packed = build_context(root, "main", budget=5000, count_tokens=words)
    assert [f.path for f in packed.files if f.mode == "full"][:1] == ["main.js"]
    skipped = dict(packed.skipped)
    assert skipped["node_modules/lib/index.js"] == "vendored or tool folder"
    assert skipped["package-lock.json"] == "lock file"
    assert skipped["logo.png"] == "binary"
    assert skipped["data.bin.txt"] == "binary"
    assert skipped["app.min.js"] == "generated or minified"
    assert skipped["bundle.js"] == "generated or minified"
    listed = {f.path for f in scan_files(root, max_file_bytes=1000).files}
    assert "build/out.js" not in listed and "debug.log" not in listed
    assert dict(scan_files(root, max_file_bytes=1000).skipped)["big.txt"] == "over 1,000 bytes"


def test_untracked_files_count_but_ignored_do_not(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "def a():\n    pass\n", ".gitignore": "secret_dir/\n"})
    (root / "new_module.py").write_text("def fresh_helper():\n    pass\n", encoding="utf-8")
    (root / "secret_dir").mkdir()
    (root / "secret_dir" / "x.py").write_text("def hidden():\n    pass\n", encoding="utf-8")
    scan = scan_files(root)
    paths = [f.path for f in scan.files]
    assert "new_module.py" in paths and "secret_dir/x.py" not in paths
    assert "new_module.py" in scan.dirty


def test_recent_and_grep_hints_keep_non_ascii_file_names_unquoted(tmp_path: Path) -> None:
    from gemma_code.context.files import grep_files

    root = make_repo(tmp_path / "r", {"café.py": "def brew_coffee():\n    pass\n"})
    scan = scan_files(root)
    assert "café.py" in [f.path for f in scan.files]
    assert "café.py" in scan.recent
    assert grep_files(root, ["brew_coffee"]) == ["café.py"]


def test_one_repo_root_lookup_for_folders_files_and_new_paths(tmp_path: Path) -> None:
    from gemma_code import gitops

    root = make_repo(tmp_path / "r", {"pkg/mod.py": "x = 1\n"})
    assert gitops.repo_root(root / "pkg") == root.resolve()
    assert gitops.repo_root(root / "pkg" / "mod.py") == root.resolve()
    assert gitops.repo_root(root / "pkg" / "not" / "yet.py") == root.resolve()
    (tmp_path / "plain").mkdir()
    assert gitops.repo_root(tmp_path / "plain") is None


def test_context_package_makes_no_git_calls_of_its_own() -> None:
    import re

    import gemma_code.context as context

    for source in Path(context.__file__).parent.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"\b(import git|from git import|subprocess)\b", text), source.name


def test_walk_outside_git_honours_gitignore_and_survives_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("def walked():\n    pass\n", encoding="utf-8")
    (root / ".gitignore").write_text("*.tmp\ncache/\n!keep.tmp\n", encoding="utf-8")
    (root / "x.tmp").write_text("no", encoding="utf-8")
    (root / "keep.tmp").write_text("yes", encoding="utf-8")
    (root / "cache").mkdir()
    (root / "cache" / "c.py").write_text("no", encoding="utf-8")
    os.symlink(root, root / "pkg" / "loop")
    os.symlink(root / "pkg" / "mod.py", root / "alias.py")
    assert repo_root(root) is None or repo_root(root) != root
    packed = build_context(root, "walked", budget=3000, count_tokens=words)
    paths = [f.path for f in packed.files]
    assert "pkg/mod.py" in paths and "keep.tmp" in paths
    assert "x.tmp" not in paths and "cache/c.py" not in paths
    assert dict(packed.skipped).get("alias.py") == "symbolic link"


def test_empty_repository_gives_empty_context_with_a_note(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "empty", {}, commit=False)
    packed = build_context(root, "anything?", budget=1000, count_tokens=words)
    assert packed.text == "" and packed.files == [] and packed.used == 0
    assert any("no files" in n or "no readable" in n for n in packed.notes)


def test_not_a_folder_is_a_note_not_a_crash(tmp_path: Path) -> None:
    packed = build_context(tmp_path / "missing", "q", budget=1000)
    assert packed.files == [] and "not a folder" in packed.notes[0]


def test_too_many_files_leaves_the_rest_unranked_with_a_notice(tmp_path: Path) -> None:
    files = {f"pkg/m{i:03}.py": f"def f{i}():\n    return {i}\n" for i in range(40)}
    root = make_repo(tmp_path / "many", files)
    packed = build_context(root, "what does pkg/m039.py do?", budget=3000, count_tokens=words, max_ranked=10)
    assert packed.ranked == 10
    assert any("30 unranked" in n for n in packed.notes)
    assert packed.files[0].path == "pkg/m039.py"


def test_non_utf8_and_unreadable_files_do_not_crash(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "latin.py": "def caf\u00e9():\n    return 1\n".encode("latin-1"),
        "ok.py": "def ok():\n    pass\n",
    })
    (root / "gone.py").write_text("def gone():\n    pass\n", encoding="utf-8")
    git(root, "add", "gone.py")
    (root / "gone.py").unlink()  # in git's index, missing on disk
    packed = build_context(root, "caf\u00e9", budget=3000, count_tokens=words)
    assert "latin.py" in {f.path for f in packed.files}
    assert "gone.py" not in {f.path for f in packed.files}


def test_nothing_is_written_into_the_repository(project: Path) -> None:
    before = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if ".git" not in p.parts)
    build_context(project, "billing", budget=3000, count_tokens=words)
    after = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if ".git" not in p.parts)
    assert before == after
    assert git(project, "status", "--porcelain") == ""


def test_without_a_tokenizer_counts_are_flagged_estimates(project: Path) -> None:
    packed = build_context(project, "billing", budget=3000)
    assert packed.estimated is True and packed.used > 0
    exact = build_context(project, "billing", budget=3000, count_tokens=words)
    assert exact.estimated is False


def test_token_counts_are_cached_by_content(project: Path) -> None:
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return words(text)

    build_context(project, "billing tax", budget=3000, count_tokens=counting, tokenizer_id="t1")
    assert calls
    calls.clear()
    build_context(project, "billing tax", budget=3000, count_tokens=counting, tokenizer_id="t1")
    assert calls == []
    (project / "src/billing/tax.py").write_text("def compute_tax(a):\n    return 0\n", encoding="utf-8")
    build_context(project, "billing tax", budget=3000, count_tokens=counting, tokenizer_id="t1")
    assert calls and all("compute_tax(a)" in c or "Repository map" in c for c in calls)


def test_over_the_limit_a_named_symbol_still_finds_its_file(tmp_path: Path) -> None:
    files = {f"pkg/m{i:03}.py": f"def f{i}():\n    return {i}\n" for i in range(40)}
    files["zzz/late.py"] = "def very_specific_handler():\n    return 1\n"
    root = make_repo(tmp_path / "many", files)
    packed = build_context(root, "where is very_specific_handler?", budget=3000, count_tokens=words,
                           max_ranked=10)
    assert packed.files[0].path == "zzz/late.py"


def test_graph_after_an_edit_equals_a_full_rebuild(project: Path) -> None:
    from gemma_code.context.cache import ContextCache
    from gemma_code.context.rank import Graph, reference_graph
    from gemma_code.context.tagscan import scan_tags

    build_context(project, "billing", budget=3000, count_tokens=words)
    (project / "src/billing/invoice.py").write_text(
        PROJECT["src/billing/invoice.py"] + "        return SessionStore().save(compute_tax(1))\n",
        encoding="utf-8",
    )
    packed = build_context(project, "billing", budget=3000, count_tokens=words)
    assert any("1 files parsed" in n for n in packed.notes)
    with ContextCache() as cache:
        stored = cache.load_blob(str(project.resolve()), "graph")
    assert stored is not None
    updated = Graph.load(stored)
    full = reference_graph(scan_tags(project, scan_files(project).files).tags)
    assert (updated.nodes, updated.src, updated.dst, updated.weight) == (
        full.nodes, full.src, full.dst, full.weight)
    invoice, session = full.nodes.index("src/billing/invoice.py"), full.nodes.index("src/auth/session.py")
    assert (invoice, session) in set(zip(updated.src, updated.dst, strict=True))


def test_an_unreadable_cached_graph_is_rebuilt_not_fatal(tmp_path: Path) -> None:
    import sqlite3

    from gemma_code.context.cache import cache_file

    repo = make_repo(tmp_path / "repo", PROJECT)
    first = build_context(repo, "InvoiceRenderer", budget=4000, count_tokens=words)
    with sqlite3.connect(cache_file()) as db:  # a graph in a layout this version cannot read
        db.execute("UPDATE blobs SET data = ? WHERE kind = 'graph'", (b"\xe3\x00\x00",))
    again = build_context(repo, "InvoiceRenderer", budget=4000, count_tokens=words)
    assert again.text == first.text


def test_caches_of_an_older_storage_format_are_removed(tmp_path: Path) -> None:
    from gemma_code.context.cache import cache_file

    old = cache_file().parent / "context.sqlite"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"an older gemma-code's cache")
    repo = make_repo(tmp_path / "repo", PROJECT)
    build_context(repo, "InvoiceRenderer", budget=4000, count_tokens=words)
    assert not old.exists() and cache_file().exists()


def test_a_warm_run_reads_stored_tags_and_map_and_packs_the_same(tmp_path: Path, monkeypatch) -> None:
    import sqlite3
    import sys

    from gemma_code import context
    from gemma_code.context.cache import cache_file, seal

    big = "".join(f"def ledger_entry_{i}(invoice):\n    return invoice.total + {i}\n\n\n" for i in range(80))
    repo = make_repo(tmp_path / "repo", {**PROJECT, "src/billing/ledger.py": big})
    cold = build_context(repo, "InvoiceRenderer compute_tax", budget=600)
    assert "outline" in {f.mode for f in cold.files}
    with sqlite3.connect(cache_file()) as db:
        kinds = {k for (k,) in db.execute("SELECT kind FROM blobs")}
    assert {"graph", "tags", "map"} <= kinds

    def not_now(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm run re-read what it had stored")

    with monkeypatch.context() as patch:  # the warm run neither scans tags nor renders the map
        patch.setattr(context, "scan_tags", not_now)
        patch.setattr(sys.modules["gemma_code.context.pack"], "map_block", not_now)
        warm = build_context(repo, "InvoiceRenderer compute_tax", budget=600)
    assert (warm.text, warm.order, warm.used) == (cold.text, cold.order, cold.used)
    assert "tags: 0 files parsed, 7 from the cache" in warm.notes
    # stored versions this code cannot read are redone, not fatal
    with sqlite3.connect(cache_file()) as db:
        db.execute("UPDATE blobs SET data = ? WHERE kind IN ('tags', 'map')", (seal(b"\xe3\x00\x00"),))
    again = build_context(repo, "InvoiceRenderer compute_tax", budget=600)
    assert (again.text, again.order) == (cold.text, cold.order)
    # an edit changes the files' versions: the stored tags are not used for them
    (repo / "src/billing/tax.py").write_text("def compute_tax(amount):\n    return amount * 0.25\n")
    edited = build_context(repo, "InvoiceRenderer compute_tax", budget=600)
    assert "amount * 0.25" in edited.text and "tags: 1 files parsed, 6 from the cache" in edited.notes


def test_a_renamed_file_with_a_space_in_its_old_name_is_not_misread(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"My Notes.md": "notes\n", "a.py": "x = 1\n"})
    git(repo, "mv", "My Notes.md", "notes.md")
    scan = scan_files(repo)
    assert scan.dirty == ["notes.md"]
    assert {f.path for f in scan.files} == {"a.py", "notes.md"}


def test_a_broken_submodule_that_fails_git_status_still_lists_untracked_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "def alpha():\n    return 1\n"})
    (repo / "sub").mkdir()
    (repo / "sub/.git").write_text("gitdir: /nonexistent/modules/sub\n")
    git(repo, "update-index", "--add", "--cacheinfo", "160000,1111111111111111111111111111111111111111,sub")
    (repo / "new_module.py").write_text("def beta():\n    return 2\n")
    scan = scan_files(repo)
    assert scan.in_git and {f.path for f in scan.files} >= {"a.py", "new_module.py"}
    assert not any("walked the folder" in n for n in scan.notes)


def _edit_repo(root: Path) -> Path:
    files = {f"pkg/mod{i}.py": f"def handler_{i}(request):\n    return render(request, 'page{i}')\n"
             for i in range(12)}
    files["pkg/quokka.py"] = "def quokka_count(zoo):\n    return len(zoo.quokkas)  # quokka census\n"
    files["pkg/ledger.py"] = "def settle(entries):\n    return sum(entries)  # census census census\n"
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "fixture")
    return root


def test_after_an_edit_the_stored_word_index_is_patched_not_rebuilt(tmp_path: Path, monkeypatch) -> None:
    import sys

    context = sys.modules["gemma_code.context"]
    root = _edit_repo(tmp_path / "r")
    question = "zanzibar quokka census handler"
    build_context(root, question, budget=4000)  # the index of these versions is stored
    # edit one file, add one, delete one: the next runs patch the stored index with them
    # (the new words only in the text: no name or path to find them by)
    (root / "pkg/mod7.py").write_text(
        "def handler_7(request):\n    return render(request, 'page7')  # zanzibar\n", encoding="utf-8")
    (root / "pkg/extra.py").write_text("NOTE = 'zanzibar zanzibar census'\n", encoding="utf-8")
    (root / "pkg/quokka.py").unlink()
    # and one that loses the question's words: its old entries must leave the index
    (root / "pkg/ledger.py").write_text("def settle(entries):\n    return sum(entries)\n", encoding="utf-8")

    def rebuilt(docs):  # type: ignore[no-untyped-def]
        raise AssertionError("the whole word index was built again")

    monkeypatch.setattr(context, "build_postings", rebuilt)
    patched = build_context(root, question, budget=4000)
    again = build_context(root, question, budget=4000)  # stored tags and graph, patched index
    monkeypatch.undo()
    monkeypatch.setenv("GEMMA_CODE_HOME", str(tmp_path / "fresh-home"))  # an empty cache: built whole
    whole = build_context(root, question, budget=4000)
    assert patched.order == again.order == whole.order
    assert patched.text == again.text == whole.text
    others = [whole.order.index(f"pkg/mod{i}.py") for i in range(12) if i != 7]
    assert whole.order.index("pkg/extra.py") < whole.order.index("pkg/mod7.py") < min(others)
    assert "pkg/quokka.py" not in whole.order
    assert whole.order.index("pkg/ledger.py") > whole.order.index("pkg/mod7.py")


def test_a_file_unreadable_when_the_index_was_built_is_patched_in_once_readable(
    tmp_path: Path, monkeypatch
) -> None:
    import sys

    tagscan = sys.modules["gemma_code.context.tagscan"]
    root = _edit_repo(tmp_path / "r")
    (root / "pkg/keeper.py").write_text("ANIMALS = 'wombat wombat wombat'\n", encoding="utf-8")
    question = "wombat handler"  # the word only in the file's text: the index alone finds it
    real = tagscan.read_file

    def locked(base: Path, rel: str, size: int):  # type: ignore[no-untyped-def]
        return (None, "unreadable (Permission denied)") if rel == "pkg/keeper.py" else real(base, rel, size)

    with monkeypatch.context() as m:
        m.setattr(tagscan, "read_file", locked)
        first = build_context(root, question, budget=4000)
    assert "pkg/keeper.py" not in first.order
    # readable again, same mtime and size; another file is edited, so the index is patched
    (root / "pkg/mod2.py").write_text("def handler_2(request):\n    return None\n", encoding="utf-8")
    patched = build_context(root, question, budget=4000)
    monkeypatch.setenv("GEMMA_CODE_HOME", str(tmp_path / "fresh-home"))
    whole = build_context(root, question, budget=4000)
    assert patched.order == whole.order and whole.order[0] == "pkg/keeper.py"


def test_many_changed_files_or_a_missing_stored_row_rebuild_the_index(tmp_path: Path, monkeypatch) -> None:
    import sys

    context = sys.modules["gemma_code.context"]
    root = _edit_repo(tmp_path / "r")
    question = "zanzibar ledger settle handler"

    def from_empty_cache(name: str, q: str) -> list[str]:
        with monkeypatch.context() as m:
            m.setenv("GEMMA_CODE_HOME", str(tmp_path / name))
            return build_context(root, q, budget=4000).order

    build_context(root, question, budget=4000)
    for i in range(3):
        (root / f"pkg/mod{i}.py").write_text(f"def handler_{i}(request):\n    return 'zanzibar'\n",
                                             encoding="utf-8")
    calls: list[int] = []
    real = context.build_postings

    def counted(docs):  # type: ignore[no-untyped-def]
        calls.append(len(docs))
        return real(docs)

    monkeypatch.setattr(context, "build_postings", counted)
    monkeypatch.setattr(context, "OVERLAY_MAX", 2)  # three changed files: over the limit
    assert build_context(root, question, budget=4000).order == from_empty_cache("a", question)
    assert calls == [14, 14]  # ours, then the empty cache's
    # one more changed file: patched in (its words come from the fresh parse)
    (root / "pkg/mod5.py").write_text("def handler_5(request):\n    return 'zanzibar'\n", encoding="utf-8")
    monkeypatch.setattr(context, "OVERLAY_MAX", 256)
    build_context(root, question, budget=4000)
    assert calls == [14, 14]
    # the next run reads stored tags without words; with the changed file's stored words gone
    # missing, the index is built again from every file
    monkeypatch.setattr(context.ContextCache, "load_terms", lambda self, root, paths: {})
    missing = build_context(root, "zanzibar handler settle", budget=4000).order
    assert calls == [14, 14, 14]
    assert missing == from_empty_cache("b", "zanzibar handler settle")
