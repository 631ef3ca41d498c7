"""Ranking on the kinds of evidence real questions carry: names of tests, error messages,
files that change together, and agreement between views (reciprocal-rank fusion)."""

from __future__ import annotations

from pathlib import Path

from conftest import git

from gemma_code.context import build_context
from gemma_code.context.fuse import fuse, message_phrases
from gemma_code.context.history import History, parse_log


def words(text: str) -> int:
    return len(text) // 3 + 1


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    commit(root, files, "initial")
    return root


def commit(root: Path, files: dict[str, str], message: str) -> None:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


def order(root: Path, question: str) -> list[str]:
    return build_context(root, question, budget=50_000, count_tokens=words).order


def test_fusion_prefers_the_file_two_views_agree_on() -> None:
    views = {
        "lexical": {"a.py": 9.0, "b.py": 8.0},
        "graph": {"c.py": 5.0, "b.py": 4.5},
    }
    fused = fuse(views, {"lexical": 1.0, "graph": 1.0})
    assert max(fused, key=lambda p: fused[p]) == "b.py"
    only_lexical = fuse(views, {"lexical": 1.0, "graph": 0.0})
    assert max(only_lexical, key=lambda p: only_lexical[p]) == "a.py"
    # scores are relative to each view's best: scaling a view changes nothing
    scaled = fuse({**views, "graph": {p: v * 1000 for p, v in views["graph"].items()}},
                  {"lexical": 1.0, "graph": 1.0})
    assert scaled == fused


def test_a_named_test_leads_to_the_code_under_test(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "src/urls.py": "def parse_url(text):\n    return text.split('/')\n",
        "src/other.py": "def render(x):\n    return x\n",
        "tests/test_urls.py": (
            "from src.urls import parse_url\n\n\ndef test_parse_url_keeps_the_query():\n"
            "    assert parse_url('a/b?q') == ['a', 'b?q']\n\n\n"
            "def test_parse_url_empty():\n    assert parse_url('') == ['']\n"
        ),
    })
    assert order(root, "test_parse_url_keeps_the_query fails on Windows")[0] == "src/urls.py"


def test_a_quoted_error_message_leads_to_the_raising_site(tmp_path: Path) -> None:
    # the raising site is one line in a long module; another file is dense with the message's words
    unrelated = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n\n" for i in range(60))
    root = make_repo(tmp_path / "r", {
        "pkg/codec.py": unrelated + (
            "def read(data):\n    if not data:\n"
            "        raise ValueError('could not decode the frame prefix')\n    return data\n"
        ),
        "pkg/frames.py": "def decode_frame_prefix(frame, prefix):\n    # decode a frame's prefix\n"
                         "    return frame.decode() + prefix\n",
        "tests/test_codec.py": (
            "import pytest\n\n\ndef test_empty():\n    with pytest.raises(ValueError, match="
            "'could not decode the frame prefix'):\n        read(b'')\n"
        ),
    })
    question = 'Reading fails with "ValueError: could not decode the frame prefix"'
    assert message_phrases(question) == ["could not decode the frame prefix"]
    assert order(root, question)[0] == "pkg/codec.py"


def test_history_finds_files_that_change_together(tmp_path: Path) -> None:
    body = "def thing_{0}(x):\n    return x + {0}\n"
    root = make_repo(tmp_path / "r", {
        "core/scheduler.py": "def schedule_retry(job):\n    return job\n",
        "core/zeta.py": body.format(1),
        "core/beta.py": body.format(2),
    })
    for i in range(4):  # the scheduler and zeta keep changing together; beta never with them
        commit(root, {"core/scheduler.py": f"def schedule_retry(job):\n    return job  # {i}\n",
                      "core/zeta.py": body.format(1) + f"# {i}\n"}, f"retry tweak {i}")
        commit(root, {"core/beta.py": body.format(2) + f"# {i}\n"}, f"beta {i}")
    ranked = order(root, "schedule_retry drops jobs")
    assert ranked[0] == "core/scheduler.py"
    assert ranked.index("core/zeta.py") < ranked.index("core/beta.py")  # beta: by path, and newer


def test_history_leaves_out_sweeping_commits() -> None:
    log = "\0\na.py\nb.py\n\0\n" + "\n".join(f"f{i}.py" for i in range(100)) + "\n\0\nc.py\n"
    history = History(parse_log(log))
    assert history.commits == [["a.py", "b.py"], ["c.py"]]
    assert history.cochange({"a.py": 1.0}) == {"b.py": 1.0}
    recency = history.recency()
    assert recency["a.py"] > recency["c.py"] > 0


