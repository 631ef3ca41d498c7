"""The layering rules, read from the source: who may import llama_cpp, and no import guard hides
a bug in gemma-code's own modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gemma_code"


def _modules() -> list[tuple[str, ast.Module]]:
    return [(p.relative_to(PACKAGE).as_posix(), ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(PACKAGE.rglob("*.py"))]


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def test_only_the_engine_package_imports_llama_cpp() -> None:
    offenders = sorted(
        f"{rel}:{node.lineno}"
        for rel, tree in _modules()
        if not rel.startswith("engine/")
        for node in ast.walk(tree)
        for name in _imported(node)
        if name == "llama_cpp" or name.startswith("llama_cpp.")
    )
    assert offenders == []


def test_no_import_error_guard_wraps_our_own_modules() -> None:
    offenders = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not any("ImportError" in c for c in caught):
                continue
            for stmt in node.body:
                if any(n.startswith("gemma_code") for n in _imported(stmt)):
                    offenders.append(f"{rel}:{stmt.lineno}")
    assert offenders == []


def test_the_context_builder_loads_neither_llama_cpp_nor_the_model_registry(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gemma_code.context import build_context\n"
        f"packed = build_context(Path({str(tmp_path)!r}), 'f', budget=500,\n"
        "                       count_tokens=lambda t: len(t.split()))\n"
        "assert 'a.py' in packed.text, packed.text\n"
        "print([m for m in ('llama_cpp', 'gemma_code.models', 'gemma_code.engine') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=tmp_path)
    assert result.stdout.strip() == "[]"
