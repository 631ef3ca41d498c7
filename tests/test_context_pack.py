"""Packing keeps what matters whole: the top file whole even when large, an excerpt of a top
file too large for the budget, and a repository map that shrinks at small budgets."""

from __future__ import annotations

from pathlib import Path

from conftest import git

from gemma_code.context import build_context
from gemma_code.context.pack import map_share


def words(text: str) -> int:
    return len(text) // 3 + 1


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "fixture")
    return root


def module(prefix: str, count: int) -> str:
    return "".join(f"def {prefix}_{i}(value):\n    return value + {i}  # {prefix}\n\n\n"
                   for i in range(count))


def test_the_top_file_goes_whole_even_when_it_takes_most_of_the_budget(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "ledger/reconcile.py": module("reconcile_entry", 120),  # about 75% of the budget
        "ledger/small.py": "def tiny():\n    return 1\n",
    })
    budget = 4000
    packed = build_context(root, "reconcile_entry_7 double counts", budget=budget, count_tokens=words)
    top = packed.files[0]
    assert top.path == "ledger/reconcile.py"
    assert top.mode == "full" and top.tokens > 0.7 * budget
    assert packed.used <= budget


def test_a_top_file_too_large_goes_in_as_the_matching_definitions_plus_an_outline(tmp_path: Path) -> None:
    body = module("filler", 400) + (
        "def apply_discount(order, code):\n    rate = DISCOUNTS[code]\n"
        "    return order.total * (1 - rate)\n\n\n"
        "def checkout(order, code):\n    return apply_discount(order, code)\n"
    ) + module("more_filler", 200)
    root = make_repo(tmp_path / "r", {"shop/cart.py": body, "shop/other.py": "def x():\n    pass\n"})
    packed = build_context(root, "apply_discount ignores the discount code rate", budget=3000,
                           count_tokens=words)
    top = packed.files[0]
    assert top.path == "shop/cart.py" and top.mode == "outline"
    assert "apply_discount" in top.parts and "checkout" in top.parts  # the match and its caller
    assert "return order.total * (1 - rate)" in packed.text  # its body, in full
    assert "filler_3" in packed.text  # the rest as an outline
    assert packed.used <= 3000
    payload = packed.to_dict()["files"]
    assert isinstance(payload, list) and payload[0]["parts"] == list(top.parts)


def test_the_repository_map_shrinks_at_small_budgets(tmp_path: Path) -> None:
    files = {f"pkg{i}/mod{j}.py": f"def f_{i}_{j}():\n    return {j}\n" for i in range(20) for j in range(15)}
    root = make_repo(tmp_path / "r", files)
    small = build_context(root, "f_3_4", budget=8000, count_tokens=words)
    large = build_context(root, "f_3_4", budget=128000, count_tokens=words)
    assert 0 < small.map_tokens <= 0.03 * 8000
    assert large.map_tokens > small.map_tokens
    assert map_share(8000) < map_share(32000) < map_share(128000)
    assert map_share(1000) == 0


def test_an_excerpt_shows_where_other_files_use_its_matches(tmp_path: Path) -> None:
    body = module("filler", 400) + (
        "def apply_discount(order, code):\n    rate = DISCOUNTS[code]\n"
        "    return order.total * (1 - rate)\n"
    )
    root = make_repo(tmp_path / "r", {
        "shop/cart.py": body,
        "shop/views.py": "from shop.cart import apply_discount\n\n\ndef pay(order):\n"
                         "    return apply_discount(order, 'SPRING')\n",
        ".env": "apply_discount = 'secret-token-value'\n",  # never read: a secret-looking name
    })
    packed = build_context(root, "apply_discount ignores the discount code rate", budget=3000,
                           count_tokens=words)
    top = packed.files[0]
    assert top.path == "shop/cart.py" and top.mode == "outline"
    assert "used in other files" in packed.text
    assert "shop/views.py:5: return apply_discount(order, 'SPRING')" in packed.text
    assert "secret-token-value" not in packed.text
    assert packed.used <= 3000


def test_a_short_file_goes_whole_where_its_outline_would_save_nothing(tmp_path: Path) -> None:
    import sys

    from gemma_code.context.files import scan_files
    from gemma_code.context.tagscan import scan_tags
    from gemma_code.context.tokens import TokenCounter

    pack = sys.modules["gemma_code.context.pack"]
    root = make_repo(tmp_path / "r", {
        "pkg/mod.py": module("ledger", 60),
        "pkg/__init__.py": "from pkg.mod import ledger_1\n",  # no definitions: no outline at all
        "pkg/tiny.py": "def noop():\n    return 0\n",  # whole costs about what its outline does
    })
    docs = scan_tags(root, scan_files(root).files).tags
    chosen: dict[str, tuple[str, int, str, tuple[str, ...]]] = {}
    pack._outlines(root, ["pkg/mod.py", "pkg/__init__.py", "pkg/tiny.py"], docs,
                   TokenCounter(words), 10_000, chosen)
    assert {path: mode for path, (mode, *_rest) in chosen.items()} == {
        "pkg/mod.py": "outline", "pkg/__init__.py": "full", "pkg/tiny.py": "full"}
    assert "from pkg.mod import ledger_1" in chosen["pkg/__init__.py"][2]


def test_the_map_gives_way_when_the_top_file_needs_its_room(tmp_path: Path, monkeypatch) -> None:
    import sys

    from gemma_code.context.pack import TOP_ALONE, TOP_SHARE, full_block

    budget = 8000
    files = {f"pkg{i}/mod{j}.py": f"def f_{i}_{j}():\n    return {j}\n" for i in range(20) for j in range(15)}

    def ledger(lines: int) -> str:
        return "def settle_ledger(entries):\n    return sum(entries)\n\n\n" + "".join(
            f"RATE_{i} = {i}  # settle_ledger fixed rate table entry\n" for i in range(lines))

    def tokens(body: str) -> int:
        return words(full_block("books/ledger.py", body, "python"))

    # a module that goes whole only without the map: over TOP_SHARE of what the map leaves,
    # within TOP_ALONE of the budget
    body = ledger(1)
    while tokens(body) <= TOP_SHARE * (budget - map_share(budget)) + 20:
        body = ledger(body.count("\n") + 8)
    assert tokens(body) <= TOP_ALONE * budget
    root = make_repo(tmp_path / "r", {**files, "books/ledger.py": body})
    packed = build_context(root, "settle_ledger rounds the wrong way", budget=budget, count_tokens=words)
    assert packed.files[0].path == "books/ledger.py" and packed.files[0].mode == "full"
    assert packed.map_tokens == 0 and "## Repository map" not in packed.text
    assert any("map was left out" in note for note in packed.notes)
    assert packed.used <= budget
    # without the rule the module went in as an excerpt beside the map
    monkeypatch.setattr(sys.modules["gemma_code.context.pack"], "_map_gives_way", lambda *a: False)
    before = build_context(root, "settle_ledger rounds the wrong way", budget=budget, count_tokens=words)
    assert before.files[0].mode == "outline" and before.map_tokens > 0
    monkeypatch.undo()
    # a module too large even alone keeps the map and goes in as an excerpt
    (root / "books/ledger.py").write_text(ledger(body.count("\n") + 80), encoding="utf-8")
    large = build_context(root, "settle_ledger rounds the wrong way", budget=budget, count_tokens=words)
    assert large.files[0].mode == "outline" and large.map_tokens > 0
