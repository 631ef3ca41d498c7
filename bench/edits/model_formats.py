"""Which edit format a model writes best: well-formed, cleanly applying and correct replies.

    python bench/edits/model_formats.py --model PATH.gguf [--max-tokens 200] [--threads 1]

Each task (a small real-looking file and an instruction with one right answer) is asked
in each format (SEARCH/REPLACE, unified diff, whole file) with greedy decoding.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gemma_code.config import Settings
from gemma_code.edits import parse_reply_lenient, plan_edits
from gemma_code.tasks.edit import edit_messages, generate
from gemma_code.tasks.edit_prompts import FORMATS

TASKS = [
    ("util.py", "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
     "Make sub return b - a instead.",
     "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return b - a\n"),
    ("config.py", 'TIMEOUT = 30\nRETRIES = 3\nHOST = "localhost"\n',
     "Change RETRIES to 5.", 'TIMEOUT = 30\nRETRIES = 5\nHOST = "localhost"\n'),
    ("greet.py", 'def greet(name):\n    print("Hello " + name)\n',
     "Rename the function greet to welcome.", 'def welcome(name):\n    print("Hello " + name)\n'),
    ("app.py", "import sys\n\n\ndef main():\n    return 0\n\n\nif __name__ == '__main__':\n"
     "    sys.exit(main())\n",
     "Make main return 1.", "import sys\n\n\ndef main():\n    return 1\n\n\nif __name__ == '__main__':\n"
     "    sys.exit(main())\n"),
    ("shapes.py", "class Square:\n    def __init__(self, side):\n        self.side = side\n\n"
     "    def area(self):\n        return self.side * self.side\n",
     "Rename the attribute side to length everywhere.",
     "class Square:\n    def __init__(self, length):\n        self.length = length\n\n"
     "    def area(self):\n        return self.length * self.length\n"),
    ("names.py", 'NAMES = ["ann", "bob"]\n', 'Add "cid" at the end of NAMES.',
     'NAMES = ["ann", "bob", "cid"]\n'),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--json", help="write every reply and verdict here")
    args = parser.parse_args()
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    settings = Settings(model=args.model, n_ctx=args.n_ctx, n_threads=args.threads, n_gpu_layers=0)
    engine = load_llamacpp_engine(settings)
    rows = []
    start = time.perf_counter()
    try:
        for fmt in FORMATS:
            for path, before, instruction, after in TASKS:
                messages = edit_messages(instruction, files={path: before}, fmt=fmt)
                reply, _ = generate(engine, messages, max_tokens=args.max_tokens, temperature=0.0)
                with tempfile.TemporaryDirectory() as tmp:
                    root = Path(tmp)
                    (root / path).write_text(before)
                    edits, problems = parse_reply_lenient(reply)
                    plan = plan_edits(root, edits)
                    changes = plan.changes()
                    formed = bool(edits) and not problems
                    # "applies" means it changes the task's file and nothing else
                    clean = formed and not plan.failures and [c.path for c in changes] == [path]
                    right = clean and len(changes) == 1 and changes[0].path == path and \
                        changes[0].new == after.encode()
                rows.append({"format": fmt, "file": path, "well_formed": formed, "applies": clean,
                             "correct": right, "reply": reply})
    finally:
        engine.close()
    print(f"model {engine.info.name} ({engine.info.backend}), {len(TASKS)} tasks per format, "
          f"greedy, max_tokens {args.max_tokens}, {time.perf_counter() - start:.0f} s")
    print("| format | well-formed | applies cleanly to the task's file | correct |\n|---|---|---|---|")
    for fmt in FORMATS:
        mine = [r for r in rows if r["format"] == fmt]
        cells = [f"{sum(r[k] for r in mine)}/{len(mine)}" for k in ("well_formed", "applies", "correct")]
        print(f"| {fmt} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
