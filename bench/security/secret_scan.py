"""Secret redaction cost: gemma-code's scan vs detect-secrets' own scanner on published code.

Corpus: the Python sources of installed third-party packages (code written by others).
Prints one JSON object: pattern load time (cold import of detect-secrets vs the cached
pattern file, each in a fresh process), scan throughput of `find_secrets` and of
detect-secrets' `SecretsCollection.scan_file` (its default plugins, same files, same run),
and what each flagged.

    PYTHONPATH=. python bench/security/secret_scan.py [PACKAGE ...]
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ["requests", "rich", "pygments", "click", "typer", "yaml", "huggingface_hub"]
LOAD = "import time; t=time.perf_counter(); from gemma_code.secret_patterns import patterns; " \
       "patterns(); print(time.perf_counter()-t)"


def corpus(names: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in names:
        module = importlib.import_module(name)
        files += sorted(Path(module.__file__).parent.rglob("*.py"))  # type: ignore[arg-type]
    return files


def load_times() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GEMMA_CODE_HOME": home}
        run = [sys.executable, "-c", LOAD]
        cold = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
        warm = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
    return {"pattern_load_cold_s": round(cold, 3), "pattern_load_cached_s": round(warm, 3)}


def main() -> None:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    from gemma_code.secret_patterns import find_secrets, patterns

    files = corpus(sys.argv[1:] or PACKAGES)
    texts = [(f, f.read_text("utf-8", "replace")) for f in files]
    size = sum(len(t) for _, t in texts)
    patterns()
    start = time.perf_counter()
    ours = [(f.name, s.kind) for f, t in texts for s in find_secrets(t)]
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    collection = SecretsCollection()
    with default_settings():
        for f, _ in texts:
            collection.scan_file(str(f))
    theirs_s = time.perf_counter() - start
    theirs = [(Path(name).name, s.type) for name, found in collection.data.items() for s in found]
    print(json.dumps({
        **load_times(), "files": len(files), "mb": round(size / 1e6, 2),
        "gemma_code_scan_s": round(ours_s, 3), "gemma_code_mb_per_s": round(size / 1e6 / ours_s, 2),
        "gemma_code_flagged": len(ours), "gemma_code_examples": ours[:5],
        "detect_secrets_scan_s": round(theirs_s, 3),
        "detect_secrets_mb_per_s": round(size / 1e6 / theirs_s, 2),
        "detect_secrets_flagged": len(theirs),
        "detect_secrets_kinds": sorted({k for _, k in theirs}),
    }, indent=1))


if __name__ == "__main__":
    main()