def test_tests_come_after_the_code_they_test(tmp_path: Path) -> None:
    # the test file repeats every word of the question; the change lands in the code it tests
    test_body = "".join(
        f"def test_rounds_negative_amounts_{i}():\n"
        f"    assert format_amount(-{i}.5) == 'negative amounts round away'\n\n\n" for i in range(8)
    )
    root = make_repo(tmp_path / "r", {
        "money/fmt.py": "def format_amount(value):\n    return f'{value:.2f}'\n",
        "money/other.py": "def parse(text):\n    return float(text)\n",
        "tests/test_fmt.py": "from money.fmt import format_amount\n\n\n" + test_body,
    })
    ranked = order(root, "format_amount rounds negative amounts the wrong way")
    assert ranked.index("money/fmt.py") < ranked.index("tests/test_fmt.py")
    # named by path, a test file stays with the code it tests, ahead of the rest
    named = order(root, "tests/test_fmt.py rounds negative amounts the wrong way")
    assert set(named[:2]) == {"money/fmt.py", "tests/test_fmt.py"}


def test_changelogs_come_after_the_code_unless_asked_for(tmp_path: Path, monkeypatch) -> None:
    # a changelog's line repeats the words of the change it records; the change lands in the code
    notes = "- Pooled connections are now retried after a timeout.\n"
    root = make_repo(tmp_path / "r", {
        "net/conn.py": 'def reopen(connection):\n    """Reopen a connection after a timeout."""\n'
                       "    return connection\n",
        "net/other.py": "def parse(text):\n    return float(text)\n",
        "net/client.py": "def send(request):\n    return request\n",
        "CHANGES.rst": "Changes\n=======\n\n" + notes,
        "docs/releases/2.1.md": "# 2.1\n\n" + notes,
    })
    question = "pooled connections are not retried after a timeout"
    assert order(root, question)[0] == "net/conn.py"
    # without the history weight the changelogs' words win
    monkeypatch.setattr("gemma_code.context.fuse.HISTORY_WEIGHT", 1.0)
    assert order(root, question)[0] != "net/conn.py"
    monkeypatch.undo()
    # a question about the changelog is not demoted
    asked = order(root, "what do the release notes say: pooled connections are not retried after a timeout")
    assert asked[0] in {"CHANGES.rst", "docs/releases/2.1.md"}


def test_only_prose_files_count_as_changelogs() -> None:
    from gemma_code.context.fuse import _HISTORY_ASKED, is_history_path

    for path in ("CHANGES.rst", "CHANGES", "CHANGELOG.md", "docs/news.rst", "docs/releases/5.1.md",
                 "changelog.d/12.feature.rst", "HISTORY.txt"):
        assert is_history_path(path), path
    for path in ("gemma_code/context/history.py", "app/news.py", "src/changes/apply.go",
                 "pkg/releases/release.go", "docs/releases/index.html"):
        assert not is_history_path(path), path
    assert _HISTORY_ASKED.search("what do the release notes say about retries?")
    for question in ("explain the changes.", "the news feed view crashes"):
        assert not _HISTORY_ASKED.search(question), question


def test_files_beside_the_top_files_come_next(tmp_path: Path, monkeypatch) -> None:
    # the change lands beside the code the question is about: a loader in the same package that
    # shares none of its words, ahead of files elsewhere that share a word or two
    files = {
        "shop/orders/types.py": "".join(
            f"def order_shipping_method_{i}(order):\n    return order.shipping_method\n\n\n"
            for i in range(6)),
        "shop/orders/loaders.py": "def batch_load(keys):\n    return [fetch(k) for k in keys]\n",
        "shop/orders/status.py": "def order_status(order):\n    return order.status\n",
        "shop/orders/totals.py": "def order_total(order):\n    return order.total\n",
    }
    for i in range(6):
        files[f"shop/misc{i}/helpers.py"] = f"def helper_{i}(order):\n    return order\n"
    root = make_repo(tmp_path / "r", files)
    question = "the order shipping method is wrong for orders"
    ranked = order(root, question)
    head = ranked[:3]
    assert ranked[0] == "shop/orders/types.py"
    elsewhere = [p for p in ranked[3:] if "/misc" in p]  # helpers below the first places
    assert len(elsewhere) >= 3
    assert ranked.index("shop/orders/loaders.py") < min(ranked.index(p) for p in elsewhere)
    monkeypatch.setattr("gemma_code.context.fuse.FOLDER_WEIGHT", 0.0)
    plain = order(root, question)
    assert plain[:3] == head  # the first places are the fused scores' own either way
    assert plain.index("shop/orders/loaders.py") > min(plain.index(p) for p in elsewhere)


def test_the_root_folder_and_tests_lend_nothing() -> None:
    from gemma_code.context.fuse import folder_scores

    scores = {"setup.py": 9.0, "tests/test_a.py": 8.0, "pkg/a.py": 4.0, "pkg/sub/b.py": 2.0}
    paths = [*scores, "README.md", "tests/conftest.py", "pkg/c.py", "pkg/sub/d.py", "other/e.py"]
    lent = folder_scores(scores, paths, top=3)
    assert lent == {"pkg/a.py": 1.0, "pkg/c.py": 1.0, "pkg/sub/b.py": 0.5, "pkg/sub/d.py": 0.5}
