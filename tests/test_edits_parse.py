"""Parsing model replies: SEARCH/REPLACE, sloppy unified diffs, whole files, prose ignored."""

from __future__ import annotations

import pytest

from gemma_code.edits import MalformedReplyError, parse_reply, parse_reply_lenient
from gemma_code.edits.parse import as_path


def test_search_replace_with_path_on_line_before():
    edits = parse_reply("Sure, here you go.\n\napp.py\n<<<<<<< SEARCH\nold\n=======\nnew\n"
                        ">>>>>>> REPLACE\nDone!")
    assert len(edits) == 1
    e = edits[0]
    assert (e.path, e.kind, e.search, e.replace, e.fmt) == ("app.py", "replace", "old\n", "new\n",
                                                           "search-replace")
    assert e.block == 1 and e.reply_line == 4


@pytest.mark.parametrize("header", [
    "src/app.py\n```python\n", "```python\nsrc/app.py\n", "**src/app.py**\n```\n", "`src/app.py`:\n```py\n",
    "```python src/app.py\n", "```src/app.py\n", "# File: src/app.py\n```python\n",
])
def test_search_replace_path_before_or_inside_fence(header):
    edits = parse_reply(f"Change:\n\n{header}<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n")
    assert [e.path for e in edits] == ["src/app.py"]


def test_consecutive_blocks_reuse_the_last_path():
    reply = ("x.py\n```\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n"
             "<<<<<<< SEARCH\nc\n=======\nd\n>>>>>>> REPLACE\n```\n")
    assert [(e.path, e.block) for e in parse_reply(reply)] == [("x.py", 1), ("x.py", 2)]


def test_empty_search_creates_a_file():
    (edit,) = parse_reply("new/mod.py\n<<<<<<< SEARCH\n=======\nprint(1)\n>>>>>>> REPLACE\n")
    assert edit.kind == "create" and edit.replace == "print(1)\n"


def test_fence_lines_inside_a_block_are_content():
    reply = "README.md\n<<<<<<< SEARCH\n```sh\nmake\n```\n=======\n```sh\nmake all\n```\n>>>>>>> REPLACE\n"
    (edit,) = parse_reply(reply)
    assert edit.search == "```sh\nmake\n```\n" and edit.replace == "```sh\nmake all\n```\n"


def test_git_diff_with_prefixes_and_numbers():
    reply = ("```diff\ndiff --git a/pkg/u.py b/pkg/u.py\nindex 1..2 100644\n--- a/pkg/u.py\n+++ b/pkg/u.py\n"
             "@@ -3,3 +3,3 @@ def f():\n x\n-y\n+z\n w\n```\n")
    (edit,) = parse_reply(reply)
    assert (edit.path, edit.fmt, edit.line_hint) == ("pkg/u.py", "diff", 3)
    assert edit.search == "x\ny\nw\n" and edit.replace == "x\nz\nw\n"


def test_sloppy_diff_without_prefixes_numbers_or_counts():
    reply = "Here:\n--- u.py\n+++ u.py\n@@\n x\n-y\n+z\n@@ -99,1 +1,7 @@\n-q\n+r\n\nThat's all."
    edits = parse_reply(reply)
    assert [(e.path, e.search, e.replace, e.line_hint) for e in edits] == [
        ("u.py", "x\ny\n", "x\nz\n", None), ("u.py", "q\n", "r\n", 99)]
    assert edits[0].group == edits[1].group


def test_diff_blank_context_line_without_its_space():
    (edit,) = parse_reply("--- a/u.py\n+++ b/u.py\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n")
    assert edit.search == "a\n\nb\n" and edit.replace == "a\n\nc\n"


def test_diff_new_file_and_deleted_file():
    reply = ("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+one\n+two\n"
             "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n")
    new, gone = parse_reply(reply)
    assert (new.path, new.kind, new.replace) == ("new.py", "create", "one\ntwo\n")
    assert (gone.path, gone.kind) == ("old.py", "delete")


def test_hunks_after_a_path_line_without_headers():
    (edit,) = parse_reply("util.py\n```diff\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a + b\n"
                          "+    return b + a\n```")
    assert edit.path == "util.py" and edit.replace.endswith("return b + a\n")


def test_whole_file_block_named_by_path():
    (edit,) = parse_reply("The new file:\n\nsrc/x.py\n```python\nimport os\n\nprint(os.name)\n```\n")
    assert (edit.kind, edit.path, edit.replace) == ("whole", "src/x.py", "import os\n\nprint(os.name)\n")


def test_prose_and_unnamed_code_blocks_are_ignored():
    reply = "Run this:\n\n```bash\npytest -q\n```\n\nThen see `app.py` for the result. -- done"
    assert parse_reply(reply) == []


@pytest.mark.parametrize("reply", [
    "x.py\n<<<<<<< SEARCH\na\n", "x.py\n<<<<<<< SEARCH\na\n=======\nb\n",
    "<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n",
])
def test_malformed_blocks_raise_with_problem_lines(reply):
    with pytest.raises(MalformedReplyError) as info:
        parse_reply(reply)
    assert info.value.problems and info.value.problems[0].reply_line >= 1
    assert info.value.exit_code == 6


def test_lenient_parse_keeps_good_blocks_and_reports_bad_ones():
    edits, problems = parse_reply_lenient(
        "a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n\nb.py\n<<<<<<< SEARCH\nunclosed\n")
    assert [e.path for e in edits] == ["a.py"] and len(problems) == 1


@pytest.mark.parametrize("line, path", [
    ("app.py", "app.py"), ("file_utils.py", "file_utils.py"), ("**a/b.py**", "a/b.py"),
    ("Here is the fix:", None), ("...", None), ("src\\win.py", "src/win.py"), ("Makefile", "Makefile"),
])
def test_path_lines(line, path):
    assert as_path(line) == path


def test_indented_fence_inside_whole_file_does_not_close_it():
    reply = 'doc.py\n```python\ndef f():\n    """Use:\n    ```\n    f()\n    ```\n    """\n```\n'
    (edit,) = parse_reply(reply)
    assert edit.replace == 'def f():\n    """Use:\n    ```\n    f()\n    ```\n    """\n'


def test_single_backticked_path_on_a_prose_line_names_the_block():
    block = "<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n"
    (edit,) = parse_reply(f"In `pkg/app.py`:\n```python\n{block}```\n")
    assert edit.path == "pkg/app.py"
    _, problems = parse_reply_lenient(f"Compare `a.py` and `b.py`:\n{block}")
    assert problems and "no file path" in problems[0].message


def test_snippet_after_prose_naming_a_file_is_not_a_whole_file():
    assert parse_reply("In `app.py`:\n```python\ndef main():\n    pass\n```\n") == []
